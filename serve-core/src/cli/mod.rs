//! The `serve` command line, in one line of an application binary's `main`:
//!
//! ```no_run
//! # use serve_core::prelude::*;
//! # use serve_core::http::Request;
//! # #[deployment] #[derive(Default)] pub struct Hello;
//! # #[deployment] impl Hello { pub fn call(&self, _req: Request) -> String { "hi".into() } }
//! fn main() -> std::process::ExitCode {
//!     serve_core::main(Hello::bind())
//! }
//! ```
//!
//! gives the binary Ray Serve's verbs:
//!
//! * `run` (the default with no verb): serve the application over HTTP and block; `--host`,
//!   `--port`, `--route-prefix`, `--name` (the application's name: by default the config file's
//!   `applications[0].name`, else its ingress deployment's name, as `config` prints it),
//!   `--config FILE` (or the file as the argument, as Ray's `serve run config.yaml`); `run NAME`
//!   (or Ray's import path, `run hello:language_classifier`) picks one of the applications a
//!   binary offers with [`apps`](crate::apps). Ctrl-C or SIGTERM stops accepting connections,
//!   lets the requests in flight finish (up to each deployment's `graceful_shutdown_timeout_s`,
//!   20 s by default, or `--graceful-shutdown-timeout`), and exits 0. With `--cluster URL`
//!   (feature `cluster`) the process is the head of a cluster over the NATS server at `URL`.
//! * `config`: print the application's full configuration (every deployment with its options) as a
//!   config file to edit and pass back with `run --config` (Ray's `serve build`).
//! * `status`: ask a running instance (`--address`) for its applications, deployments, replica
//!   counts and states (Ray's `serve status`); in cluster mode, ask the head: each replica's
//!   `node` says where it runs.
//! * `worker` (feature `cluster`): join the cluster whose head runs `run --cluster URL`, and run
//!   the replicas the head places here (see the guide's chapter "Running on many machines").
//!
//! Every verb takes `--log-level LEVEL` and `--log-format text|json`; the config file's
//! top-level `logging_config` sets the same (the flags win), and `RUST_LOG` wins over both. The
//! proxy and each replica write an access line per request (target `serve::access`); see the
//! guide's section "Logs".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::deployment::Deployment;
use crate::api::handle::CallOne;
use crate::config::{
    ApplicationConfig, ConfigFile, Encoding, LogLevel, LoggingConfig, ServeConfig, config_error,
    rules,
};
use crate::control::application::Application;
use crate::control::status::ApplicationStatus;
use crate::error::{ErrorKind, ServeError};
use crate::http::{IntoHttpResponse, Request};
use crate::serve::{RunOptions, Serve};
use crate::util::time;
use apps::{Offered, import_name, under_root};
use serde::de::DeserializeOwned;

mod apps;
mod client;
mod control;
mod logging;

#[derive(Parser, Debug)]
#[command(
    about = "Serve this application over HTTP (alone, or as the head of a cluster), join a cluster as a worker, print its config, or ask a running instance for its status",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no verb, the binary runs: `app --port 9000` is `app run --port 9000`.
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// How the process logs (every verb).
#[derive(clap::Args, Debug, Default)]
struct LogArgs {
    /// The least severe level written: debug, info, warning, error [default: the config file's
    /// `logging_config.log_level`, else info; `RUST_LOG` wins over both].
    #[arg(long, global = true, value_parser = parse_level)]
    log_level: Option<LogLevel>,
    /// Log lines as text or as JSON objects [default: the config file's
    /// `logging_config.encoding`, else text].
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn parse_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::parse(s).ok_or_else(|| {
        format!("`{s}` is not a log level: use debug, info, warning, error or critical")
    })
}

