//! Cluster-mode tests: real worker processes, started by the test.
//!
//! A worker must run the same build as its head (the head refuses any other), so a test's
//! workers are the test's own executable: [`WorkerProcess::spawn`] runs it again with only one
//! test selected, an `#[ignore]`d entry point of the test file (by convention `worker_process`),
//! and the worker's settings in environment variables. That entry point calls [`worker_env`];
//! in a worker child it gets them, builds the application they name and calls [`run_worker`],
//! which joins the cluster and blocks until the worker stops, then exits the process. Run
//! normally (no variables) it returns at once, so it passes when `--ignored` runs it.
//!
//! ```ignore
//! #[test]
//! #[ignore = "the worker processes of the cluster tests"]
//! fn worker_process() {
//!     let Some(env) = worker_env() else { return };
//!     match env.app.as_str() {
//!         "chain" => run_worker(chain_app(), &env),
//!         other => panic!("no app {other}"),
//!     }
//! }
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_core::__private::CallOne;
use serve_core::config::ClusterOptions;
use serve_core::http::{IntoHttpResponse, Request};
use serve_core::{Application, Deployment, Serve, Worker};

use crate::PATIENCE;

const APP: &str = "SERVE_TEST_WORKER_APP";
const URL: &str = "SERVE_TEST_WORKER_URL";
const CLUSTER: &str = "SERVE_TEST_WORKER_CLUSTER";
const NODE: &str = "SERVE_TEST_WORKER_NODE";
const CPUS: &str = "SERVE_TEST_WORKER_CPUS";
const HEARTBEAT: &str = "SERVE_TEST_WORKER_HEARTBEAT_S";
const HTTP: &str = "SERVE_TEST_WORKER_HTTP";

/// The heartbeat period cluster tests use (fast detection: a worker is declared dead after
/// 3.5 periods).
pub const TEST_HEARTBEAT_S: f64 = 0.2;

/// What a worker child was asked to be.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    /// Which application to build (the test file's own names).
    pub app: String,
    pub url: String,
    pub cluster: String,
    pub node: String,
    pub num_cpus: Option<f64>,
    pub heartbeat_s: f64,
    /// Serve HTTP on this address too (`proxy_location: EveryNode`).
    pub http: Option<String>,
}

/// In a worker child, what it was asked to be; `None` in a normal test run.
pub fn worker_env() -> Option<WorkerEnv> {
    let get = |key| std::env::var(key).ok();
    Some(WorkerEnv {
        app: get(APP)?,
        url: get(URL)?,
        cluster: get(CLUSTER)?,
        node: get(NODE)?,
        num_cpus: get(CPUS).and_then(|n| n.parse().ok()),
        heartbeat_s: get(HEARTBEAT)
            .and_then(|n| n.parse().ok())
            .unwrap_or(TEST_HEARTBEAT_S),
        http: get(HTTP),
    })
}

/// The cluster options of a test cluster named `name` on `url` (fast heartbeats).
pub fn test_cluster(url: &str, name: &str) -> ClusterOptions {
    ClusterOptions::new(url)
        .name(name)
        .heartbeat_s(TEST_HEARTBEAT_S)
}

/// Runs a worker for `app` as `env` says, until it stops; then exits the process (3: it failed
/// to join, or lost its head). Prints `worker ready` once it joined.
pub fn run_worker<D: Deployment>(app: Application<D>, env: &WorkerEnv) -> ! {
    let worker = start_worker(app, env);
    stay(&worker)
}

/// Like [`run_worker`], serving HTTP on `env.http` too (Ray's `proxy_location: EveryNode`).
pub fn run_http_worker<D, R>(app: Application<D>, env: &WorkerEnv) -> !
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let worker = start_worker(app, env);
    if let Some(addr) = &env.http
        && let Err(e) = worker.serve_http(addr, "/")
    {
        println!("worker failed: {e}");
        std::process::exit(3);
    }
    stay(&worker)
}

fn start_worker<D: Deployment>(app: Application<D>, env: &WorkerEnv) -> Worker<D> {
    let mut builder = Serve::builder().node_name(env.node.clone()).cluster(
        ClusterOptions::new(&env.url)
            .name(&env.cluster)
            .heartbeat_s(env.heartbeat_s),
    );
    if let Some(n) = env.num_cpus {
        builder = builder.num_cpus(n);
    }
    match builder.start_worker(app) {
        Ok(worker) => worker,
        Err(e) => {
            println!("worker failed: {e}");
            std::process::exit(3);
        }
    }
}

fn stay<D: Deployment>(worker: &Worker<D>) -> ! {
    println!("worker ready: {}", worker.node_name());
    let why = worker.wait();
    println!("worker stopped: {why}");
    std::process::exit(3);
}

/// A worker process of a cluster test: the test executable, running its worker entry point.
/// Killed (SIGKILL) when dropped.
pub struct WorkerProcess {
    child: Child,
    node: String,
    output: Arc<Mutex<VecDeque<String>>>,
    ready: Arc<(Mutex<Option<bool>>, std::sync::Condvar)>,
}

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The name of the test file's worker entry point (`worker_process`).
    pub entry: String,
    pub app: String,
    pub url: String,
    pub cluster: String,
    pub node: String,
    pub num_cpus: Option<f64>,
    pub http: Option<String>,
    /// More environment variables for the child (see [`WorkerSpec::env`]).
    pub env: Vec<(String, String)>,
}

