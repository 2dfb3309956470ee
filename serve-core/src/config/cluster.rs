//! [`ClusterOptions`]: how a process joins a cluster over NATS (cluster mode).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a process reaches the cluster's NATS server, and how the cluster is named on it.
///
/// Set on the command line (`run --cluster URL`, `worker --cluster URL`), in a config file
/// (`cluster:`), or with `Serve::builder().cluster(..)` (all with the `cluster` feature, on by
/// default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOptions {
    /// The NATS server(s): `nats://HOST:PORT`, or `tls://HOST:PORT` for TLS; several separated by
    /// commas. `nats://user:password@HOST:PORT` carries credentials in the URL.
    pub url: String,
    /// Namespaces every subject (`serve.<name>.…`) so applications can share one NATS server
    /// without crossing. Unset: the application's name (its ingress deployment). Letters, digits,
    /// `-` and `_` only.
    #[serde(default)]
    pub name: Option<String>,
    /// A user name (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// The user's password.
    #[serde(default)]
    pub password: Option<String>,
    /// A token.
    #[serde(default)]
    pub token: Option<String>,
    /// A `.creds` file (a user JWT and its nkey seed), as `nsc` writes them.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// An nkey seed (`SU…`) [default: `SERVE_NATS_NKEY`].
    #[serde(default)]
    pub nkey: Option<String>,
    /// A root certificate (PEM) to trust for `tls://` servers signed by a private CA.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// How often each node says it is alive; a node silent for [`MISSED_HEARTBEATS`] periods and
    /// a half is declared dead (checked each period: within 4.5 periods). Default 1 s. Use the
    /// same value on every node.
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: f64,
    /// How long a process waits for the NATS server, and a worker for its head, before it gives
    /// up with an error. Default 10 s.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// The head waits for this many workers to join before it deploys the application, so the
    /// first replicas spread over them (default 0: deploy at once, often all on the head, and
    /// rely on rebalancing as workers join). The `run` command waits; in code, call
    /// `Serve::wait_for_workers` before `run`.
    #[serde(default)]
    pub min_workers: usize,
}

/// Heartbeat periods a node may miss before it is declared dead.
pub const MISSED_HEARTBEATS: u32 = 3;

fn default_heartbeat_s() -> f64 {
    1.0
}

fn default_connect_timeout_s() -> f64 {
    10.0
}

impl ClusterOptions {
    /// Options for the NATS server(s) at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            user: None,
            password: None,
            token: None,
            credentials_file: None,
            nkey: None,
            tls_ca_file: None,
            heartbeat_s: default_heartbeat_s(),
            connect_timeout_s: default_connect_timeout_s(),
            min_workers: 0,
        }
    }

    /// Sets the cluster's name (see [`name`](Self::name)).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Authenticates with a user name and password.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Authenticates with a `.creds` file.
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// Sets how many workers the head waits for before it deploys.
    pub fn min_workers(mut self, n: usize) -> Self {
        self.min_workers = n;
        self
    }

    /// Authenticates with an nkey seed (`SU…`).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.nkey = Some(seed.into());
        self
    }

    /// Trusts the root certificate (PEM) in `path` for `tls://` servers.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Sets the heartbeat period in seconds.
    pub fn heartbeat_s(mut self, seconds: f64) -> Self {
        self.heartbeat_s = seconds;
        self
    }

    /// Sets how long to wait for the NATS server, and a worker for its head, in seconds.
    pub fn connect_timeout_s(mut self, seconds: f64) -> Self {
        self.connect_timeout_s = seconds;
        self
    }

    /// The heartbeat period (at least 10 ms).
    pub fn heartbeat(&self) -> Duration {
        Duration::try_from_secs_f64(self.heartbeat_s)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(10))
    }

    /// How long a node may stay silent before it is declared dead.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat() * MISSED_HEARTBEATS + self.heartbeat() / 2
    }

    /// How long to wait for the NATS server or the head (at least 100 ms).
    pub fn connect_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.connect_timeout_s)
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(100))
    }

    /// The URL(s) as logs and errors show them: a password or token carried in one
    /// (`nats://user:password@HOST:PORT`, `nats://token@HOST:PORT`) is masked.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn display_url(&self) -> String {
        self.url
            .split(',')
            .map(mask_credentials)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Checks the name and the credentials fit together.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.trim().is_empty() {
            return Err("the cluster URL is empty".into());
        }
        if let Some(name) = &self.name
            && !valid_token(name)
        {
            return Err(format!(
                "the cluster name `{name}` may hold only letters, digits, `-` and `_`"
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("a cluster `user` needs a `password`, and a `password` a `user`".into());
        }
        let methods = [
            self.user.is_some(),
            self.token.is_some(),
            self.credentials_file.is_some(),
            self.nkey.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "give the cluster one way to authenticate: user and password, a token, a \
                 credentials file, or an nkey"
                    .into(),
            );
        }
        if !(self.heartbeat_s.is_finite() && self.heartbeat_s > 0.0) {
            return Err(format!(
                "the cluster's `heartbeat_s` must be a number greater than 0, not {}",
                self.heartbeat_s
            ));
        }
        if !(self.connect_timeout_s.is_finite() && self.connect_timeout_s > 0.0) {
            return Err(format!(
                "the cluster's `connect_timeout_s` must be a number greater than 0, not {}",
                self.connect_timeout_s
            ));
        }
        Ok(())
    }
}

/// `url` with the secret part of its user info masked: `user:***@`, or `***@` for a token.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
fn mask_credentials(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}{masked}@{host}{path}")
}

/// Whether `s` can be one token of a NATS subject as we name them.
pub(crate) fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `s` made into a subject token: other characters become `_`.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn to_token(s: &str) -> String {
    let token: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() { "_".into() } else { token }
}

/// Where HTTP proxies run in cluster mode (Ray's `http_options.proxy_location`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyLocation {
    /// On the head only (the default).
    #[default]
    HeadOnly,
    /// On every node: each worker serves HTTP too, on the same host and port, so a load
    /// balancer in front can spread traffic over the nodes.
    EveryNode,
    /// Nowhere: the application is called through handles only.
    Disabled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secrets() {
        let shown = |url: &str| ClusterOptions::new(url).display_url();
        assert_eq!(shown("nats://10.0.0.1:4222"), "nats://10.0.0.1:4222");
        assert_eq!(
            shown("nats://serve:s3cr@t@10.0.0.1:4222"),
            "nats://serve:***@10.0.0.1:4222"
        );
        assert_eq!(
            shown("tls://tok3n@nats.example:4222/"),
            "tls://***@nats.example:4222/"
        );
        assert_eq!(
            shown("nats://a:pw@h1:4222,nats://h2:4222"),
            "nats://a:***@h1:4222,nats://h2:4222"
        );
        assert_eq!(shown("u:pw@h:4222"), "u:***@h:4222");
    }
}
