//! Cluster mode under faults: real worker processes (the test executable itself, see
//! `serve_test_support::cluster`), a real `nats-server`, and real failures — a worker killed with
//! SIGKILL under load, a worker frozen (SIGSTOP) past the detection bound, the NATS server
//! restarted and stopped under load, a worker of another build, wrong credentials, an
//! unreachable server or a missing head, garbage on the cluster's subjects, and (as root) a
//! worker on another "host" (a network namespace) cut off by a partition. Where namespaces are
//! refused, that test says so and passes without running.
//!
//! # Bounds
//!
//! Heads and workers use the test heartbeat ([`TEST_HEARTBEAT_S`], 0.2 s): a silent node is
//! declared dead after 3.5 periods, checked each period, so within ~0.9 s of its last heartbeat.
//! The tests measure that and print it (`--nocapture`), but assert generous bounds so a loaded
//! 2-core CI machine passes: [`DETECTION_BOUND`] for detection, [`CALL_BOUND`] for any single
//! call (a call that takes longer counts as a hang). Waiting for something that must happen
//! (a worker joins, replicas move) is bounded by `PATIENCE` (20 s) and watches a signal or the
//! status, never a fixed sleep; the only fixed waits are scenario parameters (how long NATS stays
//! down) and observation windows that check nothing changes (no churn).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::Client;
use bytes::Bytes;
use serve_core::config::ClusterOptions;
use serve_core::prelude::*;
use serve_core::{DeploymentStatus, Worker};
use serve_test_support::cluster::{
    TEST_HEARTBEAT_S, WorkerEnv, WorkerProcess, WorkerSpec, test_cluster, worker_env,
};
use serve_test_support::{NatsOptions, NatsServer, PATIENCE, deployment_status};

/// How long detecting a dead worker may take here (expected: ~0.5–0.9 s after the kill with the
/// 0.2 s test heartbeat; generous for a loaded CI machine).
const DETECTION_BOUND: Duration = Duration::from_secs(5);

/// The longest one call may take before the test calls it a hang: the detection bound plus room
/// for a slow machine. Every call is made with `result_timeout(CALL_BOUND)`.
const CALL_BOUND: Duration = Duration::from_secs(8);

/// How long a process that is refused (wrong build, wrong credentials, no head) may take to exit
/// once it said so.
const EXIT_BOUND: Duration = Duration::from_secs(10);

/// How long the tests watch a settled deployment to check nothing moves any more.
const STABLE_WINDOW: Duration = Duration::from_secs(1);

/// How long a held call runs: past the detection of a worker killed meanwhile.
const HOLD_MS: u64 = 3_000;

// Settings of this file's worker entry point, on top of the harness's (`WorkerSpec::env`).
const USER: &str = "SERVE_FAULTS_USER";
const PASSWORD: &str = "SERVE_FAULTS_PASSWORD";
const NETNS: &str = "SERVE_FAULTS_NETNS";
/// Where `Echo::hold` marks that it started.
const HOLD_DIR: &str = "SERVE_FAULTS_HOLD_DIR";

/// The leaf: replicas on the workers.
#[deployment(num_replicas = 4)]
pub struct Echo {
    delay: Duration,
}

#[deployment]
impl Echo {
    pub fn new(delay_ms: u64) -> Self {
        Echo {
            delay: Duration::from_millis(delay_ms),
        }
    }

    /// Gives `x` back after the delay (so calls are in flight when a worker dies).
    pub async fn call(&self, x: u64) -> u64 {
        tokio::time::sleep(self.delay).await;
        x
    }

    /// Gives back the name of the node it ran on after `ms` (a call surely in flight when its
    /// worker dies). On start it leaves a file `<node>-<request id>` in the directory
    /// [`HOLD_DIR`] names, if it is set, so a test knows the call reached its replica.
    pub async fn hold(&self, ms: u64) -> Option<String> {
        let ctx = serve_core::replica_context()?;
        let node = ctx.node_name().map(str::to_owned);
        if let Ok(dir) = std::env::var(HOLD_DIR) {
            let name = format!("{}-{}", node.as_deref().unwrap_or("head"), ctx.request_id());
            std::fs::write(std::path::Path::new(&dir).join(name), b"").expect("a held call's mark");
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        node
    }

    /// The network namespace this replica runs in.
    pub fn netns(&self) -> String {
        own_netns()
    }
}

/// The ingress, on the head (it reserves nothing, so it fits on a head without CPUs too). It
/// hands the leaf's handle to the test (through [`LEAVES`], under the test's cluster name), so
/// the test calls the leaf directly and sees its errors as they are, not wrapped in the
/// ingress's.
#[deployment(num_cpus = 0)]
pub struct Front;

#[deployment]
impl Front {
    pub fn new(echo: DeploymentHandle<Echo>, cluster: String) -> Self {
        LEAVES.lock().unwrap().push((cluster, echo));
        Front
    }

    /// (An ingress the tests never call: they call the leaf.)
    pub fn call(&self) -> bool {
        true
    }
}

/// The leaf handles the ingresses of this process were given, by cluster name.
static LEAVES: Mutex<Vec<(String, DeploymentHandle<Echo>)>> = Mutex::new(Vec::new());

fn echo_app(cluster: &str) -> Application<Front> {
    Front::bind(Echo::bind(2), cluster.to_owned())
}

fn own_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[test]
#[ignore = "the worker processes of the cluster fault tests"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    if let Ok(ns) = std::env::var(NETNS) {
        enter_netns(&ns);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    match env.app.as_str() {
        "echo" => serve_worker(echo_app(&env.cluster), &env),
        other => panic!("no application `{other}`"),
    }
}

