//! The control API of a running `serve run`: Ray Serve's REST API in its shape, on its own
//! listener (Ray's dashboard address, `127.0.0.1:8265`, by default).
//!
//! * `GET /api/serve/applications/`: the instance, its applications (each with the config it
//!   was deployed from), deployments and replicas, as Ray's `ServeInstanceDetails`.
//! * `PUT /api/serve/applications/` with a config (JSON; Ray's `ServeDeploySchema`, as the
//!   config file): makes the running applications what it says, declaratively as in Ray. Each
//!   application is one of the binary's (`import_path`, as `run` picks one), built from its
//!   `args`. One that runs already with the same code, `args` and route prefix is updated in
//!   place when only Ray's "lightweight" options change (`num_replicas`, `autoscaling_config`,
//!   `user_config`, `max_ongoing_requests`, `graceful_shutdown_timeout_s`, the health check
//!   periods), or resources (replicas replaced rolling): what [`Serve::update_deployment`]
//!   changes, `user_config` reaching `reconfigure` without a restart. Any other change deploys
//!   a new version of it, rolling (as running it again under its name does). Applications running but not in the config are deleted. Everything is
//!   checked before anything changes: a bad config is a 400 with the reason, and changes
//!   nothing. Unlike Ray, the reply comes once the change is made (or failed), and says what
//!   it did to each application.
//! * `DELETE /api/serve/applications/`: deletes every application (Ray's `serve shutdown`
//!   through the API; the process keeps running, and a `PUT` deploys again).
//! * `DELETE /api/serve/applications/{name}`: deletes one (Ray's `serve.delete`); 404 for a
//!   name that does not run.
//! * `POST /api/serve/shutdown`: the process drains its requests and exits, as on SIGTERM.
//!
//! Security: with a token (`--admin-token`, or `SERVE_ADMIN_TOKEN`) every request must carry
//! `Authorization: Bearer TOKEN`, else it is answered 401. The API listens on loopback unless
//! told otherwise, and listening anywhere else without a token is refused at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::apps::{self, Offered, import_name, under_root};
use crate::config::{
    ApplicationConfig, ConfigFile, DeploymentConfig, DeploymentEntry, config_error,
};
use crate::control::status::ApplicationStatus;
use crate::control::update::DeploymentUpdate;
use crate::error::{ErrorKind, ServeError};
use crate::serve::{RunOptions, Serve};
use crate::util::sync::Lock;

/// Ray's dashboard address, where Ray's `serve deploy` sends configs.
pub(crate) const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:8265";

/// The environment variable that gives the token when `--admin-token` does not.
pub(crate) const TOKEN_ENV: &str = "SERVE_ADMIN_TOKEN";

/// An application as it was deployed: which of the binary's, from what config entry.
#[derive(Clone)]
pub(crate) struct Deployed {
    /// Its index among the applications the binary offers.
    pub(crate) offered: usize,
    /// The config's application entry it was deployed from (the command line's flags folded
    /// in); its `deployments` are what was given, not every option.
    pub(crate) entry: ApplicationConfig,
    /// Every deployment's configuration, as deployed.
    pub(crate) configs: Vec<DeploymentConfig>,
    /// When, in seconds since the Unix epoch.
    pub(crate) at: f64,
}

