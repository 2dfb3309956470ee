//! A mistake in a config file's values and where it is: the error that says
//! ``hello.yaml:14: deployment `SpanishResponder`: `health_check_period_s` must be a number
//! greater than 0, not 0``.

use std::path::Path;

use super::lines::{Format, line_of};
use crate::config::validate::{Invalid, config_error};
use crate::error::ServeError;

/// A value of a config file that its rule refuses: the message, and where to look for it (the
/// application, the deployment entry in it, the key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mistake {
    pub(crate) app: Option<String>,
    pub(crate) deployment: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
}

impl Mistake {
    /// A value of the entry of deployment `deployment` in application `app`, as
    /// ``deployment `X`: ..``.
    pub(crate) fn in_deployment(app: &str, deployment: &str, invalid: Invalid) -> Self {
        Self {
            app: Some(app.to_owned()),
            deployment: Some(deployment.to_owned()),
            key: Some(invalid.key),
            message: format!("deployment `{deployment}`: {}", invalid.message),
        }
    }

    /// The error without a position: for configurations that were not read from a text.
    pub(crate) fn into_error(self) -> ServeError {
        config_error(self.message)
    }
}

/// The text a configuration was read from, and the file's name when it came from one.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    file: Option<String>,
    text: String,
    pub(crate) format: Format,
}

impl Source {
    pub(crate) fn new(file: Option<&Path>, text: String, format: Format) -> Self {
        Self {
            file: file.map(|f| f.display().to_string()),
            text,
            format,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The error of `mistake`, at its line when the text shows it: `hello.yaml:14: ..` from a
    /// file, `line 14: ..` from a string.
    pub(crate) fn locate(&self, mistake: Mistake) -> ServeError {
        let line = line_of(
            &self.text,
            self.format,
            mistake.app.as_deref(),
            mistake.deployment.as_deref(),
            mistake.key.as_deref(),
        );
        let place = match (&self.file, line) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            (Some(file), None) => format!("{file}: "),
            (None, Some(line)) => format!("line {line}: "),
            (None, None) => String::new(),
        };
        config_error(format!("{place}{}", mistake.message))
    }

    /// Another error about the text (serde's, which says where itself), after the file's name.
    pub(crate) fn error(&self, message: &str) -> ServeError {
        match &self.file {
            Some(file) => config_error(format!("{file}: {message}")),
            None => config_error(message.to_owned()),
        }
    }
}