/// Runs this worker process again inside network namespace `ns` (`ip netns exec`, which execs
/// in place: the process keeps its id, so the harness's SIGKILL still reaches it).
fn enter_netns(ns: &str) -> ! {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("the test executable");
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env_remove(NETNS)
        .exec();
    println!("worker failed: cannot enter network namespace {ns}: {err}");
    std::process::exit(3);
}

/// Like the harness's `run_worker`, with this file's settings (credentials) too. Prints `worker
/// ready: NAME` once joined, `worker failed: WHY` if it could not, `worker stopped: WHY` when it
/// stops; then exits with 3.
fn serve_worker<D: serve_core::Deployment>(app: Application<D>, env: &WorkerEnv) -> ! {
    let mut options = ClusterOptions::new(&env.url)
        .name(&env.cluster)
        .heartbeat_s(env.heartbeat_s);
    if let (Ok(user), Ok(password)) = (std::env::var(USER), std::env::var(PASSWORD)) {
        options = options.user_and_password(user, password);
    }
    let mut builder = Serve::builder()
        .node_name(env.node.clone())
        .cluster(options);
    if let Some(n) = env.num_cpus {
        builder = builder.num_cpus(n);
    }
    let worker: Worker<D> = match builder.start_worker(app) {
        Ok(worker) => worker,
        Err(e) => {
            println!("worker error kind: {:?}", e.kind());
            println!("worker failed: {e}");
            std::process::exit(3);
        }
    };
    println!("worker ready: {}", worker.node_name());
    let why = worker.wait();
    println!("worker stopped: {why}");
    std::process::exit(3);
}

/// A head of cluster `name` at `url` (fast heartbeats), with the machine's resources.
fn head(url: &str, name: &str) -> Serve {
    Serve::builder()
        .cluster(test_cluster(url, name))
        .start()
        .expect("the head starts")
}

/// Deploys the application on the head `serve` of cluster `cluster`; returns the leaf's handle.
fn deploy(serve: &Serve, cluster: &str) -> DeploymentHandle<Echo> {
    let _front = serve
        .run(echo_app(cluster))
        .expect("the application deploys");
    let mut leaves = LEAVES.lock().unwrap();
    let at = leaves
        .iter()
        .position(|(c, _)| c == cluster)
        .expect("the ingress was constructed on the head");
    leaves.swap_remove(at).1
}

/// How many replicas of `d` run on node `node`.
fn on(d: &DeploymentStatus, node: &str) -> usize {
    d.replicas
        .iter()
        .filter(|r| r.node.as_deref() == Some(node))
        .count()
}

/// The leaf's replicas: (id, node).
fn placement(serve: &Serve) -> Vec<(usize, String)> {
    let mut all: Vec<(usize, String)> = deployment_status(serve, "Echo")
        .replicas
        .iter()
        .map(|r| (r.replica_id, r.node.clone().unwrap_or_default()))
        .collect();
    all.sort();
    all
}