impl LogArgs {
    /// The flags as a top-level `logging_config`, over the file's.
    fn over(&self, file: Option<&ConfigFile>) -> LoggingConfig {
        let flags = LoggingConfig {
            log_level: self.log_level,
            encoding: self.log_format.map(|f| match f {
                LogFormat::Text => Encoding::Text,
                LogFormat::Json => Encoding::Json,
            }),
            ..LoggingConfig::default()
        };
        let file = file.and_then(|f| f.config.logging_config.clone());
        flags.or(&file.unwrap_or_default())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the application over HTTP until Ctrl-C or SIGTERM (the default).
    Run(RunArgs),
    /// Print the application's full configuration as a config file.
    Config {
        /// The file format.
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
    },
    /// Join a cluster as a worker (cluster mode): run the replicas the head places here.
    #[cfg(feature = "cluster")]
    Worker(WorkerArgs),
    /// Show the applications, deployments and replicas of a running instance.
    Status {
        /// The running instance's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        address: String,
    },
    /// Make a running instance's applications what a config file says, through its control
    /// API (Ray's `serve deploy`): new ones are deployed, changed ones updated (in place when
    /// only Ray's lightweight options change: replicas, autoscaling, user_config, ...), missing
    /// ones deleted.
    Deploy {
        /// The config file (YAML or TOML), as `run --config` takes it.
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        admin: client::AdminClientArgs,
    },
    /// Delete one application of a running instance (its route answers 404, its replicas stop
    /// once their requests finished).
    Delete {
        /// The application's name, as `status` shows it.
        name: String,
        #[command(flatten)]
        admin: client::AdminClientArgs,
    },
    /// Ask a running instance to drain its requests and exit (as on SIGTERM).
    Shutdown {
        #[command(flatten)]
        admin: client::AdminClientArgs,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The application to serve, by name or as Ray's import path (`hello:language_classifier`:
    /// the part after `:`), or a config file (`.yaml`, `.yml`, `.toml`) as `--config` [default:
    /// the config file's `import_path`, else the binary's only application].
    #[arg(value_name = "APP_OR_CONFIG")]
    target: Option<String>,
    /// The host to listen on [default: 127.0.0.1, or the config file's].
    #[arg(long)]
    host: Option<String>,
    /// The port to listen on (0: any free port) [default: 8000, or the config file's].
    #[arg(long)]
    port: Option<u16>,
    /// The route prefix to serve the application under [default: /, or the config file's].
    #[arg(long)]
    route_prefix: Option<String>,
    /// The application's name (in `status`) [default: the config file's, else the ingress
    /// deployment's name].
    #[arg(long)]
    name: Option<String>,
    /// A config file (YAML or TOML) whose values override the code's defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cancel a request still running after this many seconds and answer 408 [default: no
    /// limit, or the config file's `http_options.request_timeout_s`].
    #[arg(long)]
    request_timeout_s: Option<f64>,
    /// After Ctrl-C / SIGTERM, stop waiting for in-flight requests after this many seconds in
    /// all; each deployment also fails its own after its `graceful_shutdown_timeout_s` (20 s
    /// unless configured) [default: the longest of those].
    #[arg(long)]
    graceful_shutdown_timeout: Option<f64>,
    /// Where the control API listens (`deploy`, `delete`, `shutdown`, and Ray's REST API under
    /// `/api/serve/`): `HOST:PORT` (port 0: any free port), or `none` [default: 127.0.0.1:8265,
    /// Ray's dashboard address; if that is busy, the process runs without one and says so].
    #[arg(long)]
    admin_address: Option<String>,
    /// The token the control API requires of every request (`Authorization: Bearer TOKEN`);
    /// required when `--admin-address` is not loopback [default: `SERVE_ADMIN_TOKEN`].
    #[arg(long)]
    admin_token: Option<String>,
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    node: NodeArgs,
}

/// What a node of a cluster is and offers (`run` as the head, `worker`).
#[cfg(feature = "cluster")]
#[derive(clap::Args, Debug, Default)]
struct NodeArgs {
    /// Run as a cluster over the NATS server(s) at this URL (`nats://HOST:PORT`,
    /// `tls://HOST:PORT`, `nats://user:password@HOST:PORT`) [default: the config file's
    /// `cluster.url`; none: everything in this process].
    #[arg(long)]
    cluster: Option<String>,
    /// Namespaces the cluster's NATS subjects [default: the application's name].
    #[arg(long)]
    cluster_name: Option<String>,
    /// The head waits for this many workers to join before deploying, so the first replicas
    /// spread over them [default: the config file's `cluster.min_workers`, else 0].
    #[arg(long)]
    min_workers: Option<usize>,
    /// This node's name in `status` and errors [default: `head`; a worker: host name and id].
    #[arg(long)]
    node_name: Option<String>,
    /// CPUs this node offers replicas [default: not limited].
    #[arg(long)]
    num_cpus: Option<f64>,
    /// GPUs this node offers replicas [default: the detected GPUs].
    #[arg(long)]
    num_gpus: Option<f64>,
    /// Custom resources this node offers, as JSON: `'{"a100": 2}'`.
    #[arg(long)]
    resources: Option<String>,
    /// NATS user name (with `--nats-password`, or `SERVE_NATS_PASSWORD`).
    #[arg(long)]
    nats_user: Option<String>,
    /// NATS password [default: `SERVE_NATS_PASSWORD`].
    #[arg(long)]
    nats_password: Option<String>,
    /// NATS token [default: `SERVE_NATS_TOKEN`].
    #[arg(long)]
    nats_token: Option<String>,
    /// A NATS `.creds` file.
    #[arg(long)]
    nats_creds: Option<PathBuf>,
    /// A root certificate (PEM) for `tls://` servers signed by a private CA.
    #[arg(long)]
    nats_ca: Option<PathBuf>,
}

#[cfg(feature = "cluster")]
#[derive(clap::Args, Debug)]
struct WorkerArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// A config file: its `cluster` section, and with `http_options.proxy_location: EveryNode`
    /// its HTTP host and port.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve HTTP from this worker too, on this port (0: any free port) [default: only with
    /// `proxy_location: EveryNode`, on the config file's port].
    #[arg(long)]
    http_port: Option<u16>,
    /// The host the worker's HTTP proxy listens on [default: 127.0.0.1, or the config file's].
    #[arg(long)]
    host: Option<String>,
    /// After Ctrl-C / SIGTERM, wait this many seconds for requests running here [default: 20].
    #[arg(long)]
    graceful_shutdown_timeout: Option<f64>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Yaml,
    Toml,
}

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;

/// The applications a binary offers its command line, by name (see [`apps`]).
#[must_use = "call `.main()` to run the command line"]
pub struct AppsBuilder {
    offered: Vec<Offered>,
}

/// Starts the list of the applications a binary offers, for a `main` that serves one of several:
///
/// ```no_run
/// # use serve_core::prelude::*;
/// # use serve_core::http::Request;
/// # #[deployment] #[derive(Default)] pub struct Hello;
/// # #[deployment] impl Hello { pub fn call(&self, _req: Request) -> String { "hi".into() } }
/// # #[deployment] #[derive(Default)] pub struct Bye;
/// # #[deployment] impl Bye { pub fn call(&self, _req: Request) -> String { "bye".into() } }
/// fn main() -> std::process::ExitCode {
///     serve_core::apps()
///         .app("hello", Hello::bind())
///         .app("bye", Bye::bind())
///         .main()
/// }
/// ```
///
/// `app run hello` (or `app run greetings:hello`, as Ray's `serve run` takes an import path)
/// serves the first; a config file picks one with its application's `import_path`
/// (`import_path: greetings:bye`). Each is named for the part after `:` (`hello`); `config`
/// prints them all.
pub fn apps() -> AppsBuilder {
    AppsBuilder {
        offered: Vec::new(),
    }
}

impl AppsBuilder {
    /// Offers `app` as `name`.
    pub fn app<D, R>(mut self, name: impl Into<String>, app: Application<D>) -> Self
    where
        D: Deployment,
        D::Handle: CallOne<Request, Output = R>,
        R: IntoHttpResponse + Send + 'static,
    {
        self.offered.push(apps::offer(name.into(), app));
        self
    }

