//! Seconds, as config files, `#[deployment(..)]` options and Ray write them, to [`Duration`].

use std::fmt;
use std::time::Duration;

/// The longest duration a setting may ask for: about 31 years, far past any timeout that means
/// something, and well inside what `Instant + Duration` can add without overflowing.
pub(crate) const MAX_SECONDS: f64 = 1e9;

/// A number of seconds that is not a duration: NaN, infinite or negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NotADuration(pub(crate) f64);

impl fmt::Display for NotADuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a number of seconds of at least 0", self.0)
    }
}

/// `seconds` as a [`Duration`]: refuses NaN, infinities and negative values; values past
/// [`MAX_SECONDS`] are capped there.
pub(crate) fn seconds(seconds: f64) -> Result<Duration, NotADuration> {
    if seconds.is_nan() || seconds < 0.0 || seconds == f64::INFINITY {
        return Err(NotADuration(seconds));
    }
    Ok(Duration::from_secs_f64(seconds.min(MAX_SECONDS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_what_is_not_a_duration() {
        assert_eq!(seconds(1.5), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds(0.0), Ok(Duration::ZERO));
        assert_eq!(seconds(1e12), Ok(Duration::from_secs(1_000_000_000)));
        assert!(seconds(f64::NAN).is_err());
        assert!(seconds(-0.5).is_err());
        assert!(seconds(f64::INFINITY).is_err());
        assert_eq!(
            seconds(-1.0).unwrap_err().to_string(),
            "-1 is not a number of seconds of at least 0"
        );
    }
}