/// Polls the leaf's status (an outside observation) until `pred` holds; returns how long that
/// took; fails the test with the last status after `PATIENCE`.
fn wait_echo(serve: &Serve, what: &str, pred: impl Fn(&DeploymentStatus) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let status = deployment_status(serve, "Echo");
        if pred(&status) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}: {status:#?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Watches the leaf for [`STABLE_WINDOW`] and fails if its replicas change (a rebalance that
/// never settles: replicas started and stopped over and over).
fn assert_settled(serve: &Serve, what: &str) {
    let before = placement(serve);
    let start = Instant::now();
    while start.elapsed() < STABLE_WINDOW {
        let now = placement(serve);
        assert_eq!(
            now,
            before,
            "{what}: the replicas kept moving after {:?} (before: {before:?})",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a [`Load`] saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    sent: usize,
    ok: usize,
    /// Successes in a row (any failure resets it).
    streak: usize,
    /// When each `Unavailable` error came, and its message.
    unavailable: Vec<(Instant, String)>,
    /// Anything else: a wrong value, another error kind (a `Timeout` is a hang).
    other: Vec<String>,
    slowest: Duration,
}

impl Tally {
    fn first_unavailable(&self) -> Option<Instant> {
        self.unavailable.first().map(|(at, _)| *at)
    }

    /// The different `Unavailable` messages, numbers masked (for the test's report).
    fn unavailable_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .unavailable
            .iter()
            .map(|(_, m)| {
                let mut masked = String::new();
                for c in m.chars() {
                    let c = if c.is_ascii_digit() { '#' } else { c };
                    if !(c == '#' && masked.ends_with('#')) {
                        masked.push(c);
                    }
                }
                masked
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// Calls the leaf from several threads, one call after another each, until stopped; tallies
/// every outcome.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<(Mutex<Tally>, Condvar)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(echo: &DeploymentHandle<Echo>, threads: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new((Mutex::new(Tally::default()), Condvar::new()));
        let threads = (0..threads)
            .map(|t| {
                let (echo, stop, tally) = (echo.clone(), stop.clone(), tally.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let x = (t << 32) | i;
                        i += 1;
                        let started = Instant::now();
                        let result = echo.remote(x).result_timeout(CALL_BOUND);
                        let took = started.elapsed();
                        let (lock, cond) = &*tally;
                        let mut tally = lock.lock().unwrap();
                        tally.sent += 1;
                        tally.slowest = tally.slowest.max(took);
                        match result {
                            Ok(y) if y == x => {
                                tally.ok += 1;
                                tally.streak += 1;
                            }
                            Ok(y) => {
                                tally.streak = 0;
                                tally.other.push(format!("{x} came back as {y}"));
                            }
                            Err(e) if e.kind() == ErrorKind::Unavailable => {
                                tally.streak = 0;
                                tally.unavailable.push((Instant::now(), e.to_string()));
                            }
                            Err(e) => {
                                tally.streak = 0;
                                tally
                                    .other
                                    .push(format!("{:?} after {took:?}: {e}", e.kind()));
                            }
                        }
                        cond.notify_all();
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    fn snapshot(&self) -> Tally {
        self.tally.0.lock().unwrap().clone()
    }

    /// Waits (on the tally's signal) until `pred` holds, up to `within`; returns the tally.
    fn wait(&self, what: &str, within: Duration, pred: impl Fn(&Tally) -> bool) -> Tally {
        let (lock, cond) = &*self.tally;
        let (tally, timeout) = cond
            .wait_timeout_while(lock.lock().unwrap(), within, |t| !pred(t))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "timed out after {within:?} waiting for {what}: sent {}, ok {}, streak {}, \
             unavailable {}, other {:?}, last unavailable {:?}",
            tally.sent,
            tally.ok,
            tally.streak,
            tally.unavailable.len(),
            tally.other,
            tally.unavailable.last()
        );
        tally.clone()
    }

    /// Waits until `n` more calls succeeded.
    fn wait_ok(&self, n: usize, what: &str) -> Tally {
        let from = self.snapshot().ok;
        self.wait(what, PATIENCE, |t| t.ok >= from + n)
    }

    /// Stops the threads (each finishes its call, at most `CALL_BOUND`) and returns the tally.
    fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().expect("a load thread panicked");
        }
        self.snapshot()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Checks `tally`'s counts add up to only successes and `Unavailable` errors, that no call
/// hung, and that each `Unavailable` error names a replica of the leaf and node `node`.
fn assert_only_ok_or_unavailable(tally: &Tally, node: &str) {
    assert!(
        tally.other.is_empty(),
        "calls failed otherwise than Unavailable (or hung): {:?}",
        tally.other
    );
    assert_eq!(
        tally.ok + tally.unavailable.len(),
        tally.sent,
        "every call succeeded or failed with Unavailable"
    );
    assert!(
        tally.slowest < CALL_BOUND,
        "a call took {:?}",
        tally.slowest
    );
    for (_, message) in &tally.unavailable {
        assert!(
            message.contains("Echo#") && message.contains(&format!("`{node}`")),
            "an Unavailable error that does not name the replica and node `{node}`: {message}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A worker killed under load.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_worker_killed_under_load_fails_only_its_calls_and_its_replicas_come_back() {
    let nats = NatsServer::start();
    let url = nats.url();
    let cluster = "faults-kill";
    let serve = head(&url, cluster);
    let held_marks = std::env::temp_dir().join(format!("serve-faults-held-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&held_marks);
    std::fs::create_dir_all(&held_marks).unwrap();
    let marks = held_marks.display().to_string();
    let _w1 =
        WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w1").env(HOLD_DIR, &marks));
    let mut w2 =
        WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w2").env(HOLD_DIR, &marks));
    serve.wait_for_workers(2, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "two replicas on each worker", |d| {
        on(d, "w1") == 2 && on(d, "w2") == 2
    });
    assert_settled(&serve, "the first placement");

    const LOAD_THREADS: u64 = 4;
    let load = Load::start(&echo, LOAD_THREADS);
    load.wait_ok(200, "calls before the kill");
    // The load's calls are short: at the kill, none of them may be running on w2 (those sent
    // after it are re-routed, since NATS says no one answers). So long calls are sent first, and
    // w2 is killed once one of them runs there: it left its mark (a call only dispatched to w2
    // may not have reached it yet, and would be re-routed too).
    let w2_runs_a_held_call = || {
        std::fs::read_dir(&held_marks)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("w2-"))
    };
    let mut held = Vec::new();
    let waiting = Instant::now();
    while !w2_runs_a_held_call() {
        // 4 replicas of 5 slots: 12 held calls and the load leave room, w2's 10 slots among them.
        if held.len() < 12 {
            let response = echo.hold.remote(HOLD_MS);
            held.push(std::thread::spawn(move || {
                let result = response.result_timeout(CALL_BOUND);
                (Instant::now(), result)
            }));
        }
        assert!(waiting.elapsed() < PATIENCE, "w2 never ran a held call");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Instant::now();
    w2.kill();

    let detected = wait_echo(&serve, "w2's replicas to leave routing", |d| {
        on(d, "w2") == 0
    });
    let recovered = detected
        + wait_echo(&serve, "all 4 replicas on w1", |d| {
            d.num_replicas == 4 && d.target_replicas == 4 && on(d, "w1") == 4
        });
    let after = load.wait_ok(200, "calls after the replicas came back");
    let mut tally = load.stop();
    assert_only_ok_or_unavailable(&tally, "w2");
    // The held calls: those on w1 answer, those on w2 fail as Unavailable naming it.
    let mut held_failed = 0;
    for thread in held {
        let (at, result) = thread.join().expect("a held call's thread panicked");
        match result {
            Ok(node) => assert_eq!(node.as_deref(), Some("w1"), "a held call answered"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unavailable, "a held call failed: {e}");
                let message = e.to_string();
                assert!(
                    message.contains("Echo#") && message.contains("`w2`"),
                    "a held call's error does not name the replica and node `w2`: {message}"
                );
                held_failed += 1;
                tally.unavailable.push((at, e.to_string()));
            }
        }
    }
    tally.unavailable.sort_by_key(|(at, _)| *at);
    let _ = std::fs::remove_dir_all(&held_marks);
    assert!(
        held_failed > 0,
        "held calls were in flight to w2 when it died: they must have failed"
    );
    let first_error = tally.first_unavailable().unwrap().duration_since(killed);
    let declared_dead = tally
        .unavailable
        .iter()
        .find(|(_, m)| m.contains("stopped answering"))
        .map(|(at, _)| at.duration_since(killed));
    eprintln!(
        "kill: {} calls of the load ({} ok, {} unavailable, slowest {:?}), {held_failed} held \
         calls failed; first Unavailable {first_error:?} after the kill, calls failed by the failure detector {declared_dead:?} after, replicas \
         out of routing {detected:?} after, all 4 back on w1 {recovered:?} after",
        tally.sent,
        tally.ok,
        tally.unavailable.len() - held_failed,
        tally.slowest
    );
    eprintln!(
        "kill: the Unavailable errors: {:#?}",
        tally.unavailable_kinds()
    );
    assert!(
        detected < DETECTION_BOUND,
        "w2 was declared dead {detected:?} after the kill"
    );
    assert!(
        after.streak > 0,
        "calls succeed again once the replicas are back"
    );
    assert_settled(&serve, "all replicas on w1");

    // A worker joining again (a restarted w2 is a new process, so a new node) gets replicas:
    // the head moves one at a time while a node has two more than another, until 2 and 2. No
    // call fails meanwhile (a moved replica drains first).
    let load = Load::start(&echo, 2);
    load.wait_ok(20, "calls before the new worker");
    let _w3 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w3"));
    let first_move = wait_echo(&serve, "a replica on the new worker", |d| on(d, "w3") >= 1);
    let balanced = wait_echo(&serve, "two replicas on each of w1 and w3", |d| {
        d.num_replicas == 4 && on(d, "w1") == 2 && on(d, "w3") == 2
    });
    load.wait_ok(50, "calls after the rebalance");
    let tally = load.stop();
    eprintln!(
        "rejoin: first replica on w3 {first_move:?} after it joined, balanced after another \
         {balanced:?}; {} calls meanwhile, {} ok",
        tally.sent, tally.ok
    );
    assert!(
        tally.unavailable.is_empty() && tally.other.is_empty(),
        "no call fails while replicas move: {:?} {:?}",
        tally.unavailable.first(),
        tally.other
    );
    assert_settled(&serve, "two replicas on each of w1 and w3");
}

// ---------------------------------------------------------------------------------------------
// 2. The NATS server restarted under load.
// ---------------------------------------------------------------------------------------------

/// How long NATS stays down in the second outage: longer than the failure-detection bound
/// (0.7 s with the test heartbeat), so every node hears nothing from the others for that long.
const LONG_OUTAGE: Duration = Duration::from_millis(1500);

#[test]
fn the_cluster_rides_out_nats_restarts_under_load() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let cluster = "faults-nats";
    let serve = head(&url, cluster);
    let mut w1 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w1"));
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "4 replicas on w1", |d| on(d, "w1") == 4);
    let replicas = placement(&serve);

    let load = Load::start(&echo, 4);
    load.wait_ok(100, "calls before the restart");

    // A restart: the server is back at once (same port); the clients reconnect by themselves.
    let restarted = Instant::now();
    nats.restart();
    let down_for = restarted.elapsed();
    let tally = load.wait("100 successes in a row after the restart", PATIENCE, |t| {
        t.streak >= 100
    });
    let quick = restarted.elapsed();
    let failed_quick = tally.unavailable.len();

    // An outage longer than the failure-detection bound.
    let stopped = Instant::now();
    nats.stop();
    std::thread::sleep(LONG_OUTAGE);
    nats.restart();
    let back = stopped.elapsed();
    load.wait(
        "100 successes in a row after the long outage",
        PATIENCE,
        |t| t.streak >= 100,
    );
    let long = stopped.elapsed();
    let tally = load.stop();
    eprintln!(
        "nats restart: down {down_for:?}, calls fine again {quick:?} after ({failed_quick} \
         Unavailable); long outage: down {back:?}, calls fine again {long:?} after; {} calls, \
         {} ok, {} unavailable, slowest {:?}",
        tally.sent,
        tally.ok,
        tally.unavailable.len(),
        tally.slowest
    );
    eprintln!(
        "nats restart: the Unavailable errors: {:#?}",
        tally.unavailable_kinds()
    );
    assert_only_ok_or_unavailable(&tally, "w1");
    assert_eq!(
        w1.wait_exit(Duration::ZERO),
        None,
        "the worker rides out the outages (it is not restarted); its output:\n{}",
        w1.output()
    );
    assert_eq!(serve.workers(), 1);
    wait_echo(&serve, "4 replicas on w1", |d| {
        d.num_replicas == 4 && on(d, "w1") == 4
    });
    eprintln!(
        "nats restart: replicas before {replicas:?}, after {:?}",
        placement(&serve)
    );
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("`kill` runs");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

#[test]
fn a_frozen_worker_is_declared_dead_and_comes_back_as_a_new_node_when_it_thaws() {
    let nats = NatsServer::start();
    let url = nats.url();
    let cluster = "faults-freeze";
    let serve = head(&url, cluster);
    let mut w1 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w1"));
    let _w2 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w2"));
    serve.wait_for_workers(2, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "two replicas on each worker", |d| {
        on(d, "w1") == 2 && on(d, "w2") == 2
    });

    // Frozen (a long GC pause, a VM migration): silent, but its connection stays open.
    let frozen = Instant::now();
    signal(w1.pid(), "STOP");
    let detected = wait_echo(&serve, "w1's replicas rebuilt on w2", |d| {
        d.num_replicas == 4 && on(d, "w2") == 4
    });
    assert!(detected < DETECTION_BOUND, "{detected:?}");
    for x in 0..20 {
        assert_eq!(echo.remote(x).result_timeout(CALL_BOUND).unwrap(), x);
    }

    // Thawed, it hears it was declared dead: it drops what it ran and joins as a new node (or
    // stops, if it finds its head silent first); either way no call fails from then on.
    let thawed = Instant::now();
    signal(w1.pid(), "CONT");
    let load = Load::start(&echo, 2);
    let back = wait_echo(&serve, "w1 back with two replicas", |d| {
        d.num_replicas == 4 && on(d, "w1") == 2 && on(d, "w2") == 2
    });
    load.wait_ok(50, "calls after w1 came back");
    let tally = load.stop();
    eprintln!(
        "freeze: w1 was replaced {detected:?} after it froze, had replicas again {back:?} after it \
         thawed; {} calls meanwhile, {} ok; frozen for {:?} in all",
        tally.sent,
        tally.ok,
        thawed.duration_since(frozen)
    );
    assert!(
        tally.unavailable.is_empty() && tally.other.is_empty(),
        "no call fails once w1 is back: {:?} {:?}\nw1's output:\n{}",
        tally.unavailable.first(),
        tally.other,
        w1.output()
    );
    assert_eq!(w1.wait_exit(Duration::ZERO), None, "{}", w1.output());
    assert_settled(&serve, "two replicas on each worker again");
}

// ---------------------------------------------------------------------------------------------
// 3. A worker of another build.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_worker_of_another_build_is_refused_naming_both_builds() {
    let nats = NatsServer::start();
    let url = nats.url();
    let cluster = "faults-build";
    let serve = head(&url, cluster);
    let _echo = deploy(&serve, cluster);
    let spawned = Instant::now();
    let mut worker = WorkerProcess::spawn(
        WorkerSpec::new("echo", &url, cluster, "w-other")
            .env("SERVE_BUILD_ID", "faults-other-build"),
    );
    assert!(!worker.joined(), "a worker of another build must not join");
    let status = worker.wait_exit(EXIT_BOUND);
    let exited = spawned.elapsed();
    let output = worker.output();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the refused worker exits with an error within {EXIT_BOUND:?} ({status:?}); its \
         output:\n{output}"
    );
    let line = output
        .lines()
        .find(|l| l.starts_with("worker failed: "))
        .unwrap_or_else(|| panic!("no failure line in:\n{output}"));
    assert!(line.contains("refused"), "{line}");
    assert!(line.contains("runs build faults-other-build"), "{line}");
    let head_build = line
        .split("the head runs build ")
        .nth(1)
        .and_then(|rest| rest.split([':', ' ']).next())
        .unwrap_or_else(|| panic!("the head's build is not named: {line}"));
    match std::env::var("SERVE_BUILD_ID") {
        Ok(id) if !id.trim().is_empty() => assert_eq!(head_build, id.trim(), "{line}"),
        _ => assert!(
            head_build.len() == "exe-".len() + 16
                && head_build.starts_with("exe-")
                && head_build[4..].bytes().all(|b| b.is_ascii_hexdigit()),
            "the head's build is the hash of its executable: {line}"
        ),
    }
    assert!(output.contains("worker error kind: Config"), "{output}");
    assert_eq!(serve.workers(), 0);
    eprintln!("build mismatch: the worker was refused and exited {exited:?} after its start");
}

// ---------------------------------------------------------------------------------------------
// 4. Credentials.
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_credentials_are_refused_and_right_ones_work_across_processes() {
    let nats = NatsServer::start_with(NatsOptions::new().user("serve", "right-horse"));
    let url = nats.url();
    let cluster = "faults-auth";

    // A head with the wrong password does not start: a configuration error (trying again
    // will not help) that says the server refused the credentials.
    let started = Instant::now();
    let err = Serve::builder()
        .cluster(test_cluster(&url, cluster).user_and_password("serve", "wrong-horse"))
        .start()
        .unwrap_err();
    let refused_in = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let message = err.to_string();
    assert!(message.contains("authorization violation"), "{message}");
    assert!(message.contains("refused"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(
        !message.contains("wrong-horse"),
        "no password in errors: {message}"
    );
    assert!(refused_in < EXIT_BOUND, "{refused_in:?}");

    // The same with the credentials in the URL: the error shows the URL without the password.
    let with_password = url.replace("nats://", "nats://serve:wrong-horse@");
    let err = Serve::builder()
        .cluster(test_cluster(&with_password, cluster))
        .start()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let message = err.to_string();
    assert!(message.contains("authorization violation"), "{message}");
    assert!(
        message.contains(&url.replace("nats://", "nats://serve:***@")),
        "{message}"
    );
    assert!(
        !message.contains("wrong-horse"),
        "no password in errors: {message}"
    );

    // The right one works: a call crosses to a worker with the right credentials too.
    let serve = Serve::builder()
        .cluster(test_cluster(&url, cluster).user_and_password("serve", "right-horse"))
        .start()
        .unwrap();
    let _good = WorkerProcess::start(
        WorkerSpec::new("echo", &url, cluster, "w-good")
            .env(USER, "serve")
            .env(PASSWORD, "right-horse"),
    );
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "the replicas on w-good", |d| on(d, "w-good") == 4);
    assert_eq!(echo.remote(41).result_timeout(CALL_BOUND).unwrap(), 41);

    // A worker with the wrong password is refused by the server and exits.
    let spawned = Instant::now();
    let mut bad = WorkerProcess::spawn(
        WorkerSpec::new("echo", &url, cluster, "w-bad")
            .env(USER, "serve")
            .env(PASSWORD, "wrong-horse"),
    );
    assert!(
        !bad.joined(),
        "a worker with the wrong password must not join"
    );
    let status = bad.wait_exit(EXIT_BOUND);
    let exited = spawned.elapsed();
    let output = bad.output();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the refused worker exits ({status:?}); its output:\n{output}"
    );
    let line = output
        .lines()
        .find(|l| l.starts_with("worker failed: "))
        .unwrap_or_else(|| panic!("no failure line in:\n{output}"));
    assert!(line.contains("authorization violation"), "{line}");
    assert!(line.contains(&url), "{line}");
    assert!(output.contains("worker error kind: Config"), "{output}");
    assert!(
        !output.contains("wrong-horse"),
        "no password in output:\n{output}"
    );
    assert_eq!(serve.workers(), 1);
    assert_eq!(echo.remote(42).result_timeout(CALL_BOUND).unwrap(), 42);
    eprintln!(
        "credentials: a head with the wrong password was refused in {refused_in:?}; a worker \
         exited {exited:?} after its start"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. No NATS server, or no head.
// ---------------------------------------------------------------------------------------------

/// Extra time a connect timeout may overrun on a loaded machine.
const TIMEOUT_SLACK: Duration = Duration::from_secs(3);

/// Before it waits for a head, a worker works out its build id: it hashes its executable (unless
/// `SERVE_BUILD_ID` is set), which takes over a second for a 150 MB debug test binary here, more
/// on a loaded machine. (Once per process: if a head of this process already did, no time.)
const BUILD_ID_ALLOWANCE: Duration = Duration::from_secs(6);

#[test]
fn an_unreachable_server_or_a_missing_head_fails_within_the_connect_timeout() {
    let timeout = Duration::from_secs(1);
    let options = |url: &str| {
        ClusterOptions::new(url)
            .name("faults-unreachable")
            .connect_timeout_s(timeout.as_secs_f64())
    };

    // Nobody listens: refused at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{closed}");
    let started = Instant::now();
    let err = Serve::builder().cluster(options(&url)).start().unwrap_err();
    let refused = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(refused < timeout + TIMEOUT_SLACK, "{refused:?}: {err}");

    // Something listens but never speaks NATS (a black hole): the connect timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let err = Serve::builder().cluster(options(&url)).start().unwrap_err();
    let timed_out = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(
        timed_out >= timeout.mul_f64(0.9) && timed_out < timeout + TIMEOUT_SLACK,
        "gave up after {timed_out:?} with a {timeout:?} connect timeout: {err}"
    );
    drop(silent);

    // NATS is there but no head is: a worker waits for one up to the connect timeout.
    let nats = NatsServer::start();
    let started = Instant::now();
    let err = Serve::builder()
        .node_name("lonely")
        .cluster(
            test_cluster(&nats.url(), "faults-headless").connect_timeout_s(timeout.as_secs_f64()),
        )
        .start_worker(echo_app("faults-headless"))
        .unwrap_err();
    let gave_up = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(message.contains("no head"), "{message}");
    assert!(message.contains("serve.faults-headless.join"), "{message}");
    assert!(
        gave_up >= timeout.mul_f64(0.9) && gave_up < timeout + TIMEOUT_SLACK + BUILD_ID_ALLOWANCE,
        "gave up after {gave_up:?} with a {timeout:?} connect timeout: {message}"
    );
    eprintln!(
        "unreachable: refused in {refused:?}, a silent server timed out in {timed_out:?}, a \
         worker without a head gave up in {gave_up:?} (connect timeout {timeout:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Garbage on the cluster's subjects.
// ---------------------------------------------------------------------------------------------

/// The log lines of this test process (one global subscriber, installed by the first test that
/// reads them).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    })
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Payloads no node sent: empty, short, a varint that never ends, a length beyond the
/// payload, JSON, 64 KiB of 0xff, and pseudo-random bytes.
fn garbage() -> Vec<Bytes> {
    let mut random = Vec::with_capacity(4096);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    vec![
        Bytes::new(),
        Bytes::from_static(b"\x00"),
        Bytes::from_static(b"\x01"),
        Bytes::from_static(b"\x03"),
        Bytes::from_static(&[0xff; 12]),
        Bytes::from_static(b"\x7fshort"),
        Bytes::from_static(b"{\"node\": \"x\", \"table\": 1}"),
        Bytes::from(vec![0xff; 64 * 1024]),
        Bytes::from(random),
    ]
}

/// Learns the ids of the nodes of `cluster` from their heartbeats (`serve.<cluster>.hb.<id>`).
async fn node_ids(client: &Client, cluster: &str, n: usize) -> Vec<String> {
    use futures::StreamExt;
    let mut beats = client
        .subscribe(format!("serve.{cluster}.hb.*"))
        .await
        .unwrap();
    let mut ids: Vec<String> = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while ids.len() < n {
            let beat = beats.next().await.expect("the subscription stays");
            let id = beat.subject.rsplit('.').next().unwrap().to_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    })
    .await
    .expect("heartbeats of every node");
    ids
}

#[test]
fn garbage_on_the_cluster_subjects_is_dropped_with_a_log_line() {
    let logs = logs();
    let nats = NatsServer::start();
    let url = nats.url();
    let cluster = "faults-garbage";
    let serve = head(&url, cluster);
    let mut w1 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w1"));
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "4 replicas on w1", |d| on(d, "w1") == 4);
    assert_eq!(echo.remote(1).result_timeout(CALL_BOUND).unwrap(), 1);
    let replicas = placement(&serve);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let answers = rt.block_on(async {
        use futures::StreamExt;
        let client = async_nats::connect(&url).await.unwrap();
        let ids = node_ids(&client, cluster, 2).await;
        let p = format!("serve.{cluster}");
        let mut subjects = vec![
            format!("{p}.join"),
            format!("{p}.leave"),
            format!("{p}.table"),
            format!("{p}.hb.x"),
        ];
        for id in &ids {
            subjects.extend([
                format!("{p}.hb.{id}"),
                format!("{p}.call.{id}"),
                format!("{p}.ctl.{id}"),
                format!("{p}.node.{id}.start"),
                format!("{p}.node.{id}.stop"),
                format!("{p}.inbox.{id}.not-a-call"),
                format!("{p}.inbox.{id}.987654321"),
            ]);
        }
        // Calls that parse (replica keys 1..=8, real and made-up methods) but whose arguments
        // do not.
        let mut calls = Vec::new();
        for key in 1u64..=8 {
            for method in ["call", "netns", "no_such_method"] {
                let mut call = postcard::to_stdvec(&(key, method, 0u32)).unwrap();
                call.extend_from_slice(&[0xff, 0xff, 0xff]);
                calls.push(Bytes::from(call));
            }
        }
        let inbox = format!("garbage-replies.{}", std::process::id());
        let mut replies = client.subscribe(format!("{inbox}.>")).await.unwrap();
        let mut asked = 0;
        for subject in &subjects {
            for (i, payload) in garbage().into_iter().enumerate() {
                client
                    .publish(subject.clone(), payload.clone())
                    .await
                    .unwrap();
                client
                    .publish_with_reply(subject.clone(), format!("{inbox}.{asked}.{i}"), payload)
                    .await
                    .unwrap();
                asked += 1;
            }
            if subject.contains(".call.") {
                for call in &calls {
                    client
                        .publish_with_reply(
                            subject.clone(),
                            format!("{inbox}.{asked}.c"),
                            call.clone(),
                        )
                        .await
                        .unwrap();
                    asked += 1;
                }
            }
        }
        client.flush().await.unwrap();
        // The nodes answer the requests they answer (joins, starts, calls) with an error; the
        // rest get no answer. Collect answers until a quiet second.
        let mut answers = Vec::new();
        while let Ok(Some(reply)) =
            tokio::time::timeout(Duration::from_secs(1), replies.next()).await
        {
            answers.push((reply.subject.to_string(), reply.payload));
        }
        answers
    });
    drop(rt);

    // Each node logged what it dropped: the head (this process) its own subjects, the worker
    // its own.
    let wait_logs = |what: &str, text: &dyn Fn() -> String, needles: &[&str]| {
        let start = Instant::now();
        loop {
            let text = text();
            let missing: Vec<&&str> = needles.iter().filter(|n| !text.contains(**n)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what} never logged {missing:?}; it logged:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_logs(
        "the head",
        &|| logs.text(),
        &[
            "a malformed join message",
            "dropped a join request without a reply subject",
            "a malformed leave message",
            "a malformed heartbeat message",
            "dropped a malformed call",
            "dropped a call without a reply subject",
            "dropped a malformed control message",
            "dropped a reply to no call of this node",
        ],
    );
    wait_logs(
        "the worker",
        &|| w1.output(),
        &[
            "a malformed start message",
            "dropped a start request without a reply subject",
            "a malformed stop message",
            "a malformed heartbeat message",
            "a malformed table message",
            "dropped a malformed call",
            "dropped a call without a reply subject",
            "dropped a malformed control message",
            "dropped a reply to no call of this node",
        ],
    );
    let refusals = answers
        .iter()
        .filter(|(_, p)| String::from_utf8_lossy(p).contains("malformed"))
        .count();
    assert!(
        refusals > 0,
        "the nodes answered garbage requests with an error"
    );

    // Nothing broke: nothing panicked, the worker is still a member (its heartbeats are still
    // heard, and it still hears the head's), and calls still cross.
    let deadline =
        Instant::now() + STABLE_WINDOW.max(Duration::from_secs_f64(TEST_HEARTBEAT_S * 5.0));
    while Instant::now() < deadline {
        assert_eq!(w1.wait_exit(Duration::ZERO), None, "{}", w1.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!w1.output().contains("panicked"), "{}", w1.output());
    assert!(!logs.text().contains("panicked"), "{}", logs.text());
    assert_eq!(serve.workers(), 1);
    assert_eq!(placement(&serve), replicas, "no replica was lost");
    for x in 0..50 {
        assert_eq!(echo.remote(x).result_timeout(CALL_BOUND).unwrap(), x);
    }
    // The head still takes joins.
    let _w2 = WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w2"));
    serve.wait_for_workers(2, PATIENCE).unwrap();
    eprintln!(
        "garbage: {} answers to garbage requests, {refusals} of them errors",
        answers.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Two hosts: a worker in another network namespace, then a partition.
// ---------------------------------------------------------------------------------------------

/// A network namespace joined to this one by a veth pair (`<host_if>` here with `.1`, the
/// namespace's end with `.2`); deleted (with the pair) when dropped.
struct Netns {
    name: String,
    host_if: String,
    host_addr: String,
}

impl Netns {
    /// Sets one up, or says why it cannot (not root, no `ip`, namespaces refused).
    fn create() -> Result<Self, String> {
        let pid = std::process::id();
        // A subnet of this process's own, so leftovers of an earlier run do not collide.
        let subnet = format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 256);
        let ns = Netns {
            name: format!("serve-faults-{pid}"),
            host_if: format!("sfh{pid}"),
            host_addr: format!("{subnet}.1"),
        };
        let peer = format!("sfn{pid}");
        let ns_addr = format!("{subnet}.2");
        ns.ip(&["netns", "add", &ns.name])?;
        ns.ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ns.ip(&["link", "set", &peer, "netns", &ns.name])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_addr),
            "dev",
            &ns.host_if,
        ])?;
        ns.ip(&["link", "set", &ns.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ns.ip(&all)
        };
        inside(&["addr", "add", &format!("{ns_addr}/24"), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `ip`: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Cuts (or restores) the link: packets are dropped silently, as in a network partition.
    fn set_link(&self, up: bool) {
        self.ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }])
            .expect("the link can be set");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of the pair deletes both.
        let _ = self.ip(&["link", "del", &self.host_if]);
        let _ = self.ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_worker_on_another_host_is_cut_off_by_a_partition_and_a_new_one_takes_over() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: network namespaces are not available here: {why}");
            return;
        }
    };
    let nats = NatsServer::start_with(NatsOptions::new().host(&ns.host_addr));
    let url = nats.url();
    let cluster = "faults-netns";
    // No CPUs on the head: the leaf's replicas run only on the other host.
    let serve = Serve::builder()
        .num_cpus(0.0)
        .cluster(test_cluster(&url, cluster))
        .start()
        .unwrap();
    let mut far =
        WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w-far").env(NETNS, &ns.name));
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let echo = deploy(&serve, cluster);
    wait_echo(&serve, "4 replicas on w-far", |d| on(d, "w-far") == 4);
    let theirs = echo.netns.remote().result_timeout(CALL_BOUND).unwrap();
    assert_ne!(theirs, own_netns(), "the replica runs on the other host");
    assert_eq!(echo.remote(7).result_timeout(CALL_BOUND).unwrap(), 7);

    // The partition: the far worker's packets are dropped, nobody's connection breaks.
    let cut = Instant::now();
    ns.set_link(false);
    let err = echo.remote(8).result_timeout(CALL_BOUND).unwrap_err();
    let failed_after = cut.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("Echo#") && message.contains("`w-far`"),
        "{message}"
    );
    assert!(
        failed_after < DETECTION_BOUND,
        "{failed_after:?}: {message}"
    );
    let detected = wait_echo(&serve, "w-far's replicas to leave routing", |d| {
        on(d, "w-far") == 0
    }) + failed_after;
    // The far worker hears its head no more either, and stops.
    let status = far.wait_exit(DETECTION_BOUND + EXIT_BOUND);
    let stopped_after = cut.elapsed();
    let output = far.output();
    assert!(
        status.is_some(),
        "the cut-off worker stops; its output:\n{output}"
    );
    assert!(
        output.contains("worker stopped: ") && output.contains("stopped answering"),
        "{output}"
    );

    // The network heals; a new worker there (a supervisor restarting it) gets the replicas.
    ns.set_link(true);
    let _again =
        WorkerProcess::start(WorkerSpec::new("echo", &url, cluster, "w-far2").env(NETNS, &ns.name));
    wait_echo(&serve, "4 replicas on w-far2", |d| {
        d.num_replicas == 4 && on(d, "w-far2") == 4
    });
    assert_eq!(echo.remote(9).result_timeout(CALL_BOUND).unwrap(), 9);
    eprintln!(
        "partition: a call failed {failed_after:?} after the cut, the replicas left routing \
         {detected:?} after (at most), the far worker stopped {stopped_after:?} after"
    );
}