    /// Offers as `name` the application `build` makes from its arguments: a config file's
    /// `args` for the application (Ray's application builder), deserialised into `A`; no
    /// `args` are read as an empty mapping (`{}`), so an `A` whose fields all have defaults
    /// needs none.
    ///
    /// ```no_run
    /// # use serve_core::prelude::*;
    /// # use serve_core::http::Request;
    /// # #[deployment] pub struct Greeter { greeting: String }
    /// # #[deployment] impl Greeter {
    /// #     pub fn new(greeting: String) -> Self { Self { greeting } }
    /// #     pub fn call(&self, _req: Request) -> String { self.greeting.clone() }
    /// # }
    /// #[derive(serde::Deserialize)]
    /// struct GreeterArgs {
    ///     #[serde(default = "hello")]
    ///     greeting: String,
    /// }
    /// fn hello() -> String { "Hello".into() }
    ///
    /// fn main() -> std::process::ExitCode {
    ///     serve_core::apps()
    ///         .app_with_args("greeter", |args: GreeterArgs| Greeter::bind(args.greeting))
    ///         .main()
    /// }
    /// ```
    ///
    /// with `args: {greeting: Hola}` in the config file's application.
    pub fn app_with_args<A, D, R>(
        mut self,
        name: impl Into<String>,
        build: impl Fn(A) -> Application<D> + Send + Sync + 'static,
    ) -> Self
    where
        A: DeserializeOwned,
        D: Deployment,
        D::Handle: CallOne<Request, Output = R>,
        R: IntoHttpResponse + Send + 'static,
    {
        self.offered.push(apps::offer_with_args(name.into(), build));
        self
    }

