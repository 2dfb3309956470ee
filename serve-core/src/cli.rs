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
//!   `--port`, `--route-prefix`, `--config FILE`. Ctrl-C or SIGTERM stops accepting connections,
//!   lets the requests in flight finish (up to each deployment's `graceful_shutdown_timeout_s`,
//!   20 s by default, or `--graceful-shutdown-timeout`), and exits 0.
//! * `config`: print the application's full configuration (every deployment with its options) as a
//!   config file to edit and pass back with `run --config` (Ray's `serve build`).
//! * `status`: ask a running instance (`--address`) for its applications, deployments, replica
//!   counts and states (Ray's `serve status`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::deployment::Deployment;
use crate::api::handle::CallOne;
use crate::config::{ApplicationConfig, ConfigFile, ServeConfig, config_error, rules};
use crate::control::application::Application;
use crate::control::status::ApplicationStatus;
use crate::error::{ErrorKind, ServeError};
use crate::http::{IntoHttpResponse, Request};
use crate::serve::Serve;
use crate::util::time;

#[derive(Parser, Debug)]
#[command(
    about = "Serve this application over HTTP, print its config, or ask a running instance for its status",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no verb, the binary runs: `app --port 9000` is `app run --port 9000`.
    #[command(flatten)]
    run: RunArgs,
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
    /// Show the applications, deployments and replicas of a running instance.
    Status {
        /// The running instance's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        address: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The host to listen on [default: 127.0.0.1, or the config file's].
    #[arg(long)]
    host: Option<String>,
    /// The port to listen on (0: any free port) [default: 8000, or the config file's].
    #[arg(long)]
    port: Option<u16>,
    /// The route prefix to serve the application under [default: /, or the config file's].
    #[arg(long)]
    route_prefix: Option<String>,
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
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Yaml,
    Toml,
}

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;

/// Runs the `serve` command line for `app` (`run`, `config` or `status`; see the crate docs): parses the process's
/// arguments, does what they say, and returns the process's exit code.
pub fn main<D, R>(app: Application<D>) -> ExitCode
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let result = match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => run(app, args),
        Command::Config { format } => print_config(&app, format),
        Command::Status { address } => status(&address),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(message)
}

fn app_name<D: Deployment>(app: &Application<D>) -> String {
    app.deployment_configs()
        .last()
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn print_config<D: Deployment>(app: &Application<D>, format: Format) -> Result<(), ServeError> {
    let config = ServeConfig::for_application(
        &app_name(app),
        "/",
        DEFAULT_HOST,
        DEFAULT_PORT,
        &app.deployment_configs(),
    );
    match format {
        Format::Yaml => print!("{}", config.to_yaml()),
        Format::Toml => print!("{}", config.to_toml()?),
    }
    Ok(())
}

fn run<D, R>(app: Application<D>, args: RunArgs) -> Result<(), ServeError>
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let file = args.config.as_ref().map(ConfigFile::load).transpose()?;
    let http_options = file
        .as_ref()
        .and_then(|f| f.config.http_options.clone())
        .unwrap_or_default();
    let app_config: Option<&ApplicationConfig> =
        file.as_ref().and_then(|f| f.config.applications.first());
    let mut configs = app.deployment_configs();
    if let Some(file) = &file {
        file.apply(0, &mut configs)?;
    }
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
    let route_prefix = args
        .route_prefix
        .or_else(|| app_config.map(|a| a.route_prefix.clone()))
        .unwrap_or_else(|| "/".into());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| runtime_error(format!("`{host}:{port}` is not an address to listen on")))?;

    // Listen for the stop signals before anything can be told we are ready.
    let stop = StopSignal::install()?;
    let serve = Serve::start()?;
    let bound = serve.start_http(&addr.to_string())?;
    serve.set_http_request_timeout(request_timeout)?;
    tracing::info!("HTTP proxy listening on http://{bound}");
    serve.run_http_configured(app, &route_prefix, configs)?;
    tracing::info!("application is ready at http://{bound}{route_prefix}");

    stop.wait();
    match shutdown_timeout {
        Some(timeout) => {
            tracing::info!("stopping: draining requests in flight (up to {timeout:?})")
        }
        None => tracing::info!(
            "stopping: draining requests in flight (up to each deployment's graceful_shutdown_timeout_s)"
        ),
    }
    if serve.shutdown_graceful(shutdown_timeout) {
        tracing::info!("all requests finished; bye");
    } else {
        tracing::warn!("requests still in flight after the graceful shutdown timeout were failed");
    }
    Ok(())
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from the moment it is installed.
struct StopSignal {
    rt: tokio::runtime::Runtime,
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
            #[cfg(unix)]
            term,
            #[cfg(unix)]
            int,
        })
    }

    /// Blocks until one of the signals arrives.
    fn wait(mut self) {
        self.rt.block_on(async {
            #[cfg(unix)]
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn status(address: &str) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime_error(format!("cannot start a runtime: {e}")))?;
    let body = rt.block_on(fetch_status(address))?;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Status {
        applications: Vec<ApplicationStatus>,
    }
    let status: Status = serde_json::from_slice(&body)
        .map_err(|e| runtime_error(format!("{address} did not answer with a status: {e}")))?;
    print!("{}", serde_yaml_ng::to_string(&status).unwrap_or_default());
    Ok(())
}

async fn fetch_status(address: &str) -> Result<Vec<u8>, ServeError> {
    use http_body_util::{BodyExt, Empty};

    let authority = address
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let unreachable =
        |e: &dyn std::fmt::Display| runtime_error(format!("cannot reach {address}: {e}"));
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/-/status")
        .header("host", &authority)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(body.to_bytes().to_vec())
}