impl Deployed {
    pub(crate) fn new(
        offered: usize,
        entry: ApplicationConfig,
        configs: Vec<DeploymentConfig>,
    ) -> Self {
        Self {
            offered,
            entry,
            configs,
            at: now(),
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How the process serves HTTP, for what a `PUT` deploys and a `GET` reports.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    /// `None`: no HTTP proxy (`proxy_location: Disabled`).
    pub(crate) listening: Option<SocketAddr>,
    pub(crate) root_path: Option<String>,
}

/// What the control API works on.
pub(crate) struct Control {
    serve: Serve,
    offered: Vec<Offered>,
    http: HttpSettings,
    /// What runs, by application name.
    deployed: Mutex<BTreeMap<String, Deployed>>,
    /// Held while a change is made, so changes happen one at a time.
    changing: Mutex<()>,
    token: Option<String>,
    /// Told when `POST /api/serve/shutdown` asks the process to stop.
    stop: Arc<tokio::sync::Notify>,
}

/// The control API, listening.
pub(crate) struct ControlServer {
    pub(crate) addr: SocketAddr,
    /// Notified when a client asks the process to shut down.
    pub(crate) stop: Arc<tokio::sync::Notify>,
    /// Tells the server to finish the requests it has and stop.
    close: tokio::sync::watch::Sender<bool>,
    /// Says when it has stopped.
    closed: std::sync::mpsc::Receiver<()>,
}

impl ControlServer {
    /// Stops listening, finishes the responses under way (the answer to `POST
    /// /api/serve/shutdown` among them: the process must not exit before the client has it),
    /// and returns once done or after `patience`.
    pub(crate) fn close(self, patience: std::time::Duration) {
        let _ = self.close.send(true);
        let _ = self.closed.recv_timeout(patience);
    }
}

/// Where the control API listens and what it asks of clients.
pub(crate) struct ControlOptions {
    pub(crate) addr: String,
    /// Whether `addr` was the default (a busy default port is a warning, not an error).
    pub(crate) default_addr: bool,
    pub(crate) token: Option<String>,
}

/// Starts the control API over `serve`, whose running applications are `deployed`, on a
/// thread of its own (its changes block on the instance, which must not be done from the
/// instance's own threads). `Ok(None)`: the default address was busy (logged).
pub(crate) fn start(
    serve: Serve,
    offered: Vec<Offered>,
    deployed: BTreeMap<String, Deployed>,
    http: HttpSettings,
    options: ControlOptions,
) -> Result<Option<ControlServer>, ServeError> {
    let addr: SocketAddr = parse_addr(&options.addr)?;
    let token = options.token.filter(|t| !t.is_empty());
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(config_error(format!(
            "the control API would listen on {addr}, which is not loopback: give it a token \
             (`--admin-token TOKEN` or {TOKEN_ENV}), or listen on 127.0.0.1"
        )));
    }
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(e) if options.default_addr && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                "the control API is not started: {addr} is in use (by another instance, or \
                 Ray's dashboard); give it another address with `--admin-address HOST:PORT`"
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(config_error(format!(
                "the control API cannot listen on {addr}: {e}"
            )));
        }
    };
    let bound = listener
        .local_addr()
        .and_then(|a| listener.set_nonblocking(true).map(|()| a))
        .map_err(|e| config_error(format!("the control API cannot listen on {addr}: {e}")))?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let control = Arc::new(Control {
        serve,
        offered,
        http,
        deployed: Mutex::new(deployed),
        changing: Mutex::new(()),
        token,
        stop: stop.clone(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| config_error(format!("the control API cannot start: {e}")))?;
    let (close, mut closing) = tokio::sync::watch::channel(false);
    let (closed_tx, closed) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("serve-control".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!("the control API cannot listen: {e}");
                        return;
                    }
                };
                let closing = async move {
                    let _ = closing.wait_for(|close| *close).await;
                };
                if let Err(e) = axum::serve(listener, router(control))
                    .with_graceful_shutdown(closing)
                    .await
                {
                    tracing::error!("the control API stopped: {e}");
                }
            });
            let _ = closed_tx.send(());
        })
        .map_err(|e| config_error(format!("the control API cannot start: {e}")))?;
    Ok(Some(ControlServer {
        addr: bound,
        stop,
        close,
        closed,
    }))
}

fn parse_addr(addr: &str) -> Result<SocketAddr, ServeError> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            config_error(format!(
                "`{addr}` is not an address for the control API to listen on (HOST:PORT)"
            ))
        })
}

fn router(control: Arc<Control>) -> Router {
    let applications = get(get_applications)
        .put(put_applications)
        .delete(delete_applications);
    Router::new()
        .route("/api/serve/applications/", applications.clone())
        .route("/api/serve/applications", applications)
        .route("/api/serve/applications/{name}", delete(delete_application))
        .route("/api/serve/shutdown", post(shutdown))
        .with_state(control)
}

// --- the handlers ---------------------------------------------------------------------------------

async fn get_applications(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(refused) = control.refuse(&headers) {
        return refused;
    }
    Json(control.details()).into_response()
}