    /// Runs the `serve` command line over these applications (see [`main`](crate::main)).
    pub fn main(self) -> ExitCode {
        main_with(self.offered)
    }
}

/// Runs the `serve` command line for `app` (`run`, `config`, `status` or `worker`; see the crate
/// docs): parses the process's arguments, does what they say, and returns the process's exit
/// code. A binary offering several applications uses [`apps`] instead.
pub fn main<D, R>(app: Application<D>) -> ExitCode
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    main_with(apps::single(app))
}

/// The command line over the applications `offered`.
fn main_with(offered: Vec<Offered>) -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => run(offered, args, &cli.log),
        Command::Config { format } => {
            let _logs = install_logging(&cli.log.over(None), &[]);
            print_config(offered, format)
        }
        #[cfg(feature = "cluster")]
        Command::Worker(args) => worker(offered, args, &cli.log),
        Command::Status { address } => {
            let _logs = install_logging(&cli.log.over(None), &[]);
            status(&address)
        }
        Command::Deploy { config, admin } => {
            let _logs = install_logging(&cli.log.over(None), &[]);
            client::deploy(&config, &admin)
        }
        Command::Delete { name, admin } => {
            let _logs = install_logging(&cli.log.over(None), &[]);
            client::delete(&name, &admin)
        }
        Command::Shutdown { admin } => {
            let _logs = install_logging(&cli.log.over(None), &[]);
            client::shutdown(&admin)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the process's log subscriber for the top-level `logging` and the deployments'
/// `configs`; the guard flushes the log when dropped.
fn install_logging(
    logging: &LoggingConfig,
    configs: &[crate::config::DeploymentConfig],
) -> Result<logging::Guards, ServeError> {
    let deployments: Vec<LoggingConfig> = configs.iter().map(|c| c.logging.clone()).collect();
    logging::install(&logging::LogSettings::new(logging, &deployments)).map_err(config_error)
}

/// The application's name: its ingress deployment's (the last of its configurations).
fn app_name(configs: &[crate::config::DeploymentConfig]) -> String {
    configs.last().map(|c| c.name.clone()).unwrap_or_default()
}

fn runtime_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(message)
}

