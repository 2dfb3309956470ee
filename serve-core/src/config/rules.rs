//! The rules of deployment options, by key: what each value must be, and the message when it is
//! not. Every way of setting options checks with these and no others: `#[deployment(..)]` at
//! compile time, `DeploymentConfig::validate` for configurations built in code (and the ones a
//! config file makes), config files for each entry, and `Serve::builder()` and the command line
//! for the amounts and seconds they share with deployments.
//!
//! Each check takes the key *as the caller displays it* and returns a message that names it:
//! `autoscaling_config.min_replicas` in a config file, `autoscaling.min_replicas` for a
//! `DeploymentConfig`, `min_replicas` inside `#[deployment(autoscaling(..))]`. The caller adds
//! where the value is (a span, a file and line, a deployment's name).
//!
//! This file is compiled twice: as `serve_core::config::rules`, and into serve-macros with
//! `#[path = "../../serve-core/src/config/rules.rs"] mod rules;`, because the macro crate cannot
//! depend on serve-core (serve-core depends on it, to re-export the macros). So it uses std only
//! and names nothing through `crate::` or `super::`; its tests are plain `#[cfg(test)]` functions
//! (no `mod tests { use super::* }`), and they run in both crates.

/// What the value of an option must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// A whole number of at least this.
    AtLeast(u64),
    /// A finite number greater than 0.
    Positive,
    /// A finite number of at least 0.
    NonNegative,
}

/// Every option with a rule, by its own key (Ray Serve's name, also `DeploymentConfig`'s and
/// `AutoscalingConfig`'s): the deployment's options, its autoscaling options, and the HTTP
/// proxy's `request_timeout_s`.
const OPTIONS: &[(&str, Rule)] = &[
    ("num_replicas", Rule::AtLeast(1)),
    ("max_ongoing_requests", Rule::AtLeast(1)),
    ("max_queued_requests", Rule::AtLeast(1)),
    ("health_check_period_s", Rule::Positive),
    ("health_check_timeout_s", Rule::Positive),
    ("graceful_shutdown_timeout_s", Rule::Positive),
    ("num_cpus", Rule::NonNegative),
    ("num_gpus", Rule::NonNegative),
    // Inside autoscaling.
    ("min_replicas", Rule::AtLeast(0)),
    ("max_replicas", Rule::AtLeast(1)),
    ("initial_replicas", Rule::AtLeast(0)),
    ("target_ongoing_requests", Rule::Positive),
    ("upscale_delay_s", Rule::NonNegative),
    ("downscale_delay_s", Rule::NonNegative),
    ("downscale_to_zero_delay_s", Rule::NonNegative),
    ("look_back_period_s", Rule::Positive),
    ("metrics_interval_s", Rule::Positive),
    ("upscaling_factor", Rule::Positive),
    ("downscaling_factor", Rule::Positive),
    // `http_options` of a config file (and the command line's `--request-timeout-s`).
    ("request_timeout_s", Rule::Positive),
    // `#[batch(..)]` on a method, and its run-time setters (`Batching`).
    ("max_batch_size", Rule::AtLeast(1)),
    ("batch_wait_timeout_s", Rule::NonNegative),
    ("max_concurrent_batches", Rule::AtLeast(1)),
];

/// The rule of the amount of one custom resource.
const RESOURCE_AMOUNT: Rule = Rule::NonNegative;

/// Ray's default `min_replicas`, used when it is not given.
pub(crate) const DEFAULT_MIN_REPLICAS: u64 = 1;

/// Ray's default `max_replicas`, used when it is not given.
pub(crate) const DEFAULT_MAX_REPLICAS: u64 = 1;

/// The rule of option `key` (its own name, without a prefix: `min_replicas`); `None` for a key
/// that has none (`name`, `user_config`) or is not an option.
pub(crate) fn rule(key: &str) -> Option<Rule> {
    OPTIONS.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
}

/// Checks the value of the count option `key`, displayed as `shown`.
///
/// Panics when `key` has no count rule: a caller asking for one is a bug.
pub(crate) fn count(key: &str, shown: &str, value: u64) -> Result<(), String> {
    match rule(key) {
        Some(Rule::AtLeast(min)) if value < min => {
            Err(format!("`{shown}` must be at least {min}, not {value}"))
        }
        Some(Rule::AtLeast(_)) => Ok(()),
        _ => panic!("`{key}` is not a count option"),
    }
}

/// Checks the value of the numeric option `key` (seconds, CPUs, a factor), displayed as `shown`.
///
/// Panics when `key` has no numeric rule: a caller asking for one is a bug.
pub(crate) fn number(key: &str, shown: &str, value: f64) -> Result<(), String> {
    match rule(key) {
        Some(rule @ (Rule::Positive | Rule::NonNegative)) => check_number(rule, shown, value),
        _ => panic!("`{key}` is not a numeric option"),
    }
}