async fn put_applications(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = control.refuse(&headers) {
        return refused;
    }
    let text = match String::from_utf8(body.to_vec()) {
        Ok(text) => text,
        Err(_) => return text(StatusCode::BAD_REQUEST, "the config is not UTF-8".into()),
    };
    let applied = blocking(control, move |control| control.apply(text)).await;
    match applied {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => error(&e),
    }
}

async fn delete_applications(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(refused) = control.refuse(&headers) {
        return refused;
    }
    match blocking(control, |control| control.delete_all()).await {
        Ok(deleted) => Json(json!({ "deleted": deleted })).into_response(),
        Err(e) => error(&e),
    }
}

async fn delete_application(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(refused) = control.refuse(&headers) {
        return refused;
    }
    let deleted = name.clone();
    match blocking(control, move |control| control.delete(&name)).await {
        Ok(()) => Json(json!({ "deleted": [deleted] })).into_response(),
        Err(e) => error(&e),
    }
}

async fn shutdown(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(refused) = control.refuse(&headers) {
        return refused;
    }
    tracing::info!("the control API was asked to shut the process down");
    control.stop.notify_one();
    text(
        StatusCode::ACCEPTED,
        "shutting down: draining the requests in flight\n".into(),
    )
}

/// Runs `f` on a thread where it may block on the instance.
async fn blocking<T: Send + 'static>(
    control: Arc<Control>,
    f: impl FnOnce(&Control) -> Result<T, ServeError> + Send + 'static,
) -> Result<T, ServeError> {
    tokio::task::spawn_blocking(move || f(&control))
        .await
        .unwrap_or_else(|e| {
            Err(ServeError::new(ErrorKind::Runtime).with_message(format!("the change failed: {e}")))
        })
}

/// A JSON body.
struct Json<T>(T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec_pretty(&self.0).unwrap_or_default();
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// A failed change, with its reason: 400 for a bad config, 404 for an unknown name, 409 for
/// what the instance cannot do in its state, 500 when deploying failed (a constructor's
/// error).
fn error(e: &ServeError) -> Response {
    let status = match e.kind() {
        ErrorKind::Config => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Runtime => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, format!("{e}\n"))
}

// --- what they do ---------------------------------------------------------------------------------

/// What a `PUT` did to each application.
#[derive(Debug, Serialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// It did not run: deployed.
    Deployed,
    /// Changed in place (Ray's lightweight options, resources).
    Updated,
    /// A new version deployed, rolling.
    Redeployed,
    /// Nothing to change.
    Unchanged,
}