/// Which application to serve: the index of its entry in the config file (if it has one) and
/// of the offered application. `run NAME` names it; else the file's first application, whose
/// `import_path` picks among those offered; else the binary's only one.
/// What is worth saying about the choice goes into `notes`, for the log.
fn select(
    offered: &[Offered],
    file: Option<&ServeConfig>,
    target: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<(Option<usize>, usize), ServeError> {
    let applications = file.map_or(&[][..], |f| &f.applications[..]);
    if let Some(target) = target {
        let at = apps::choose(offered, import_name(target), &format!("`{target}`"), notes)?;
        let name = &offered[at].name;
        let entry = applications
            .iter()
            .position(|a| {
                a.name == *name || a.import_path.as_deref().map(import_name) == Some(name.as_str())
            })
            .or((applications.len() == 1).then_some(0));
        return Ok((entry, at));
    }
    if let Some(first) = applications.first() {
        if applications.len() > 1 {
            notes.push(format!(
                "the config file has {} applications; serving its first, `{}` (name another with \
                 `run NAME`)",
                applications.len(),
                first.name
            ));
        }
        let at = match &first.import_path {
            Some(path) => apps::choose(
                offered,
                import_name(path),
                &format!("import_path `{path}`"),
                notes,
            )?,
            None => only(offered)?,
        };
        return Ok((Some(0), at));
    }
    Ok((None, only(offered)?))
}

/// The binary's only application, or an error naming them all.
fn only(offered: &[Offered]) -> Result<usize, ServeError> {
    match offered {
        [_] => Ok(0),
        [] => Err(config_error("this binary offers no application".into())),
        _ => {
            let names: Vec<&str> = offered.iter().map(|o| o.name.as_str()).collect();
            Err(config_error(format!(
                "this binary offers several applications ({}): name one, as `run {}` or with \
                 the config file's `import_path`",
                names.join(", "),
                names[0]
            )))
        }
    }
}

/// Every application offered, as a config file: Ray's `serve build`. Each application's
/// `import_path` names it (`hello:LanguageClassifier`); the first is served at `/`, the others
/// under their names.
fn print_config(offered: Vec<Offered>, format: Format) -> Result<(), ServeError> {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let mut config: Option<ServeConfig> = None;
    for (i, offered) in offered.into_iter().enumerate() {
        let name = offered.name.clone();
        let route_prefix = if i == 0 {
            "/".to_owned()
        } else {
            format!("/{name}")
        };
        let app = offered.build(None)?;
        let printed = ServeConfig::for_application(
            &name,
            &route_prefix,
            DEFAULT_HOST,
            DEFAULT_PORT,
            &app.deployment_configs(),
        );
        let mut application = printed.applications.into_iter().next();
        if let Some(a) = &mut application {
            a.import_path = Some(format!("{binary}:{name}"));
        }
        match &mut config {
            None => {
                config = Some(ServeConfig {
                    applications: application.into_iter().collect(),
                    ..printed
                })
            }
            Some(config) => config.applications.extend(application),
        }
    }
    let Some(config) = config else {
        return Err(config_error("this binary offers no application".into()));
    };
    match format {
        Format::Yaml => print!("{}", config.to_yaml()),
        Format::Toml => print!("{}", config.to_toml()?),
    }
    Ok(())
}

/// Says, in one line, which keys of the config file (and which deployments' log encodings) have
/// no effect here.
fn log_ignored(
    file: Option<&ConfigFile>,
    configs: &[crate::config::DeploymentConfig],
    process: Encoding,
) {
    let mut ignored = file.map(|f| f.config.ignored_keys()).unwrap_or_default();
    for config in configs {
        if let Some(encoding) = config.logging.encoding
            && encoding != process
        {
            ignored.push(format!(
                "logging_config.encoding {encoding:?} (deployment `{}`: the process writes \
                 {process:?})",
                config.name
            ));
        }
    }
    if !ignored.is_empty() {
        tracing::info!(
            "config keys accepted but with no effect here: {}",
            ignored.join("; ")
        );
    }
}

fn run(offered: Vec<Offered>, args: RunArgs, log: &LogArgs) -> Result<(), ServeError> {
    let (target, config_path) = match args.target.as_deref() {
        Some(t)
            if [".yaml", ".yml", ".toml"]
                .iter()
                .any(|ext| t.ends_with(ext)) =>
        {
            if args.config.is_some() {
                return Err(config_error(format!(
                    "`{t}` and `--config` both give a config file: give one"
                )));
            }
            (None, Some(PathBuf::from(t)))
        }
        t => (t, args.config.clone()),
    };
    let file = config_path.as_ref().map(ConfigFile::load).transpose()?;
    let mut notes = Vec::new();
    let (entry, chosen) = select(
        &offered,
        file.as_ref().map(|f| &f.config),
        target,
        &mut notes,
    )?;
    let app_config: Option<&ApplicationConfig> =
        entry.and_then(|i| file.as_ref().map(|f| &f.config.applications[i]));
    let app = offered[chosen].build(app_config.and_then(|a| a.args.clone()))?;
    let mut configs = app.deployment_configs();
    if let Some(file) = &file {
        file.apply(entry.unwrap_or(usize::MAX), &mut configs)?;
    }
    let logging = log.over(file.as_ref());
    let _logs = install_logging(&logging, &configs)?;
    for note in notes {
        tracing::info!("{note}");
    }
    log_ignored(
        file.as_ref(),
        &configs,
        logging.encoding.unwrap_or(Encoding::Text),
    );
    let http_options = file
        .as_ref()
        .and_then(|f| f.config.http_options.clone())
        .unwrap_or_default();
    let proxy_location = file.as_ref().and_then(|f| f.config.proxy_location());
    let host = args
        .host
        .or(http_options.host)
        .unwrap_or_else(|| DEFAULT_HOST.into());
    let port = args.port.or(http_options.port).unwrap_or(DEFAULT_PORT);
    let shutdown_timeout = (args.graceful_shutdown_timeout)
        .map(|s| {
            time::seconds(s).map_err(|_| {
                config_error(format!(
                    "--graceful-shutdown-timeout must be a number of seconds of at least 0, not {s}"
                ))
            })
        })
        .transpose()?;
    // The file's value was checked when it was read; the flag's is checked here, by the same rule.
    if let Some(s) = args.request_timeout_s {
        rules::number("request_timeout_s", "--request-timeout-s", s).map_err(config_error)?;
    }
    let request_timeout = (args.request_timeout_s.or(http_options.request_timeout_s))
        .map(|s| time::seconds(s).map_err(|e| config_error(e.to_string())))
        .transpose()?;
    let given_prefix = args
        .route_prefix
        .or_else(|| app_config.map(|a| a.route_prefix.clone()))
        .unwrap_or_else(|| "/".into());
    let route_prefix = under_root(http_options.root_path.as_deref(), &given_prefix);
    let name = args
        .name
        .or_else(|| app_config.map(|a| a.name.clone()))
        .unwrap_or_else(|| app_name(&configs));
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| runtime_error(format!("`{host}:{port}` is not an address to listen on")))?;

    let admin = admin_options(args.admin_address, args.admin_token);
    // Listen for the stop signals before anything can be told we are ready.
    let mut stop = StopSignal::install()?;
    #[cfg(feature = "cluster")]
    let serve = {
        let cluster = args.node.cluster_options(
            file.as_ref().and_then(|f| f.config.cluster.clone()),
            &app_name(&configs),
        )?;
        let mut builder = args.node.builder()?;
        let min_workers = cluster.as_ref().map_or(0, |c| c.min_workers);
        if let Some(cluster) = cluster {
            builder = builder.cluster(cluster);
        }
        let serve = builder.start()?;
        if min_workers > 0 {
            tracing::info!("waiting for {min_workers} worker(s) to join before deploying");
            while let Err(e) =
                serve.wait_for_workers(min_workers, std::time::Duration::from_secs(10))
            {
                tracing::info!("still waiting: {e}");
            }
        }
        serve
    };
    #[cfg(not(feature = "cluster"))]
    let serve = Serve::start()?;
    // What the control API reports, and compares a new config with.
    let entry = ApplicationConfig {
        import_path: app_config.and_then(|a| a.import_path.clone()),
        args: app_config.and_then(|a| a.args.clone()),
        logging_config: app_config.and_then(|a| a.logging_config.clone()),
        ..ServeConfig::for_application(&name, &given_prefix, &host, port, &configs)
            .applications
            .remove(0)
    };
    let deployed = control::Deployed::new(chosen, entry, configs.clone());
    let options = RunOptions::named(name.clone()).deployment_configs(configs);
    let listening = if proxy_location == Some(crate::config::ProxyLocation::Disabled) {
        app.run(&serve, options)?;
        tracing::info!("application is ready (no HTTP proxy: `proxy_location: Disabled`)");
        None
    } else {
        let bound = serve.start_http(&addr.to_string())?;
        serve.set_http_request_timeout(request_timeout)?;
        serve.set_http_access_log(logging.access_log())?;
        tracing::info!("HTTP proxy listening on http://{bound}");
        app.run_http(&serve, options.route_prefix(route_prefix.as_str()))?;
        tracing::info!("application is ready at http://{bound}{route_prefix}");
        Some(bound)
    };
    let mut control = None;
    if let Some(admin) = admin {
        let http = control::HttpSettings {
            listening,
            root_path: http_options.root_path.clone(),
        };
        let running = [(name, deployed)].into_iter().collect();
        if let Some(server) = control::start(serve.clone(), offered, running, http, admin)? {
            tracing::info!("control API listening on http://{}", server.addr);
            stop.also_on(server.stop.clone());
            control = Some(server);
        }
    }

    stop.wait();
    match shutdown_timeout {
        Some(timeout) => {
            tracing::info!("stopping: draining requests in flight (up to {timeout:?})")
        }
        None => tracing::info!(
            "stopping: draining requests in flight (up to each deployment's graceful_shutdown_timeout_s)"
        ),
    }
    let finished = serve.shutdown_graceful(shutdown_timeout);
    // Last, so a client that asked for the shutdown gets its answer.
    if let Some(control) = control {
        control.close(std::time::Duration::from_secs(5));
    }
    if finished {
        tracing::info!("all requests finished; bye");
    } else {
        tracing::warn!("requests still in flight after the graceful shutdown timeout were failed");
    }
    Ok(())
}

