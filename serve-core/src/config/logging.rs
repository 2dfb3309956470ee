//! [`LoggingConfig`]: Ray Serve's `logging_config`, how the logs of the proxy and of each
//! deployment's replicas are written: their level, their encoding (text or JSON lines), and
//! whether each request gets an access-log line.
//!
//! It can be given at three places, each key separately inheriting from the one above: a config
//! file's top level (the whole process: the proxy, and the default of every deployment), an
//! application (its deployments), and a deployment (in code with
//! [`DeploymentConfig::logging_config`](super::DeploymentConfig::logging_config), or in the file's
//! entry, which wins over the code's).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Logging settings, with Ray Serve's keys. A key left out inherits: a deployment's from its
/// application's, an application's from the file's top level, the top level's from the command
/// line (`--log-level`, `--log-format`) and then the defaults (`INFO`, `TEXT`, access log on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `TEXT` (one human-readable line per event) or `JSON` (one JSON object per line). The
    /// process writes one stream, so this is the top level's (or `--log-format`'s); an
    /// application or deployment asking for another is told so once at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// The least severe level written: `DEBUG`, `INFO` (default), `WARNING`, `ERROR`, `CRITICAL`
    /// (or Python's numbers: 10, 20, 30, 40, 50). For a deployment, it applies to everything
    /// logged while its replicas run a request (its own code's lines too) and to its access lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// At the top level: a directory to write the log to as well (`serve.log`, appended). An
    /// application's or deployment's own directory is not supported (the process writes one
    /// log) and is told so at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_dir: Option<PathBuf>,
    /// Whether each request gets an access-log line (default on): the proxy's
    /// `POST / 200 1.2ms` per HTTP request (top level), each replica's `CALL say_hello OK 0.5ms`
    /// per call (per deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_access_log: Option<bool>,
    /// Python `LogRecord` attributes Ray adds to each line. Those with an equivalent here are
    /// honoured at the top level: `name` (the event's target), `filename` / `pathname` (its source
    /// file), `lineno` (its line); the others are accepted and have no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_log_standard_attrs: Option<Vec<String>>,
}

impl LoggingConfig {
    /// These settings, with each key not given taken from `parent`.
    pub fn or(&self, parent: &LoggingConfig) -> LoggingConfig {
        LoggingConfig {
            encoding: self.encoding.or(parent.encoding),
            log_level: self.log_level.or(parent.log_level),
            logs_dir: self.logs_dir.clone().or_else(|| parent.logs_dir.clone()),
            enable_access_log: self.enable_access_log.or(parent.enable_access_log),
            additional_log_standard_attrs: (self.additional_log_standard_attrs.clone())
                .or_else(|| parent.additional_log_standard_attrs.clone()),
        }
    }

    /// Whether access lines are written (default: yes).
    pub fn access_log(&self) -> bool {
        self.enable_access_log.unwrap_or(true)
    }

    /// Sets the level.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = Some(level);
        self
    }

    /// Sets the encoding.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// Turns the access log on or off.
    pub fn enable_access_log(mut self, on: bool) -> Self {
        self.enable_access_log = Some(on);
        self
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// One human-readable line per event (the default).
    #[default]
    #[serde(rename = "TEXT", alias = "text", alias = "Text")]
    Text,
    /// One JSON object per line, every field at its top level.
    #[serde(rename = "JSON", alias = "json", alias = "Json")]
    Json,
}

/// A log level, with Python's names (as Ray's `log_level`) and Rust's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything (Rust's `trace`; Python has no such level).
    Trace,
    /// `DEBUG` (10).
    Debug,
    /// `INFO` (20), the default.
    Info,
    /// `WARNING` (30).
    Warning,
    /// `ERROR` (40); Python's `CRITICAL` (50) is the same here.
    Error,
}

impl LogLevel {
    /// Reads a level as Ray and `RUST_LOG` spell them: `DEBUG`, `info`, `WARNING`/`warn`,
    /// `ERROR`, `CRITICAL`/`FATAL` (as `ERROR`), `TRACE`; case does not matter.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" | "WARN" => LogLevel::Warning,
            "ERROR" | "CRITICAL" | "FATAL" => LogLevel::Error,
            _ => return None,
        })
    }

    /// Python's number for a level: 10 `DEBUG`, 20 `INFO`, 30 `WARNING`, 40 `ERROR`, 50
    /// `CRITICAL`; a number between two levels is the less severe one, as Python filters.
    fn from_number(n: i64) -> LogLevel {
        match n {
            ..=9 => LogLevel::Trace,
            10..=19 => LogLevel::Debug,
            20..=29 => LogLevel::Info,
            30..=39 => LogLevel::Warning,
            _ => LogLevel::Error,
        }
    }

    /// The `tracing` filter that lets this level and more severe ones through.
    pub fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warning => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        }
    }

    /// As Ray writes it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LogLevel;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a log level: DEBUG, INFO, WARNING, ERROR, CRITICAL, or 10..50")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LogLevel, E> {
                LogLevel::parse(s).ok_or_else(|| {
                    E::custom(format!(
                        "`{s}` is not a log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
                    ))
                })
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<LogLevel, E> {
                Ok(LogLevel::from_number(n))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<LogLevel, E> {
                Ok(LogLevel::from_number(i64::try_from(n).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_ray_and_rust_spell_them() {
        assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("WARN"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("CRITICAL"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("loud"), None);
        let level: LogLevel = serde_json::from_str("10").unwrap();
        assert_eq!(level, LogLevel::Debug);
        let level: LogLevel = serde_json::from_str("\"INFO\"").unwrap();
        assert_eq!(level, LogLevel::Info);
        assert_eq!(
            serde_json::to_string(&LogLevel::Warning).unwrap(),
            "\"WARNING\""
        );
        let err = serde_json::from_str::<LogLevel>("\"LOUD\"").unwrap_err();
        assert!(
            err.to_string().contains("`LOUD` is not a log level"),
            "{err}"
        );
    }

    #[test]
    fn each_key_inherits_separately() {
        let top = LoggingConfig::default()
            .log_level(LogLevel::Warning)
            .encoding(Encoding::Json);
        let app = LoggingConfig::default().enable_access_log(false);
        let deployment = LoggingConfig::default().log_level(LogLevel::Debug);
        let effective = deployment.or(&app.or(&top));
        assert_eq!(effective.log_level, Some(LogLevel::Debug));
        assert_eq!(effective.encoding, Some(Encoding::Json));
        assert!(!effective.access_log());
        assert!(LoggingConfig::default().access_log(), "on by default");
    }
}