#[derive(Debug, Serialize)]
struct Summary {
    applications: BTreeMap<String, Outcome>,
    deleted: Vec<String>,
    /// What in the config has no effect on a running instance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// One application of a `PUT`, checked and built, not yet deployed.
struct Planned {
    index: usize,
    offered: usize,
    servable: Box<dyn apps::Servable>,
    configs: Vec<DeploymentConfig>,
}

impl Control {
    /// `Some(401)` unless the request carries the token (when there is one).
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let token = self.token.as_deref()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|given| same_secret(given.trim(), token)) {
            return None;
        }
        let mut refused = text(
            StatusCode::UNAUTHORIZED,
            "the control API needs its token: `Authorization: Bearer TOKEN`\n".into(),
        );
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"serve\""),
        );
        Some(refused)
    }

    /// Makes the running applications what the config `text` says (see the module's docs).
    fn apply(&self, text: String) -> Result<Summary, ServeError> {
        let _one_at_a_time = self.changing.locked();
        let file = ConfigFile::from_json(text)?;
        let config = &file.config;
        let mut notes = Vec::new();
        let mut seen_names = std::collections::BTreeSet::new();
        let mut seen_prefixes = BTreeMap::new();
        for app in &config.applications {
            if !seen_names.insert(app.name.as_str()) {
                return Err(config_error(format!(
                    "two applications are named `{}`: names must differ",
                    app.name
                )));
            }
            if self.http.listening.is_some()
                && let Some(other) = seen_prefixes.insert(app.route_prefix.as_str(), &app.name)
            {
                return Err(config_error(format!(
                    "applications `{other}` and `{}` both have route_prefix `{}`",
                    app.name, app.route_prefix
                )));
            }
        }
        // Everything is built and checked before anything changes.
        let mut planned = Vec::with_capacity(config.applications.len());
        for (index, app) in config.applications.iter().enumerate() {
            let offered = match &app.import_path {
                Some(path) => apps::choose(
                    &self.offered,
                    import_name(path),
                    &format!("application `{}`'s import_path `{path}`", app.name),
                    &mut notes,
                )?,
                None if self.offered.len() == 1 => 0,
                None => {
                    let names: Vec<&str> = self.offered.iter().map(|o| o.name.as_str()).collect();
                    return Err(config_error(format!(
                        "application `{}` has no import_path, and this binary offers several: {}",
                        app.name,
                        names.join(", ")
                    )));
                }
            };
            let servable = self.offered[offered].build(app.args.clone())?;
            let mut configs = servable.deployment_configs();
            file.apply(index, &mut configs)?;
            for config in &configs {
                config.validate()?;
            }
            planned.push(Planned {
                index,
                offered,
                servable,
                configs,
            });
        }
        if self.serve.clustered() {
            let running = self.deployed.locked();
            let same = running.len() == config.applications.len()
                && config
                    .applications
                    .iter()
                    .all(|a| running.contains_key(&a.name));
            if !same {
                return Err(ServeError::new(ErrorKind::Runtime).with_message(
                    "in cluster mode the head runs the one application its workers mirror: a \
                     config may change it (under its name), not add or delete applications",
                ));
            }
        }
        notes.extend(self.unchangeable(config));
        for note in &notes {
            tracing::info!("{note}");
        }

        // Those the config leaves out go first (a new application may take a route of theirs).
        let running: Vec<String> = self.deployed.locked().keys().cloned().collect();
        let mut deleted = Vec::new();
        for name in running {
            if !config.applications.iter().any(|a| a.name == name) {
                self.delete(&name)?;
                deleted.push(name);
            }
        }
        let mut applications = BTreeMap::new();
        for plan in planned {
            let entry = config.applications[plan.index].clone();
            let name = entry.name.clone();
            let previous = self.deployed.locked().get(&name).cloned();
            let outcome = match previous.filter(|p| same_code(p, &entry, plan.offered)) {
                Some(previous) => match in_place(&previous.configs, &plan.configs) {
                    Some(updates) if updates.is_empty() => Outcome::Unchanged,
                    Some(updates) => {
                        for (deployment, update) in updates {
                            self.serve
                                .update_app_deployment(&name, &deployment, update)?;
                        }
                        Outcome::Updated
                    }
                    None => {
                        self.deploy(plan.servable, &entry, plan.configs.clone())?;
                        Outcome::Redeployed
                    }
                },
                None => {
                    let redeploy = self.deployed.locked().contains_key(&name);
                    self.deploy(plan.servable, &entry, plan.configs.clone())?;
                    if redeploy {
                        Outcome::Redeployed
                    } else {
                        Outcome::Deployed
                    }
                }
            };
            tracing::info!(application = %name, "control API: {outcome:?}");
            if outcome != Outcome::Unchanged {
                self.deployed.locked().insert(
                    name.clone(),
                    Deployed::new(plan.offered, entry, plan.configs),
                );
            }
            applications.insert(name, outcome);
        }
        Ok(Summary {
            applications,
            deleted,
            notes,
        })
    }

    /// Deploys (a new version of) an application as `entry` names it.
    fn deploy(
        &self,
        servable: Box<dyn apps::Servable>,
        entry: &ApplicationConfig,
        configs: Vec<DeploymentConfig>,
    ) -> Result<(), ServeError> {
        let options = RunOptions::named(entry.name.clone()).deployment_configs(configs);
        match self.http.listening {
            Some(_) => {
                let prefix = under_root(self.http.root_path.as_deref(), &entry.route_prefix);
                servable.run_http(&self.serve, options.route_prefix(prefix))
            }
            None => servable.run(&self.serve, options),
        }
    }

    /// What of the top level of `config` a running process cannot change.
    fn unchangeable(&self, config: &crate::config::ServeConfig) -> Vec<String> {
        let mut notes = Vec::new();
        if let (Some(http), Some(listening)) = (&config.http_options, self.http.listening) {
            let host_differs = http
                .host
                .as_deref()
                .is_some_and(|h| h.parse().ok() != Some(listening.ip()));
            let port_differs = http.port.is_some_and(|p| p != listening.port() && p != 0);
            if host_differs || port_differs {
                notes.push(format!(
                    "http_options: the proxy keeps listening on {listening} (host and port take \
                     effect when the process starts)"
                ));
            }
        }
        if config.logging_config.is_some() {
            notes.push(
                "logging_config (top level): the process's log format and level are set when it \
                 starts; its access-log and level settings reach the deployments deployed now"
                    .into(),
            );
        }
        notes
    }

    fn delete(&self, name: &str) -> Result<(), ServeError> {
        self.serve.delete(name)?;
        self.deployed.locked().remove(name);
        tracing::info!(application = %name, "control API: deleted");
        Ok(())
    }

    fn delete_all(&self) -> Result<Vec<String>, ServeError> {
        let _one_at_a_time = self.changing.locked();
        let names: Vec<String> = self.serve.status().into_iter().map(|a| a.name).collect();
        for name in &names {
            self.delete(name)?;
        }
        Ok(names)
    }

    /// The instance as Ray's `GET /api/serve/applications/` describes it.
    fn details(&self) -> Value {
        let deployed = self.deployed.locked().clone();
        let applications: serde_json::Map<String, Value> = self
            .serve
            .status()
            .into_iter()
            .map(|app| {
                let details = app_details(&app, deployed.get(&app.name));
                (app.name, details)
            })
            .collect();
        json!({
            "deploy_mode": "MULTI_APP",
            "proxy_location": if self.http.listening.is_some() { "EveryNode" } else { "Disabled" },
            "http_options": {
                "host": self.http.listening.map(|a| a.ip().to_string()),
                "port": self.http.listening.map(|a| a.port()),
                "root_path": self.http.root_path.clone().unwrap_or_default(),
            },
            "applications": applications,
        })
    }
}