#[cfg(feature = "cluster")]
impl NodeArgs {
    /// The cluster options the flags and the config file's `cluster` section give (flags win),
    /// or `None` for one process. The cluster is named after the application unless told.
    fn cluster_options(
        &self,
        from_file: Option<crate::config::ClusterOptions>,
        app: &str,
    ) -> Result<Option<crate::config::ClusterOptions>, ServeError> {
        let mut options = match (&self.cluster, from_file) {
            (Some(url), Some(file)) => crate::config::ClusterOptions {
                url: url.clone(),
                ..file
            },
            (Some(url), None) => crate::config::ClusterOptions::new(url.clone()),
            (None, Some(file)) => file,
            (None, None) => return Ok(None),
        };
        if let Some(name) = &self.cluster_name {
            options.name = Some(name.clone());
        }
        if let Some(n) = self.min_workers {
            options.min_workers = n;
        }
        if options.name.is_none() {
            options.name = Some(crate::config::cluster::to_token(app));
        }
        if let Some(user) = &self.nats_user {
            options.user = Some(user.clone());
        }
        let password = self
            .nats_password
            .clone()
            .or_else(|| std::env::var("SERVE_NATS_PASSWORD").ok());
        if options.user.is_some() && options.password.is_none() {
            options.password = password;
        }
        let token = self
            .nats_token
            .clone()
            .or_else(|| std::env::var("SERVE_NATS_TOKEN").ok());
        if token.is_some() {
            options.token = token;
        }
        if let Some(creds) = &self.nats_creds {
            options.credentials_file = Some(creds.clone());
        }
        if let Some(ca) = &self.nats_ca {
            options.tls_ca_file = Some(ca.clone());
        }
        options.validate().map_err(config_error)?;
        Ok(Some(options))
    }