/// Checks the amount of a custom resource, displayed as `shown` (`resources.a100`,
/// `resources(a100)`).
pub(crate) fn resource_amount(shown: &str, value: f64) -> Result<(), String> {
    check_number(RESOURCE_AMOUNT, shown, value)
}

fn check_number(rule: Rule, shown: &str, value: f64) -> Result<(), String> {
    let (ok, requirement) = match rule {
        Rule::Positive => (value > 0.0, "greater than 0"),
        _ => (value >= 0.0, "of at least 0"),
    };
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` must be a number {requirement}, not {value}"
        ))
    }
}

/// Checks the count option `key` as Ray writes it in a config file, where `-1` means unlimited
/// (`max_queued_requests: -1`): the count, or `None` for unlimited.
pub(crate) fn count_or_unlimited(
    key: &str,
    shown: &str,
    value: i64,
) -> Result<Option<u64>, String> {
    if value == -1 {
        return Ok(None);
    }
    let min = match rule(key) {
        Some(Rule::AtLeast(min)) => min,
        _ => panic!("`{key}` is not a count option"),
    };
    match u64::try_from(value) {
        Ok(n) if n >= min => Ok(Some(n)),
        _ => Err(format!(
            "`{shown}` must be -1 (unlimited) or at least {min}, not {value}"
        )),
    }
}

/// The autoscaling count a replica-bounds error is about: the one to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blame {
    /// `min_replicas`.
    Min,
    /// `max_replicas`.
    Max,
    /// `initial_replicas`.
    Initial,
}

impl Blame {
    /// The key's own name.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Blame::Min => "min_replicas",
            Blame::Max => "max_replicas",
            Blame::Initial => "initial_replicas",
        }
    }
}

/// The autoscaling counts together: `min_replicas <= max_replicas`, and `initial_replicas`
/// (when given) between them. `None` is a count not given, which takes Ray's default
/// ([`DEFAULT_MIN_REPLICAS`], [`DEFAULT_MAX_REPLICAS`]). Keys are displayed as
/// `{prefix}min_replicas`, .. . The error says which key is to blame: `max_replicas` when it is
/// below `min_replicas` (or `min_replicas` when `max_replicas` was not given), and
/// `initial_replicas` when it is out of their range.
pub(crate) fn replica_bounds(
    prefix: &str,
    min: Option<u64>,
    max: Option<u64>,
    initial: Option<u64>,
) -> Result<(), (Blame, String)> {
    let min = min.unwrap_or(DEFAULT_MIN_REPLICAS);
    match max {
        Some(max) if min > max => {
            return Err((
                Blame::Max,
                format!(
                    "`{prefix}max_replicas` ({max}) must be at least `{prefix}min_replicas` ({min})"
                ),
            ));
        }
        None if min > DEFAULT_MAX_REPLICAS => {
            return Err((
                Blame::Min,
                format!(
                    "`{prefix}min_replicas` ({min}) is more than `{prefix}max_replicas` \
                     ({DEFAULT_MAX_REPLICAS} by default); set `{prefix}max_replicas` too"
                ),
            ));
        }
        _ => {}
    }
    let max = max.unwrap_or(DEFAULT_MAX_REPLICAS);
    match initial {
        Some(n) if n < min || n > max => Err((
            Blame::Initial,
            format!(
                "`{prefix}initial_replicas` ({n}) must be between `{prefix}min_replicas` ({min}) \
                 and `{prefix}max_replicas` ({max})"
            ),
        )),
        _ => Ok(()),
    }
}

/// A custom resource's name: not empty, and not `CPU` or `GPU` (those are `num_cpus` and
/// `num_gpus`). Keys are displayed as `{prefix}resources`, `{prefix}num_cpus`.
pub(crate) fn resource_name(prefix: &str, name: &str) -> Result<(), String> {
    match name {
        "" => Err(format!(
            "`{prefix}resources`: a custom resource's name must not be empty"
        )),
        "CPU" | "GPU" => Err(format!(
            "`{prefix}resources`: `{name}` is not a custom resource: use `{prefix}num_{}s`",
            name.to_lowercase()
        )),
        _ => Ok(()),
    }
}

/// `num_replicas` and autoscaling exclude each other: the message, with the keys as displayed
/// (`num_replicas`, the autoscaling settings, and where the starting count goes instead).
pub(crate) fn replicas_with_autoscaling(
    num_replicas: &str,
    autoscaling: &str,
    initial_replicas: &str,
) -> String {
    format!(
        "`{num_replicas}` cannot be set for a deployment that autoscales (`{autoscaling}`): its \
         number of replicas follows the load; set the starting count with `{initial_replicas}`"
    )
}

#[cfg(test)]
#[test]
fn every_option_has_one_rule() {
    for (i, (key, _)) in OPTIONS.iter().enumerate() {
        assert!(OPTIONS[..i].iter().all(|(k, _)| k != key), "`{key}` twice");
    }
    assert_eq!(rule("num_replicas"), Some(Rule::AtLeast(1)));
    assert_eq!(rule("min_replicas"), Some(Rule::AtLeast(0)));
    assert_eq!(rule("upscale_delay_s"), Some(Rule::NonNegative));
    assert_eq!(rule("name"), None);
    assert_eq!(rule("user_config"), None);
}

#[cfg(test)]
#[test]
fn counts_and_numbers_name_the_key_as_shown_and_the_value() {
    assert_eq!(count("num_replicas", "num_replicas", 1), Ok(()));
    assert_eq!(
        count("min_replicas", "autoscaling_config.min_replicas", 0),
        Ok(())
    );
    assert_eq!(
        count("max_replicas", "autoscaling_config.max_replicas", 0),
        Err("`autoscaling_config.max_replicas` must be at least 1, not 0".into())
    );
    assert_eq!(number("num_gpus", "num_gpus", 0.0), Ok(()));
    assert_eq!(
        number("look_back_period_s", "look_back_period_s", 1e-9),
        Ok(())
    );
    assert_eq!(
        number("health_check_period_s", "health_check_period_s", -1.0),
        Err("`health_check_period_s` must be a number greater than 0, not -1".into())
    );
    assert_eq!(
        number("num_cpus", "ray_actor_options.num_cpus", -0.5),
        Err("`ray_actor_options.num_cpus` must be a number of at least 0, not -0.5".into())
    );
    for (value, shown) in [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_eq!(
            number("upscale_delay_s", "upscale_delay_s", value),
            Err(format!(
                "`upscale_delay_s` must be a number of at least 0, not {shown}"
            ))
        );
    }
    assert_eq!(
        resource_amount("resources(a100)", -2.0),
        Err("`resources(a100)` must be a number of at least 0, not -2".into())
    );
    assert_eq!(resource_amount("resources.a100", 0.0), Ok(()));
}

#[cfg(test)]
#[test]
#[should_panic(expected = "`name` is not a count option")]
fn a_count_without_a_rule_is_a_bug() {
    let _ = count("name", "name", 1);
}

#[cfg(test)]
#[test]
fn minus_one_is_unlimited_where_ray_says_so() {
    let key = "max_queued_requests";
    assert_eq!(count_or_unlimited(key, key, -1), Ok(None));
    assert_eq!(count_or_unlimited(key, key, 3), Ok(Some(3)));
    for bad in [0, -2] {
        assert_eq!(
            count_or_unlimited(key, key, bad),
            Err(format!(
                "`max_queued_requests` must be -1 (unlimited) or at least 1, not {bad}"
            ))
        );
    }
}

#[cfg(test)]
#[test]
fn replica_bounds_blame_one_key() {
    assert_eq!(replica_bounds("", None, None, None), Ok(()));
    assert_eq!(replica_bounds("", Some(0), None, Some(0)), Ok(()));
    assert_eq!(replica_bounds("", Some(2), Some(8), Some(8)), Ok(()));
    assert_eq!(
        replica_bounds("a.", Some(4), Some(2), None),
        Err((
            Blame::Max,
            "`a.max_replicas` (2) must be at least `a.min_replicas` (4)".into()
        ))
    );
    assert_eq!(
        replica_bounds("", Some(2), None, None),
        Err((
            Blame::Min,
            "`min_replicas` (2) is more than `max_replicas` (1 by default); set `max_replicas` too"
                .into()
        ))
    );
    assert_eq!(
        replica_bounds("", None, Some(4), Some(0)),
        Err((
            Blame::Initial,
            "`initial_replicas` (0) must be between `min_replicas` (1) and `max_replicas` (4)"
                .into()
        ))
    );
    assert_eq!(Blame::Initial.key(), "initial_replicas");
}

#[cfg(test)]
#[test]
fn custom_resources_are_not_cpus_or_gpus() {
    assert_eq!(resource_name("", "a100"), Ok(()));
    assert_eq!(
        resource_name("ray_actor_options.", "GPU"),
        Err(
            "`ray_actor_options.resources`: `GPU` is not a custom resource: use \
             `ray_actor_options.num_gpus`"
                .into()
        )
    );
    assert_eq!(
        resource_name("", ""),
        Err("`resources`: a custom resource's name must not be empty".into())
    );
}