/// One application as Ray's `ApplicationDetails` has it.
fn app_details(app: &ApplicationStatus, deployed: Option<&Deployed>) -> Value {
    let configs = deployed.map_or(&[][..], |d| &d.configs[..]);
    let deployments: serde_json::Map<String, Value> = app
        .deployments
        .iter()
        .map(|d| {
            let config = configs
                .iter()
                .find(|c| c.name == d.name)
                .map(DeploymentEntry::complete);
            let replicas: Vec<Value> = d
                .replicas
                .iter()
                .map(|r| {
                    json!({
                        "replica_id": format!("{}#{}", d.name, r.replica_id),
                        "state": r.state,
                        "node_id": r.node,
                        "ongoing_requests": r.ongoing_requests,
                        "multiplexed_model_ids": r.multiplexed_model_ids,
                    })
                })
                .collect();
            let details = json!({
                "name": d.name,
                "status": d.status,
                "message": d.message.clone().unwrap_or_default(),
                "target_num_replicas": d.target_replicas,
                "deployment_config": config,
                "replicas": replicas,
            });
            (d.name.clone(), details)
        })
        .collect();
    let deployed_app_config = deployed.map(|d| {
        let mut entry = d.entry.clone();
        entry.deployments = d.configs.iter().map(DeploymentEntry::complete).collect();
        entry
    });
    json!({
        "name": app.name,
        "route_prefix": app.route_prefix,
        "status": app.status,
        "message": "",
        "last_deployed_time_s": deployed.map(|d| d.at),
        "deployed_app_config": deployed_app_config,
        "deployments": deployments,
    })
}

/// Whether an application deployed as `previous` runs the same code as `entry` would: the same
/// offered application, `args` and route prefix.
fn same_code(previous: &Deployed, entry: &ApplicationConfig, offered: usize) -> bool {
    previous.offered == offered
        && previous.entry.args == entry.args
        && previous.entry.route_prefix == entry.route_prefix
}