    /// An instance builder with this node's resources and name.
    fn builder(&self) -> Result<crate::serve::ServeBuilder, ServeError> {
        let mut builder = Serve::builder();
        if let Some(n) = self.num_cpus {
            builder = builder.num_cpus(n);
        }
        if let Some(n) = self.num_gpus {
            builder = builder.num_gpus(n);
        }
        if let Some(json) = &self.resources {
            let custom: std::collections::BTreeMap<String, f64> = serde_json::from_str(json)
                .map_err(|e| {
                    config_error(format!(
                        "--resources must be a JSON object of amounts, like '{{\"a100\": 2}}': {e}"
                    ))
                })?;
            for (name, amount) in custom {
                builder = builder.resource(name, amount);
            }
        }
        if let Some(name) = &self.node_name {
            builder = builder.node_name(name.clone());
        }
        Ok(builder)
    }
}

/// `worker`: joins the cluster, runs what the head places here, optionally serves HTTP too,
/// until Ctrl-C / SIGTERM (leaves gracefully) or the head is gone (exits with an error).
#[cfg(feature = "cluster")]
fn worker(mut offered: Vec<Offered>, args: WorkerArgs, log: &LogArgs) -> Result<(), ServeError> {
    use crate::config::ProxyLocation;
    let file = args.config.as_ref().map(ConfigFile::load).transpose()?;
    let mut notes = Vec::new();
    let (entry, chosen) = select(&offered, file.as_ref().map(|f| &f.config), None, &mut notes)?;
    let app_config = entry.and_then(|i| file.as_ref().map(|f| &f.config.applications[i]));
    let app = offered
        .swap_remove(chosen)
        .build(app_config.and_then(|a| a.args.clone()))?;
    let configs = app.deployment_configs();
    let logging = log.over(file.as_ref());
    let _logs = install_logging(&logging, &configs)?;
    for note in notes {
        tracing::info!("{note}");
    }
    let Some(cluster) = args.node.cluster_options(
        file.as_ref().and_then(|f| f.config.cluster.clone()),
        &app_name(&configs),
    )?
    else {
        return Err(config_error(
            "a worker needs a cluster: `worker --cluster nats://HOST:PORT` (or `cluster.url` in \
             the config file)"
                .into(),
        ));
    };
    let http_options = file
        .as_ref()
        .and_then(|f| f.config.http_options.clone())
        .unwrap_or_default();
    let proxy_location = file.as_ref().and_then(|f| f.config.proxy_location());
    let every_node = proxy_location == Some(ProxyLocation::EveryNode);
    let http_port = args
        .http_port
        .or_else(|| every_node.then(|| http_options.port.unwrap_or(DEFAULT_PORT)));
    let shutdown_timeout = args
        .graceful_shutdown_timeout
        .map(|s| {
            time::seconds(s).map_err(|_| {
                config_error(format!(
                    "--graceful-shutdown-timeout must be a number of seconds of at least 0, not {s}"
                ))
            })
        })
        .transpose()?;
    let stop = StopSignal::install()?;
    let worker = app.start_worker(args.node.builder()?.cluster(cluster))?;
    if let Some(port) = http_port {
        let host = args
            .host
            .or(http_options.host)
            .unwrap_or_else(|| DEFAULT_HOST.into());
        let route_prefix = under_root(
            http_options.root_path.as_deref(),
            app_config.map_or("/", |a| a.route_prefix.as_str()),
        );
        let bound = worker.serve_http(&format!("{host}:{port}"), &route_prefix)?;
        if let Some(s) = http_options.request_timeout_s {
            worker.set_http_request_timeout(time::seconds(s).ok())?;
        }
        tracing::info!(
            "HTTP proxy of worker `{}` listening on http://{bound}",
            worker.node_name()
        );
    }
    tracing::info!("worker `{}` is ready", worker.node_name());
    let (tx, rx) = std::sync::mpsc::channel();
    let stopped_tx = tx.clone();
    std::thread::spawn(move || {
        stop.wait();
        let _ = tx.send(None);
    });
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _ = stopped_tx.send(Some(worker.wait()));
        });
        match rx.recv() {
            Ok(Some(why)) => Err(why),
            _ => {
                tracing::info!("leaving the cluster: draining requests running here");
                worker_leave(&*worker, shutdown_timeout);
                Ok(())
            }
        }
    })
}