impl WorkerSpec {
    /// A worker `node` of `app` in cluster `cluster` at `url`, started through the entry point
    /// `worker_process`.
    pub fn new(app: &str, url: &str, cluster: &str, node: &str) -> Self {
        Self {
            entry: "worker_process".into(),
            app: app.into(),
            url: url.into(),
            cluster: cluster.into(),
            node: node.into(),
            num_cpus: None,
            http: None,
            env: Vec::new(),
        }
    }

    /// Offers `n` CPUs.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// Serves HTTP on `addr` too.
    pub fn http(mut self, addr: &str) -> Self {
        self.http = Some(addr.into());
        self
    }
}

impl WorkerProcess {
    /// Starts the worker; returns once it printed that it joined (or fails the test after
    /// [`PATIENCE`], with its output).
    pub fn start(spec: WorkerSpec) -> Self {
        let worker = Self::spawn(spec);
        worker.wait_ready();
        worker
    }

    /// Starts the worker without waiting for it to join.
    pub fn spawn(spec: WorkerSpec) -> Self {
        let exe = std::env::current_exe().expect("the test executable");
        let mut command = Command::new(exe);
        command
            .args([
                &spec.entry,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(APP, &spec.app)
            .env(URL, &spec.url)
            .env(CLUSTER, &spec.cluster)
            .env(NODE, &spec.node)
            .env(HEARTBEAT, TEST_HEARTBEAT_S.to_string())
            // The same build as this process by construction (the same executable); saying so
            // spares each worker hashing a large debug executable again.
            .env("SERVE_BUILD_ID", serve_core::build_id())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = spec.num_cpus {
            command.env(CPUS, n.to_string());
        }
        if let Some(http) = &spec.http {
            command.env(HTTP, http);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().expect("the worker process starts");
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let ready = Arc::new((Mutex::new(None), std::sync::Condvar::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for (stream, watch) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, true),
            (Box::new(stderr), false),
        ] {
            let (output, ready) = (output.clone(), ready.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if watch {
                        let outcome = if line.contains("worker ready: ") {
                            Some(true)
                        } else if line.contains("worker failed: ") {
                            Some(false)
                        } else {
                            None
                        };
                        if let Some(outcome) = outcome {
                            *ready.0.lock().unwrap() = Some(outcome);
                            ready.1.notify_all();
                        }
                    }
                    let mut output = output.lock().unwrap();
                    output.push_back(line);
                    if output.len() > 400 {
                        output.pop_front();
                    }
                }
                if watch {
                    let mut outcome = ready.0.lock().unwrap();
                    outcome.get_or_insert(false);
                    ready.1.notify_all();
                }
            });
        }
        WorkerProcess {
            child,
            node: spec.node,
            output,
            ready,
        }
    }

    /// Waits until the worker joined; fails the test (with its output) if it did not.
    pub fn wait_ready(&self) {
        let (lock, cond) = &*self.ready;
        let (outcome, _) = cond
            .wait_timeout_while(lock.lock().unwrap(), PATIENCE, |o| o.is_none())
            .unwrap();
        match *outcome {
            Some(true) => {}
            _ => panic!(
                "worker `{}` did not join; its output:\n{}",
                self.node,
                self.output()
            ),
        }
    }

    /// Waits until the worker says whether it joined; returns whether it did.
    pub fn joined(&self) -> bool {
        let (lock, cond) = &*self.ready;
        let (outcome, _) = cond
            .wait_timeout_while(lock.lock().unwrap(), PATIENCE, |o| o.is_none())
            .unwrap();
        outcome.unwrap_or(false)
    }

    /// Its name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// What it printed (the last 400 lines).
    pub fn output(&self) -> String {
        let output = self.output.lock().unwrap();
        output.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Kills it with SIGKILL (no goodbye to the head) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// --- HTTP workers on a port of their own choosing ---------------------------------------------

/// What [`run_http_worker_reporting`] prints before the address it serves HTTP on.
const HTTP_LINE: &str = "worker http: ";

/// Like [`run_http_worker`], and prints the address the worker serves HTTP on
/// (`worker http: ADDR`) before `worker ready`. So `env.http` may ask for port 0
/// (`WorkerSpec::http("127.0.0.1:0")`): the worker binds a free port itself, and nothing races
/// for a port picked ahead. [`WorkerProcess::http_addr`] reads the address back.
pub fn run_http_worker_reporting<D, R>(app: Application<D>, env: &WorkerEnv) -> !
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let worker = start_worker(app, env);
    let addr = env.http.as_deref().unwrap_or("127.0.0.1:0");
    match worker.serve_http(addr, "/") {
        Ok(bound) => println!("{HTTP_LINE}{bound}"),
        Err(e) => {
            println!("worker failed: {e}");
            std::process::exit(3);
        }
    }
    stay(&worker)
}

impl WorkerProcess {
    /// The address a worker run by [`run_http_worker_reporting`] serves HTTP on; waits until it
    /// joined (failing the test, with its output, if it did not or printed no address).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.wait_ready();
        let output = self.output();
        output
            .lines()
            .find_map(|line| line.split_once(HTTP_LINE))
            .and_then(|(_, addr)| addr.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "worker `{}` printed no HTTP address; its output:\n{output}",
                    self.node
                )
            })
    }
}

impl WorkerSpec {
    /// Sets the environment variable `key` to `value` in the child (after the harness's own, so
    /// it may override them; e.g. `SERVE_BUILD_ID` to play a worker of another build, or a test
    /// file's own settings for its worker entry point).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl WorkerProcess {
    /// Its process id (to signal it: `kill -STOP` freezes it, `kill -CONT` thaws it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