/// The updates that take every deployment from `old` to `new` in place, by deployment name
/// (those with changes only), or `None` when some change needs a new version: a change of
/// anything but Ray's "lightweight" options (`num_replicas`, `autoscaling_config`,
/// `user_config`, `max_ongoing_requests`, `graceful_shutdown_timeout_s`, the health check
/// periods) and resources (replicas replaced rolling), or a `user_config` or autoscaling config
/// taken away.
fn in_place(
    old: &[DeploymentConfig],
    new: &[DeploymentConfig],
) -> Option<Vec<(String, DeploymentUpdate)>> {
    if old.len() != new.len() {
        return None;
    }
    let mut updates = Vec::new();
    for new in new {
        let old = old.iter().find(|c| c.name == new.name)?;
        // A user_config or an autoscaling config taken away needs a new version.
        if (old.user_config.is_some() && new.user_config.is_none())
            || (old.autoscaling.is_some() && new.autoscaling.is_none())
        {
            return None;
        }
        let mut rest = new.clone();
        rest.num_replicas = old.num_replicas;
        rest.user_config.clone_from(&old.user_config);
        rest.max_ongoing_requests = old.max_ongoing_requests;
        rest.resources = old.resources.clone();
        rest.autoscaling.clone_from(&old.autoscaling);
        rest.graceful_shutdown_timeout_s = old.graceful_shutdown_timeout_s;
        rest.health_check_period_s = old.health_check_period_s;
        rest.health_check_timeout_s = old.health_check_timeout_s;
        if rest != *old {
            return None;
        }
        let mut update = DeploymentUpdate::new();
        let mut changed = false;
        if new.num_replicas != old.num_replicas && new.autoscaling.is_none() {
            update = update.num_replicas(new.num_replicas);
            changed = true;
        }
        if new.user_config != old.user_config {
            update = update.user_config(new.user_config.clone()?);
            changed = true;
        }
        if new.max_ongoing_requests != old.max_ongoing_requests {
            update = update.max_ongoing_requests(new.max_ongoing_requests);
            changed = true;
        }
        if new.resources != old.resources {
            update = update.resources(new.resources.clone());
            changed = true;
        }
        if new.autoscaling != old.autoscaling
            && let Some(autoscaling) = &new.autoscaling
        {
            update = update.autoscaling_config(autoscaling.clone());
            changed = true;
        }
        if new.graceful_shutdown_timeout_s != old.graceful_shutdown_timeout_s {
            update = update.graceful_shutdown_timeout_s(new.graceful_shutdown_timeout_s);
            changed = true;
        }
        if new.health_check_period_s != old.health_check_period_s {
            update = update.health_check_period_s(new.health_check_period_s);
            changed = true;
        }
        if new.health_check_timeout_s != old.health_check_timeout_s {
            update = update.health_check_timeout_s(new.health_check_timeout_s);
            changed = true;
        }
        if changed {
            updates.push((new.name.clone(), update));
        }
    }
    Some(updates)
}

/// Compares a secret in time that does not depend on where the strings differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut differ = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        differ |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cret!", "s3cret"));
        assert!(!same_secret("", "s3cret"));
        assert!(!same_secret("S3cret", "s3cret"));
    }

    #[test]
    fn only_replicas_user_config_slots_and_resources_change_in_place() {
        let old = vec![DeploymentConfig::new("A").num_replicas(1)];
        let mut new = old.clone();
        assert_eq!(in_place(&old, &new).map(|u| u.len()), Some(0));
        new[0].num_replicas = 3;
        new[0].user_config = Some(json!({"greeting": "Hola"}));
        let updates = in_place(&old, &new).unwrap();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].1.num_replicas, Some(3));
        assert_eq!(updates[0].1.user_config, Some(json!({"greeting": "Hola"})));
        // So are autoscaling, the graceful shutdown timeout and the health check periods.
        let mut tuned = old.clone();
        tuned[0].graceful_shutdown_timeout_s = 1.0;
        tuned[0].health_check_period_s = 2.0;
        tuned[0].autoscaling = Some(crate::config::AutoscalingConfig::default());
        let updates = in_place(&old, &tuned).unwrap();
        assert_eq!(updates[0].1.graceful_shutdown_timeout_s, Some(1.0));
        assert_eq!(updates[0].1.health_check_period_s, Some(2.0));
        assert!(updates[0].1.autoscaling_config.is_some());
        // Anything else is a new version.
        let mut other = old.clone();
        other[0].max_queued_requests = Some(3);
        assert!(in_place(&old, &other).is_none());
        // So is autoscaling taken away.
        assert!(in_place(&tuned, &old).is_none());
        // So is a user_config taken away.
        let with = vec![new[0].clone()];
        let mut without = with.clone();
        without[0].user_config = None;
        assert!(in_place(&with, &without).is_none());
    }
}