#[cfg(feature = "cluster")]
fn worker_leave(worker: &dyn apps::RunningWorker, timeout: Option<std::time::Duration>) {
    if worker.leave(timeout) {
        tracing::info!("all requests finished; bye");
    } else {
        tracing::warn!("requests still running after the graceful shutdown timeout were dropped");
    }
}

/// Where the control API listens (`None`: `--admin-address none`), and its token.
fn admin_options(
    address: Option<String>,
    token: Option<String>,
) -> Option<control::ControlOptions> {
    let token = token.or_else(|| std::env::var(control::TOKEN_ENV).ok());
    match address.as_deref() {
        Some("none") => None,
        Some(addr) => Some(control::ControlOptions {
            addr: addr.to_owned(),
            default_addr: false,
            token,
        }),
        None => Some(control::ControlOptions {
            addr: control::DEFAULT_ADMIN_ADDRESS.to_owned(),
            default_addr: true,
            token,
        }),
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from the moment it is installed (and, once told,
/// the control API's `shutdown`).
struct StopSignal {
    rt: tokio::runtime::Runtime,
    asked: Option<std::sync::Arc<tokio::sync::Notify>>,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> Result<Self, ServeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| runtime_error(format!("cannot wait for signals: {e}")))?;
        #[cfg(unix)]
        let (term, int) = {
            use tokio::signal::unix::{SignalKind, signal};
            let _guard = rt.enter();
            let listen = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| runtime_error(format!("cannot listen for {name}: {e}")))
            };
            (
                listen(SignalKind::terminate(), "SIGTERM")?,
                listen(SignalKind::interrupt(), "SIGINT")?,
            )
        };
        Ok(Self {
            rt,
            asked: None,
            #[cfg(unix)]
            term,
            #[cfg(unix)]
            int,
        })
    }

    /// Stops the wait when `asked` is notified too.
    fn also_on(&mut self, asked: std::sync::Arc<tokio::sync::Notify>) {
        self.asked = Some(asked);
    }

    /// Blocks until one of the signals arrives (or the control API asks).
    fn wait(mut self) {
        let asked = self.asked.take();
        self.rt.block_on(async {
            let asked = async {
                match asked {
                    Some(asked) => asked.notified().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(unix)]
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
                _ = asked => {}
            }
            #[cfg(not(unix))]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = asked => {}
            }
        })
    }
}

fn status(address: &str) -> Result<(), ServeError> {
    let body = client::fetch_status(address)?;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Status {
        applications: Vec<ApplicationStatus>,
    }
    let status: Status = serde_json::from_slice(&body)
        .map_err(|e| runtime_error(format!("{address} did not answer with a status: {e}")))?;
    print!("{}", serde_yaml_ng::to_string(&status).unwrap_or_default());
    Ok(())
}
