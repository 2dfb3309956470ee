//! Cluster mode: one application over many processes and machines, coordinated over NATS.
//!
//! The same binary runs as the **head** (`run --cluster URL`: the controller, the HTTP proxy and
//! replicas, as in one process) or as a **worker** (`worker --cluster URL`: it joins, offers its
//! resources, and runs the replicas the head places on it). Every node keeps a router per
//! deployment over every replica of the cluster — its own ones called directly, the others over
//! the request plane (`transport`) — so a handle routes the same wherever it is.
//!
//! * [`head`]: accepts workers (refusing a different build), places replicas on them through
//!   the control plane's [`ClusterHooks`](crate::control::nodes::ClusterHooks), publishes the
//!   replica table, and declares a worker dead after [`MISSED_HEARTBEATS`] silent heartbeat
//!   periods (its running requests fail, its replicas are rebuilt elsewhere);
//! * [`worker`]: joins, builds the application graph's mirror, constructs and stops replicas when
//!   the head says so, follows the replica table, and exits when the head is gone;
//! * [`protocol`]: their messages and subjects.
//!
//! [`MISSED_HEARTBEATS`]: crate::config::MISSED_HEARTBEATS

pub(crate) mod head;
pub(crate) mod protocol;
pub(crate) mod worker;

use std::hash::Hasher;
use std::sync::OnceLock;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use tokio::sync::mpsc;

use crate::config::ClusterOptions;
use crate::config::cluster::to_token;
use crate::error::{ErrorKind, ServeError};

/// The subject prefix of cluster `name`.
pub(crate) fn prefix(name: &str) -> String {
    format!("serve.{}", to_token(name))
}

/// A new node id: unique for the life of the process (a restarted process is a new node).
pub(crate) fn new_node_id() -> String {
    format!(
        "{:08x}{:08x}",
        std::process::id(),
        fastrand::u32(..)
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()))
    )
}

/// This process's build, once worked out.
static BUILD: OnceLock<String> = OnceLock::new();

/// Which build of the application this process runs, as the nodes of a cluster compare it:
/// `SERVE_BUILD_ID` if set (e.g. a commit id, when identical code is built on several
/// machines), else a hash of the executable file. Two nodes of a cluster must run the same
/// build (their deployments and wire types must match): a head refuses a worker whose build
/// differs, naming both.
///
/// Worked out once. Hashing reads the whole executable (a debug build of a test binary is 150 MB:
/// over a second), so the head and workers start it early, on a thread of their own, and async
/// code waits for it off the runtime's threads.
pub fn build_id() -> &'static str {
    BUILD.get_or_init(|| {
        if let Ok(id) = std::env::var("SERVE_BUILD_ID")
            && !id.trim().is_empty()
        {
            return id.trim().to_owned();
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let hashed = (|| -> std::io::Result<()> {
            use std::io::Read;
            // The running image, even if its file was replaced since it started.
            let mut file = std::fs::File::open("/proc/self/exe")
                .or_else(|_| std::env::current_exe().and_then(std::fs::File::open))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.write(&buf[..n]);
            }
        })();
        match hashed {
            Ok(()) => format!("exe-{:016x}", hasher.finish()),
            Err(e) => {
                tracing::warn!(
                    "cannot read this executable to identify its build ({e}); set SERVE_BUILD_ID"
                );
                format!("version-{}", env!("CARGO_PKG_VERSION"))
            }
        }
    })
}

/// [`build_id`] without blocking an async thread (the head answers joins on one).
pub(crate) async fn build_id_async() -> &'static str {
    if let Some(id) = BUILD.get() {
        return id;
    }
    tokio::task::spawn_blocking(build_id)
        .await
        .unwrap_or_else(|_| build_id())
}

/// Starts working out [`build_id`] on a thread of its own, so it is ready by the first join.
pub(crate) fn prepare_build_id() {
    if BUILD.get().is_none() {
        let _ = std::thread::Builder::new()
            .name("serve-build-id".into())
            .spawn(build_id);
    }
}

/// Connects to the cluster's NATS server(s) with `options`, within their connect timeout. The
/// client reconnects by itself after that; `events` says when the connection drops or returns.
pub(crate) async fn connect(
    options: &ClusterOptions,
    node_name: &str,
    prefix: &str,
) -> Result<(Client, mpsc::UnboundedReceiver<Event>), ServeError> {
    options.validate().map_err(config_error)?;
    let (tx, events) = mpsc::unbounded_channel();
    // After a lost connection the client retries with a growing delay (2^n ms); capped here at a
    // heartbeat period (the client's own cap is 4 s), so every node is back within about a
    // period of the server, well inside the failure-detection bound the others give it.
    let max_delay = options.heartbeat();
    let mut connect = ConnectOptions::new()
        .name(format!("serve {node_name}"))
        .connection_timeout(options.connect_timeout())
        .reconnect_delay_callback(move |attempts| {
            let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
            if attempts <= 1 {
                std::time::Duration::ZERO
            } else {
                std::time::Duration::from_millis(2u64.saturating_pow(exp)).min(max_delay)
            }
        })
        .retain_servers_order()
        // Subjects are made of validated tokens (`to_token`, node ids): no need to check each
        // publish again.
        .skip_subject_validation(true)
        // Replies to its requests (join, start) under the cluster's prefix as well, so a NATS
        // user allowed only `serve.<cluster>.>` can run a node.
        .custom_inbox_prefix(
            protocol::Subjects {
                prefix: prefix.to_owned(),
            }
            .inbox_prefix(),
        )
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        });
    if let (Some(user), Some(password)) = (&options.user, &options.password) {
        connect = connect.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &options.token {
        connect = connect.token(token.clone());
    }
    let nkey = options
        .nkey
        .clone()
        .or_else(|| std::env::var("SERVE_NATS_NKEY").ok());
    if let Some(nkey) = &nkey {
        connect = connect.nkey(nkey.clone());
    }
    if let Some(path) = &options.credentials_file {
        connect = connect.credentials_file(path).await.map_err(|e| {
            config_error(format!(
                "cannot read the credentials file {}: {e}",
                path.display()
            ))
        })?;
    }
    if let Some(ca) = &options.tls_ca_file {
        connect = connect.add_root_certificates(ca.clone()).require_tls(true);
    }
    let url = options.display_url();
    let unreachable = |why: String| {
        ServeError::unavailable(format!(
            "cannot connect to the cluster's NATS server at {url}: {why}"
        ))
    };
    match tokio::time::timeout(
        options.connect_timeout(),
        connect.connect(options.url.as_str()),
    )
    .await
    {
        Ok(Ok(client)) => Ok((client, events)),
        // Wrong credentials: trying again will not help.
        Ok(Err(e))
            if matches!(
                e.kind(),
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
            ) =>
        {
            Err(config_error(format!(
                "the cluster's NATS server at {url} refused this process's credentials ({e}): \
                 check the cluster's user and password, token, nkey or credentials file"
            )))
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {:?}",
            options.connect_timeout()
        ))),
    }
}

fn config_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Config).with_message(message)
}
