//! Example programs run as real processes: where cargo built them, and [`ExampleServer`], an
//! example serving over HTTP whose log lines the test reads as they come.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

use crate::PATIENCE;

/// The example binary `name`, which cargo builds for `cargo test` next to the test binaries.
pub fn example_path(name: &str) -> PathBuf {
    // A test binary lives in target/<profile>/deps/; the examples in target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "example binary {} not built", path.display());
    path
}

/// Runs `example ARGS..` to its end, which must be a failure, and returns its stderr.
pub fn refused(example: &str, args: &[&str]) -> String {
    let out = Command::new(example_path(example))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{example} {args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines an example wrote to stderr so far, and a signal for each new one.
#[derive(Default)]
struct Log {
    lines: Mutex<(Vec<String>, bool)>,
    grew: Condvar,
}

/// An example started with `run` on a free port, stopped with SIGTERM when dropped. Its stderr
/// (the log) is read on a thread as it comes.
pub struct ExampleServer {
    child: Child,
    example: String,
    /// `http://127.0.0.1:PORT/PREFIX` as the log says it is ready.
    pub url: String,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    log: Arc<Log>,
}

impl ExampleServer {
    /// Runs `example run --host 127.0.0.1 --port 0 ARGS..` and waits until it says it is ready.
    /// Panics with its log if it exits first.
    pub fn start(example: &str, args: &[&str]) -> ExampleServer {
        Self::start_with_env(example, args, &[])
    }

    /// [`start`](Self::start) with environment variables set (`RUST_LOG`).
    pub fn start_with_env(example: &str, args: &[&str], env: &[(&str, &str)]) -> ExampleServer {
        // The control API on a free port too, unless the test says where.
        let admin: &[&str] = if args.contains(&"--admin-address") {
            &[]
        } else {
            &["--admin-address", "127.0.0.1:0"]
        };
        let mut child = Command::new(example_path(example))
            .arg("run")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(admin)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Log::default());
        let reader = BufReader::new(child.stderr.take().unwrap());
        let shared = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                shared.lines.lock().unwrap().0.push(line);
                shared.grew.notify_all();
            }
            shared.lines.lock().unwrap().1 = true;
            shared.grew.notify_all();
        });
        let mut server = ExampleServer {
            child,
            example: example.to_owned(),
            url: String::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        };
        let ready = server.wait_for_line("the application to be ready", |l| {
            l.contains("application is ready at ")
        });
        // Text: `.. application is ready at http://..`; JSON: `"message":"application is ready at http://.."`.
        let at = ready.find("http://").expect("a URL");
        server.url = ready[at..]
            .split(['"', ' '])
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let authority = server.url["http://".len()..].split('/').next().unwrap();
        server.addr = authority.parse().unwrap();
        server
    }

    /// Where its control API listens, as its log says (it is started after the application).
    pub fn control_addr(&self) -> std::net::SocketAddr {
        let line = self.wait_for_line("the control API's address", |l| {
            l.contains("control API listening on http://")
        });
        let at = line.find("http://").expect("a URL") + "http://".len();
        line[at..]
            .split(['"', ' ', '/'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Whether the process has exited, waiting up to [`PATIENCE`] for it to.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + PATIENCE;
        // The log's end is the signal: stderr closes when the process exits.
        let mut guard = self.log.lines.lock().unwrap();
        while !guard.1 {
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            guard = self.log.grew.wait_timeout(guard, deadline - now).unwrap().0;
        }
        drop(guard);
        self.child.wait().ok()
    }

    /// The example's binary.
    fn child_path(&self) -> PathBuf {
        example_path(&self.example)
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().0.clone()
    }

    /// Waits for a logged line that `pred` accepts and returns it; fails the test (with the log)
    /// after [`PATIENCE`] or if the process exits first.
    pub fn wait_for_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut guard = self.log.lines.lock().unwrap();
        loop {
            if let Some(line) = guard.0.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = std::time::Instant::now();
            assert!(
                !guard.1 && now < deadline,
                "never logged {what}; the log:\n{}",
                guard.0.join("\n")
            );
            guard = self.log.grew.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Stops it (it must exit 0) and returns its whole log.
    pub fn stop_and_lines(self) -> Vec<String> {
        let log = self.log.clone();
        let status = self.stop();
        let lines = log.lines.lock().unwrap().0.clone();
        assert!(status.success(), "{status}; the log:\n{}", lines.join("\n"));
        lines
    }

    /// Sends SIGTERM and returns the exit status once it exited (its log is read to the end).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        let mut guard = self.log.lines.lock().unwrap();
        while !guard.1 {
            guard = self.log.grew.wait(guard).unwrap();
        }
        status
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// What `example status` prints for the running `server` (the same binary asks it over HTTP).
pub fn status(server: &ExampleServer) -> String {
    let out = Command::new(server.child_path())
        .args(["status", "--address", &server.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A config file written to the temporary directory for one test (named after `name` and the
/// process), removed when dropped.
pub struct ConfigFile(PathBuf);

impl ConfigFile {
    /// Writes `text` to `<temp>/<name>-<pid>.yaml`.
    pub fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{name}-{}.yaml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    /// Its path, as a command-line argument.
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
