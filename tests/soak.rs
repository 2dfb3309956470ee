//! Soak test (issue 4): mixed load with faults injected, and every request accounted for.
//!
//! One serve instance on 127.0.0.1 (loopback only, an ephemeral port) serves two applications:
//!
//! * `/`: the ingress `Front`, which calls two downstream deployments for every job: `Backend`
//!   (autoscaling, 1 to 4 replicas, short delays) and `Scorer` (2 replicas with a
//!   `check_health` that fails on command, checked every 50 ms);
//! * `/narrow`: `Narrow`, one slot and `max_queued_requests = 2`, for back-pressure bursts.
//!
//! Workers send jobs as handle calls and as HTTP requests (keep-alive connections and a fresh
//! connection per request), with load phases that make `Backend` scale up and down. Every 8th job
//! carries a fault (a panic in `Front` or `Backend`, a user error in either, a `Backend` call that
//! hangs until `Front`'s 20 ms per-call timeout). A fault injector meanwhile makes a `Scorer`
//! replica fail its health checks until it is replaced (the in-process form of a replica kill),
//! cancels hung handle calls, gives hung calls a caller-side `.timeout()`, drops HTTP connections
//! mid-request, lets the proxy's request timeout (408) fire, and bursts past `max_queued_requests`
//! over handles and HTTP. Hung calls are tracked until they are seen cancelled downstream.
//! Alongside, every [`RESTART_EVERY`] it restarts `Scorer` and then `Backend`, rolling
//! (`update_deployment(.., DeploymentUpdate::new().restart())`), and follows each restart until
//! every replica that ran before it has left routing. A rolling restart must fail no request, so
//! it has no failure class of its own: a request it breaks counts as lost.
//!
//! Every request's outcome is classified: a success (its answer checked), a failure expected for
//! the fault it met (by `ErrorKind` or HTTP status), or **lost**: no outcome within the deadline,
//! or an outcome the fault does not explain. The test prints a report table and asserts that
//! nothing was lost, that something succeeded, and that every fault path was exercised.
//!
//! Short form (the default; `cargo test` and CI run it): 3 s of load, about 4 s in all.
//! Full form, on demand (at most 100 s of load, so the run stays under two minutes):
//!
//! ```sh
//! SOAK_SECONDS=90 cargo test --release --test soak -- --nocapture
//! ```
//!
//! `SOAK_SEED=<n>` replays the workers' random choices (not their timing) of a reported run.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serve_core::http::{HttpError, Json, Request, StatusCode};
use serve_core::prelude::*;
use serve_core::{DeploymentStatus, DeploymentUpdate};
use serve_test_support::{Gate, PATIENCE, named};
use tokio::sync::watch;

/// Load duration of the short form, in seconds.
const SHORT_SECONDS: f64 = 3.0;
/// Upper bound on `SOAK_SECONDS`, so that a full run stays under two minutes.
const MAX_SECONDS: f64 = 100.0;
/// How long a request may take to produce its outcome before it counts as lost.
const OUTCOME_DEADLINE: Duration = Duration::from_secs(10);
/// The proxy's request timeout: a hung HTTP request is answered 408 after this.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// `Front` gives a hanging `Backend` call this long (a per-call timeout inside the application).
const INNER_TIMEOUT: Duration = Duration::from_millis(20);
/// A caller gives a hanging handle call this long.
const OUTER_TIMEOUT: Duration = Duration::from_millis(50);
/// Requests per back-pressure burst.
const BURST: u32 = 20;
/// `Narrow`'s `max_ongoing_requests + max_queued_requests`: how many of a burst are accepted.
const NARROW_ACCEPTS: usize = 3;
/// Length of a busy or a quiet load phase.
const PHASE: Duration = Duration::from_millis(800);
/// Every `FAULT_EVERY`th job of a worker carries one of the worker faults, in turn.
const FAULT_EVERY: u64 = 8;
/// In the message of every injected panic (the panic hook keeps them off stderr).
const INJECTED: &str = "soak: injected panic";
/// The pause between rounds of rolling restarts (of `Scorer`, then `Backend`).
const RESTART_EVERY: Duration = Duration::from_millis(700);
/// The deployments the fault injector restarts, in turn.
const RESTARTED: [&str; 2] = ["Scorer", "Backend"];

// --- the application ---------------------------------------------------------------------------

/// What a job asks to go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    None,
    PanicFront,
    PanicBackend,
    RefuseFront,
    RefuseBackend,
    /// `Backend` hangs; `Front` gives it [`INNER_TIMEOUT`].
    SlowBackend,
    /// `Backend` hangs until the request is cancelled (by its caller, a timeout or a disconnect).
    HangBackend,
}

const WORKER_FAULTS: [Fault; 5] = [
    Fault::PanicFront,
    Fault::PanicBackend,
    Fault::RefuseFront,
    Fault::RefuseBackend,
    Fault::SlowBackend,
];

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub x: u64,
    pub fault: Fault,
    /// How long `Backend` works on it.
    pub work_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub id: u64,
    pub doubled: u64,
    pub plus_one: u64,
}

impl Job {
    fn expected(&self) -> Answer {
        Answer {
            id: self.id,
            doubled: self.x * 2,
            plus_one: self.x + 1,
        }
    }
}

/// The user error a job can ask for.
#[derive(Debug)]
pub struct Refused {
    job: u64,
    by: &'static str,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {} refused by {}", self.job, self.by)
    }
}

impl std::error::Error for Refused {}

/// `Front`'s error: its own refusal, or a downstream call's failure.
#[derive(Debug)]
pub enum FrontError {
    Refused(Refused),
    Downstream(ServeError),
}

impl std::fmt::Display for FrontError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrontError::Refused(r) => r.fmt(f),
            FrontError::Downstream(e) => write!(f, "downstream: {e}"),
        }
    }
}

impl std::error::Error for FrontError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrontError::Refused(r) => Some(r),
            FrontError::Downstream(e) => Some(e),
        }
    }
}

/// The innermost `ServeError` in `err`'s cause chain (`err` itself if there is none).
fn deepest(err: &ServeError) -> &ServeError {
    let mut deepest = err;
    let mut current = err.source();
    while let Some(e) = current {
        if let Some(inner) = e.downcast_ref::<ServeError>() {
            deepest = inner;
        }
        current = e.source();
    }
    deepest
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("a valid status")
}

#[deployment(num_replicas = 2, max_ongoing_requests = 64)]
pub struct Front {
    backend: DeploymentHandle<Backend>,
    scorer: DeploymentHandle<Scorer>,
}

#[deployment]
impl Front {
    pub fn new(backend: DeploymentHandle<Backend>, scorer: DeploymentHandle<Scorer>) -> Self {
        Self { backend, scorer }
    }

    /// Asks `Backend` and `Scorer` at once and combines their answers.
    pub async fn process(&self, job: Job) -> Result<Answer, FrontError> {
        match job.fault {
            Fault::PanicFront => panic!("{INJECTED} in Front (job {})", job.id),
            Fault::RefuseFront => {
                return Err(FrontError::Refused(Refused {
                    job: job.id,
                    by: "Front",
                }));
            }
            _ => {}
        }
        let mut work = self.backend.work.remote(job);
        if job.fault == Fault::SlowBackend {
            work = work.timeout(INNER_TIMEOUT);
        }
        let score = self.scorer.score.remote(job.x);
        let (doubled, plus_one) = futures::join!(work, score);
        Ok(Answer {
            id: job.id,
            doubled: doubled.map_err(FrontError::Downstream)?,
            plus_one: plus_one.map_err(FrontError::Downstream)?,
        })
    }

    /// HTTP: a JSON `Job` in, a JSON `Answer` out; failures mapped to statuses.
    pub async fn call(&self, req: Request) -> Result<Json<Answer>, HttpError> {
        let job: Job = req.json()?;
        match self.process(job).await {
            Ok(answer) => Ok(Json(answer)),
            Err(FrontError::Refused(r)) => Err(HttpError::new(status(409), r.to_string())),
            Err(FrontError::Downstream(e)) => {
                let code = if e.downcast_ref::<Refused>().is_some() {
                    409
                } else {
                    match deepest(&e).kind() {
                        ErrorKind::Panic => 502,
                        ErrorKind::Timeout => 504,
                        _ => 500,
                    }
                };
                Err(HttpError::new(status(code), e.to_string()))
            }
        }
    }
}

/// Which hanging `Backend` calls started and which were dropped (cancelled), by job id.
#[derive(Default)]
pub struct HangState {
    entered: BTreeSet<u64>,
    dropped: BTreeSet<u64>,
}

#[derive(Clone)]
pub struct Hangs(Arc<watch::Sender<HangState>>);

impl Hangs {
    fn new() -> Self {
        Self(Arc::new(watch::channel(HangState::default()).0))
    }

    fn enter(&self, job: u64) -> HangGuard {
        self.0.send_modify(|s| {
            s.entered.insert(job);
        });
        HangGuard(self.clone(), job)
    }
}

/// Marks a hanging call dropped.
pub struct HangGuard(Hangs, u64);

impl Drop for HangGuard {
    fn drop(&mut self) {
        let job = self.1;
        self.0.0.send_modify(|s| {
            s.dropped.insert(job);
        });
    }
}

#[deployment(autoscaling(
    min_replicas = 1,
    max_replicas = 4,
    target_ongoing_requests = 2,
    metrics_interval_s = 0.02,
    look_back_period_s = 0.2,
    upscale_delay_s = 0.1,
    downscale_delay_s = 0.3
))]
pub struct Backend {
    hangs: Hangs,
}

#[deployment]
impl Backend {
    pub fn new(hangs: Hangs) -> Self {
        Self { hangs }
    }

    pub async fn work(&self, job: Job) -> Result<u64, Refused> {
        match job.fault {
            Fault::PanicBackend => panic!("{INJECTED} in Backend (job {})", job.id),
            Fault::RefuseBackend => {
                return Err(Refused {
                    job: job.id,
                    by: "Backend",
                });
            }
            Fault::SlowBackend | Fault::HangBackend => {
                let _guard = self.hangs.enter(job.id);
                // Only a cancellation ends this.
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_micros(job.work_us)).await;
        Ok(job.x * 2)
    }
}

/// `Scorer`'s replicas, by replica id: how many were constructed, which are alive (constructed
/// and not yet dropped, in routing or draining), which are told to be sick.
#[derive(Default)]
pub struct WardState {
    constructed: usize,
    alive: BTreeSet<usize>,
    sick: BTreeSet<usize>,
}

#[derive(Clone)]
pub struct Ward(Arc<watch::Sender<WardState>>);

#[derive(Debug)]
pub struct Unwell(usize);

impl std::fmt::Display for Unwell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scorer replica {} is unwell (injected)", self.0)
    }
}

impl std::error::Error for Unwell {}

#[deployment(
    num_replicas = 2,
    health_check_period_s = 0.05,
    health_check_timeout_s = 2
)]
pub struct Scorer {
    id: usize,
    ward: Ward,
}

#[deployment]
impl Scorer {
    pub fn new(ward: Ward) -> Self {
        // The runtime's id, so that the injector can tell which replicas are in routing.
        let id = serve_core::replica_context()
            .expect("a constructor runs in a replica scope")
            .replica_id();
        ward.0.send_modify(|s| {
            s.constructed += 1;
            s.alive.insert(id);
        });
        Self { id, ward }
    }

    pub fn check_health(&self) -> Result<(), Unwell> {
        if self.ward.0.borrow().sick.contains(&self.id) {
            Err(Unwell(self.id))
        } else {
            Ok(())
        }
    }

    /// A sync method: runs on the blocking pool.
    pub fn score(&self, x: u64) -> u64 {
        x + 1
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        let id = self.id;
        self.ward.0.send_modify(|s| {
            s.alive.remove(&id);
        });
    }
}

/// One slot, two places in the queue; a burst's requests wait for the burst's gate.
#[deployment(max_ongoing_requests = 1, max_queued_requests = 2)]
pub struct Narrow {
    gate: Arc<Mutex<Gate>>,
}

#[deployment]
impl Narrow {
    pub fn new(gate: Arc<Mutex<Gate>>) -> Self {
        Self { gate }
    }

    pub async fn hold(&self, i: u32) -> u32 {
        let gate = self.gate.lock().unwrap().clone();
        gate.wait().await;
        i
    }

    pub async fn call(&self, req: Request) -> String {
        let gate = self.gate.lock().unwrap().clone();
        gate.wait().await;
        format!("narrow {}", req.query("i").unwrap_or_default())
    }
}

// --- outcomes ------------------------------------------------------------------------------------

const H_PANIC_FRONT: &str = "handle: Panic (Front panicked)";
const H_PANIC_BACKEND: &str = "handle: Panic (Backend panicked, via Front)";
const H_REFUSED_FRONT: &str = "handle: User (Front refused)";
const H_REFUSED_BACKEND: &str = "handle: User (Backend refused, via Front)";
const H_TIMEOUT_INNER: &str = "handle: Timeout (Front's per-call timeout on Backend)";
const H_TIMEOUT_OUTER: &str = "handle: Timeout (caller's per-call timeout)";
const H_CANCELLED: &str = "handle: Cancelled (caller left a hung call)";
const H_CANCEL_RACE: &str = "handle: Cancelled (caller cancelled mid-flight)";
const H_BACK_PRESSURE: &str = "handle: BackPressure (burst past max_queued_requests)";
const HTTP_500: &str = "http 500 (Front panicked)";
const HTTP_502: &str = "http 502 (Backend panicked)";
const HTTP_409_FRONT: &str = "http 409 (Front refused)";
const HTTP_409_BACKEND: &str = "http 409 (Backend refused)";
const HTTP_504: &str = "http 504 (Front's per-call timeout on Backend)";
const HTTP_408: &str = "http 408 (proxy request timeout)";
const HTTP_503: &str = "http 503 (burst past max_queued_requests)";
const HTTP_DISCONNECT: &str = "http: client disconnected from a hung request";
const HTTP_GAVE_UP: &str = "http: client gave up early (disconnect race)";

/// Failures that must each have happened at least once (the races need not).
const REQUIRED: [&str; 16] = [
    H_PANIC_FRONT,
    H_PANIC_BACKEND,
    H_REFUSED_FRONT,
    H_REFUSED_BACKEND,
    H_TIMEOUT_INNER,
    H_TIMEOUT_OUTER,
    H_CANCELLED,
    H_BACK_PRESSURE,
    HTTP_500,
    HTTP_502,
    HTTP_409_FRONT,
    HTTP_409_BACKEND,
    HTTP_504,
    HTTP_408,
    HTTP_503,
    HTTP_DISCONNECT,
];

enum Outcome {
    Success,
    Failed(&'static str),
    Lost(String),
}

fn classify_handle(job: &Job, result: Result<Answer, ServeError>) -> Outcome {
    let err = match result {
        Ok(answer) if job.fault == Fault::None && answer == job.expected() => {
            return Outcome::Success;
        }
        Ok(answer) => return Outcome::Lost(format!("{job:?}: answered {answer:?}")),
        Err(err) => err,
    };
    let inner = deepest(&err);
    let refused_by = err.downcast_ref::<Refused>().map(|r| r.by);
    let injected = err.to_string().contains(INJECTED);
    let label = match job.fault {
        Fault::PanicFront
            if err.kind() == ErrorKind::Panic && err.deployment() == Some("Front") && injected =>
        {
            H_PANIC_FRONT
        }
        Fault::PanicBackend
            if inner.kind() == ErrorKind::Panic
                && inner.deployment() == Some("Backend")
                && injected =>
        {
            H_PANIC_BACKEND
        }
        Fault::RefuseFront if err.kind() == ErrorKind::User && refused_by == Some("Front") => {
            H_REFUSED_FRONT
        }
        Fault::RefuseBackend if err.kind() == ErrorKind::User && refused_by == Some("Backend") => {
            H_REFUSED_BACKEND
        }
        Fault::SlowBackend
            if err.kind() == ErrorKind::User && inner.kind() == ErrorKind::Timeout =>
        {
            H_TIMEOUT_INNER
        }
        _ => return Outcome::Lost(format!("{job:?}: unexpected error: {err}")),
    };
    Outcome::Failed(label)
}

fn classify_http(job: &Job, reply: Result<(u16, String), String>) -> Outcome {
    let (code, body) = match reply {
        Ok(reply) => reply,
        Err(e) => return Outcome::Lost(format!("{job:?}: {e}")),
    };
    let label = match (job.fault, code) {
        (Fault::None, 200) => {
            return match serde_json::from_str::<Answer>(&body) {
                Ok(answer) if answer == job.expected() => Outcome::Success,
                _ => Outcome::Lost(format!("{job:?}: answered {body}")),
            };
        }
        (Fault::PanicFront, 500) if body.contains(INJECTED) => HTTP_500,
        (Fault::PanicBackend, 502) if body.contains(INJECTED) => HTTP_502,
        (Fault::RefuseFront, 409) if body.contains("refused by Front") => HTTP_409_FRONT,
        (Fault::RefuseBackend, 409) if body.contains("refused by Backend") => HTTP_409_BACKEND,
        (Fault::SlowBackend, 504) => HTTP_504,
        (Fault::HangBackend, 408) if body.starts_with("Request Timeout") => HTTP_408,
        _ => return Outcome::Lost(format!("{job:?}: unexpected HTTP {code}: {body}")),
    };
    Outcome::Failed(label)
}

#[derive(Default)]
struct Tally {
    sent: BTreeMap<&'static str, u64>,
    succeeded: u64,
    failed: BTreeMap<&'static str, u64>,
    lost: u64,
    lost_examples: Vec<String>,
    /// A fault path that did not behave (a replica not replaced, a burst admitting too many).
    problems: Vec<String>,
    slowest_success: Duration,
    /// Successes recorded while a rolling restart was under way.
    succeeded_while_restarting: u64,
    replaced: u64,
    slowest_replacement: Duration,
    /// Rolling restarts, by deployment.
    restarts: BTreeMap<&'static str, Restarts>,
}

/// The rolling restarts of one deployment.
#[derive(Debug, Default)]
struct Restarts {
    issued: u64,
    /// Restarts followed to their end: not `UPDATING`, and only replicas newer than any before.
    completed: u64,
    /// Replicas that ran when a restart was issued and had left routing when it completed.
    replaced: u64,
    slowest: Duration,
}

const VIA_HANDLE: &str = "by handle";
const VIA_KEEP_ALIVE: &str = "over HTTP, keep-alive connections";
const VIA_FRESH: &str = "over HTTP, a fresh connection each";

// --- the load ------------------------------------------------------------------------------------

struct Ctx {
    serve: Serve,
    addr: SocketAddr,
    front: DeploymentHandle<Front>,
    narrow: DeploymentHandle<Narrow>,
    narrow_gate: Arc<Mutex<Gate>>,
    hangs: Hangs,
    ward: Ward,
    tally: Mutex<Tally>,
    next_id: AtomicU64,
    start: Instant,
    load_until: Instant,
    /// Rolling restarts under way (from just before one is issued until it is seen complete).
    restarting: AtomicUsize,
    /// Held while `Scorer`'s replicas change on purpose (a health replacement or a restart), so
    /// that a replica made sick is replaced for failing its checks, not retired by a restart.
    scorer_change: tokio::sync::Mutex<()>,
}

impl Ctx {
    fn job(&self, fault: Fault, rng: &mut Rng) -> Job {
        Job {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            x: rng.below(1_000_000_000),
            fault,
            work_us: 1_000 + rng.below(3_000),
        }
    }

    fn loading(&self) -> bool {
        Instant::now() < self.load_until
    }

    /// Busy and quiet phases alternate, so that `Backend` scales up and back down.
    fn quiet(&self) -> bool {
        (self.start.elapsed().as_millis() / PHASE.as_millis()) % 2 == 1
    }

    fn sent(&self, via: &'static str) {
        *self.tally.lock().unwrap().sent.entry(via).or_default() += 1;
    }

    fn record(&self, outcome: Outcome, took: Duration) {
        let mut tally = self.tally.lock().unwrap();
        match outcome {
            Outcome::Success => {
                tally.succeeded += 1;
                tally.slowest_success = tally.slowest_success.max(took);
                if self.restarting.load(Ordering::SeqCst) > 0 {
                    tally.succeeded_while_restarting += 1;
                }
            }
            Outcome::Failed(label) => *tally.failed.entry(label).or_default() += 1,
            Outcome::Lost(why) => {
                tally.lost += 1;
                if tally.lost_examples.len() < 20 {
                    tally.lost_examples.push(why);
                }
            }
        }
    }

    fn problem(&self, what: String) {
        self.tally.lock().unwrap().problems.push(what);
    }

    /// Waits (bounded) until the hung `Backend` call of `job` has started.
    async fn hang_entered(&self, job: u64) -> bool {
        let mut rx = self.hangs.0.subscribe();
        matches!(
            tokio::time::timeout(PATIENCE, rx.wait_for(|s| s.entered.contains(&job))).await,
            Ok(Ok(_))
        )
    }

    /// Waits (bounded) until the hung `Backend` call of `job` was dropped (cancelled).
    async fn hang_dropped(&self, job: u64) -> bool {
        let mut rx = self.hangs.0.subscribe();
        matches!(
            tokio::time::timeout(PATIENCE, rx.wait_for(|s| s.dropped.contains(&job))).await,
            Ok(Ok(_))
        )
    }
}

/// xorshift64*: the workers' random choices, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Sends one request on an open connection and reads the whole response.
async fn exchange(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let code = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body broken: {e}"))?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

async fn handshake(
    addr: SocketAddr,
) -> Result<
    (
        Sender,
        hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>,
    ),
    String,
> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// One request on a connection of its own; dropping this future drops the connection.
async fn fresh(addr: SocketAddr, path: &str, body: Vec<u8>) -> Result<(u16, String), String> {
    let (mut sender, conn) = handshake(addr).await?;
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        reply = exchange(&mut sender, addr, path, body) => reply,
        end = &mut conn => Err(format!("connection ended before the response: {end:?}")),
    }
}

/// A keep-alive connection, reopened if it breaks (which counts the request it broke as lost).
struct KeepAlive {
    addr: SocketAddr,
    conn: Option<(Sender, tokio::task::JoinHandle<()>)>,
}

impl KeepAlive {
    async fn post(&mut self, body: Vec<u8>) -> Result<(u16, String), String> {
        if self.conn.is_none() {
            let (sender, conn) = handshake(self.addr).await?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some((sender, driver));
        }
        let (sender, _) = self.conn.as_mut().expect("connected above");
        let reply = exchange(sender, self.addr, "/", body).await;
        if reply.is_err() {
            self.close();
        }
        reply
    }

    fn close(&mut self) {
        if let Some((_, driver)) = self.conn.take() {
            driver.abort();
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Handle,
    KeepAlive,
    Fresh,
}

/// Sends jobs back to back (busy phase) or paced (quiet phase) until the load ends.
async fn worker(ctx: Arc<Ctx>, via: Via, index: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut keep_alive = KeepAlive {
        addr: ctx.addr,
        conn: None,
    };
    let mut n = 0u64;
    while ctx.loading() {
        if ctx.quiet() {
            tokio::time::sleep(Duration::from_millis(20)).await; // pacing, not synchronisation
        }
        n += 1;
        // Each worker starts the rotation elsewhere, so that together they meet every fault soon.
        let fault = if n.is_multiple_of(FAULT_EVERY) {
            WORKER_FAULTS[(n / FAULT_EVERY + index) as usize % WORKER_FAULTS.len()]
        } else {
            Fault::None
        };
        let job = ctx.job(fault, &mut rng);
        let started = Instant::now();
        let outcome = match via {
            Via::Handle => {
                let response = ctx.front.process.remote(job);
                ctx.sent(VIA_HANDLE);
                // Now and then the caller cancels a healthy call while it is under way.
                let cancel_race = fault == Fault::None && rng.below(40) == 0;
                if cancel_race {
                    tokio::time::sleep(Duration::from_micros(rng.below(3_000))).await;
                    response.cancel();
                }
                match tokio::time::timeout(OUTCOME_DEADLINE, response).await {
                    Err(_) => Outcome::Lost(format!("{job:?}: no outcome (handle)")),
                    Ok(Err(e)) if cancel_race && e.kind() == ErrorKind::Cancelled => {
                        Outcome::Failed(H_CANCEL_RACE)
                    }
                    Ok(result) => classify_handle(&job, result),
                }
            }
            Via::KeepAlive => {
                ctx.sent(VIA_KEEP_ALIVE);
                let body = serde_json::to_vec(&job).unwrap();
                match tokio::time::timeout(OUTCOME_DEADLINE, keep_alive.post(body)).await {
                    Err(_) => {
                        keep_alive.close();
                        Outcome::Lost(format!("{job:?}: no outcome (keep-alive)"))
                    }
                    Ok(reply) => classify_http(&job, reply),
                }
            }
            Via::Fresh => {
                ctx.sent(VIA_FRESH);
                let body = serde_json::to_vec(&job).unwrap();
                // Now and then the client gives up after a moment and drops its connection.
                let give_up = fault == Fault::None && rng.below(15) == 0;
                let patience = if give_up {
                    Duration::from_micros(rng.below(3_000))
                } else {
                    OUTCOME_DEADLINE
                };
                match tokio::time::timeout(patience, fresh(ctx.addr, "/", body)).await {
                    Err(_) if give_up => Outcome::Failed(HTTP_GAVE_UP),
                    Err(_) => Outcome::Lost(format!("{job:?}: no outcome (fresh connection)")),
                    Ok(reply) => classify_http(&job, reply),
                }
            }
        };
        ctx.record(outcome, started.elapsed());
    }
    keep_alive.close();
}

// --- the fault injector ---------------------------------------------------------------------------

/// Runs rounds of every injected fault until the load ends (at least one whole round), with
/// rolling restarts at their own pace alongside.
async fn injector(ctx: Arc<Ctx>, seed: u64) {
    let restarts = tokio::spawn(rolling_restarts(ctx.clone()));
    let mut rng = Rng::new(seed);
    let pace = Duration::from_millis(100); // spreads the faults over the load; not synchronisation
    loop {
        // The proxy's request timeout takes a while to fire: let it run alongside the rest.
        let probe = tokio::spawn(http_timeout(
            ctx.clone(),
            ctx.job(Fault::HangBackend, &mut rng),
        ));
        replace_scorer_replica(&ctx).await;
        tokio::time::sleep(pace).await;
        handle_cancel(&ctx, ctx.job(Fault::HangBackend, &mut rng)).await;
        tokio::time::sleep(pace).await;
        handle_timeout(&ctx, ctx.job(Fault::HangBackend, &mut rng)).await;
        tokio::time::sleep(pace).await;
        http_disconnect(&ctx, ctx.job(Fault::HangBackend, &mut rng)).await;
        tokio::time::sleep(pace).await;
        handle_burst(&ctx).await;
        tokio::time::sleep(pace).await;
        http_burst(&ctx).await;
        if probe.await.is_err() {
            ctx.problem("the 408 probe task failed".into());
        }
        if !ctx.loading() {
            break;
        }
    }
    if restarts.await.is_err() {
        ctx.problem("the rolling restart task failed".into());
    }
}

/// Restarts every deployment of [`RESTARTED`] in turn, every [`RESTART_EVERY`] while the load
/// lasts (at least one round).
async fn rolling_restarts(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(RESTART_EVERY).await; // spreads the restarts over the load
        for name in RESTARTED {
            if name == "Scorer" {
                let _turn = ctx.scorer_change.lock().await;
                if let Some(replaced) = rolling_restart(&ctx, name).await {
                    scorer_drained(&ctx, &replaced).await;
                }
            } else {
                rolling_restart(&ctx, name).await;
            }
        }
        if Instant::now() + RESTART_EVERY >= ctx.load_until {
            return; // the next round would come after the load
        }
    }
}

/// Restarts deployment `name`, rolling, and follows the restart (polls an external observation)
/// until it is complete: the deployment is no longer `UPDATING` and every replica in routing is
/// newer than all that ran before (replica ids grow and are never reused). Returns the ids of
/// the replicas it replaced, once it is complete.
async fn rolling_restart(ctx: &Ctx, name: &'static str) -> Option<Vec<usize>> {
    let Some(before) = deployment_status(&ctx.serve, name) else {
        ctx.problem(format!("no deployment {name} to restart"));
        return None;
    };
    let old: Vec<usize> = before.replicas.iter().map(|r| r.replica_id).collect();
    let newest_old = old.iter().copied().max();
    let started = Instant::now();
    ctx.restarting.fetch_add(1, Ordering::SeqCst);
    // `update_deployment` blocks, so it runs on the blocking pool, not on this runtime's workers.
    let serve = ctx.serve.clone();
    let issued = tokio::task::spawn_blocking(move || {
        serve.update_deployment(name, DeploymentUpdate::new().restart())
    })
    .await;
    let completed = match issued {
        Ok(Ok(())) => {
            ctx.tally
                .lock()
                .unwrap()
                .restarts
                .entry(name)
                .or_default()
                .issued += 1;
            restart_completed(ctx, name, newest_old).await
        }
        Ok(Err(e)) => {
            ctx.problem(format!("restarting {name} failed: {e}"));
            false
        }
        Err(e) => {
            ctx.problem(format!("the task restarting {name} failed: {e}"));
            false
        }
    };
    ctx.restarting.fetch_sub(1, Ordering::SeqCst);
    if !completed {
        return None;
    }
    let mut tally = ctx.tally.lock().unwrap();
    let restarts = tally.restarts.entry(name).or_default();
    restarts.completed += 1;
    restarts.replaced += old.len() as u64;
    restarts.slowest = restarts.slowest.max(started.elapsed());
    Some(old)
}

/// Waits (bounded) until a restart of `name` is complete: see [`rolling_restart`].
async fn restart_completed(ctx: &Ctx, name: &str, newest_old: Option<usize>) -> bool {
    let until = Instant::now() + PATIENCE;
    loop {
        let now = deployment_status(&ctx.serve, name);
        let complete = now.as_ref().is_some_and(|d| {
            d.status != "UPDATING"
                && !d.replicas.is_empty()
                && d.replicas
                    .iter()
                    .all(|r| newest_old.is_none_or(|n| r.replica_id > n))
        });
        if complete {
            return true;
        }
        if Instant::now() > until {
            ctx.problem(format!(
                "a rolling restart of {name} was not complete after {PATIENCE:?}: {now:?}; \
                 the newest replica before it: {newest_old:?}"
            ));
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until the `Scorer` replicas a restart replaced have drained and been dropped.
async fn scorer_drained(ctx: &Ctx, replaced: &[usize]) {
    let mut rx = ctx.ward.0.subscribe();
    let drained = tokio::time::timeout(
        PATIENCE,
        rx.wait_for(|s| replaced.iter().all(|id| !s.alive.contains(id))),
    )
    .await;
    if !matches!(drained, Ok(Ok(_))) {
        ctx.problem(format!(
            "Scorer replicas {replaced:?} left routing in a restart but were not dropped within \
             {PATIENCE:?}"
        ));
    }
}

/// Makes one healthy `Scorer` replica in routing fail its health checks; waits until it is
/// replaced.
async fn replace_scorer_replica(ctx: &Ctx) {
    let _turn = ctx.scorer_change.lock().await;
    // Not one that a restart took out of routing and that is still draining.
    let in_routing: BTreeSet<usize> = deployment_status(&ctx.serve, "Scorer")
        .map(|d| d.replicas.iter().map(|r| r.replica_id).collect())
        .unwrap_or_default();
    let mut rx = ctx.ward.0.subscribe();
    let (victim, constructed) = {
        let ward = rx.borrow_and_update();
        let victim = ward
            .alive
            .iter()
            .copied()
            .find(|id| in_routing.contains(id) && !ward.sick.contains(id));
        (victim, ward.constructed)
    };
    let Some(victim) = victim else {
        ctx.problem("no healthy Scorer replica to make sick".into());
        return;
    };
    let started = Instant::now();
    ctx.ward.0.send_modify(|s| {
        s.sick.insert(victim);
    });
    let replaced = tokio::time::timeout(
        PATIENCE,
        rx.wait_for(|s| {
            !s.alive.contains(&victim) && s.constructed > constructed && s.alive.len() == 2
        }),
    )
    .await;
    if matches!(replaced, Ok(Ok(_))) {
        let mut tally = ctx.tally.lock().unwrap();
        tally.replaced += 1;
        tally.slowest_replacement = tally.slowest_replacement.max(started.elapsed());
    } else {
        ctx.problem(format!(
            "Scorer replica {victim} failed its health checks but was not replaced within {PATIENCE:?}"
        ));
    }
}

/// A caller cancels a handle call whose `Backend` call hangs: it must fail `Cancelled`, and the
/// `Backend` call must be cancelled with it.
async fn handle_cancel(ctx: &Ctx, job: Job) {
    let started = Instant::now();
    let response = ctx.front.process.remote(job);
    ctx.sent(VIA_HANDLE);
    if !ctx.hang_entered(job.id).await {
        ctx.problem(format!("{job:?} never reached Backend"));
    }
    response.cancel();
    let outcome = match tokio::time::timeout(OUTCOME_DEADLINE, response).await {
        Ok(Err(e)) if e.kind() == ErrorKind::Cancelled => {
            if ctx.hang_dropped(job.id).await {
                Outcome::Failed(H_CANCELLED)
            } else {
                Outcome::Lost(format!("{job:?}: cancelled, but Backend went on"))
            }
        }
        Ok(other) => Outcome::Lost(format!("{job:?}: cancelled, got {other:?}")),
        Err(_) => Outcome::Lost(format!("{job:?}: no outcome after cancel")),
    };
    ctx.record(outcome, started.elapsed());
}

/// A caller's per-call timeout on a handle call whose `Backend` call hangs.
async fn handle_timeout(ctx: &Ctx, job: Job) {
    let started = Instant::now();
    let response = ctx.front.process.remote(job).timeout(OUTER_TIMEOUT);
    ctx.sent(VIA_HANDLE);
    let outcome = match tokio::time::timeout(OUTCOME_DEADLINE, response).await {
        Ok(Err(e)) if e.kind() == ErrorKind::Timeout => {
            if ctx.hang_dropped(job.id).await {
                Outcome::Failed(H_TIMEOUT_OUTER)
            } else {
                Outcome::Lost(format!("{job:?}: timed out, but Backend went on"))
            }
        }
        Ok(other) => Outcome::Lost(format!("{job:?}: per-call timeout, got {other:?}")),
        Err(_) => Outcome::Lost(format!("{job:?}: no outcome despite a per-call timeout")),
    };
    ctx.record(outcome, started.elapsed());
}

/// An HTTP client drops its connection while the `Backend` call hangs: the proxy must cancel it.
async fn http_disconnect(ctx: &Ctx, job: Job) {
    let started = Instant::now();
    ctx.sent(VIA_FRESH);
    let client = tokio::spawn(fresh(ctx.addr, "/", serde_json::to_vec(&job).unwrap()));
    if !ctx.hang_entered(job.id).await {
        ctx.problem(format!("{job:?} never reached Backend"));
    }
    client.abort(); // the client goes away: its connection is dropped
    let outcome = match client.await {
        Ok(reply) => Outcome::Lost(format!(
            "{job:?}: answered before the disconnect: {reply:?}"
        )),
        Err(_) if ctx.hang_dropped(job.id).await => Outcome::Failed(HTTP_DISCONNECT),
        Err(_) => Outcome::Lost(format!("{job:?}: client left, but Backend went on")),
    };
    ctx.record(outcome, started.elapsed());
}

/// An HTTP request whose `Backend` call hangs: the proxy answers 408 and cancels it.
async fn http_timeout(ctx: Arc<Ctx>, job: Job) {
    let started = Instant::now();
    ctx.sent(VIA_FRESH);
    let reply = tokio::time::timeout(
        OUTCOME_DEADLINE,
        fresh(ctx.addr, "/", serde_json::to_vec(&job).unwrap()),
    )
    .await;
    let outcome = match reply {
        Err(_) => Outcome::Lost(format!("{job:?}: no 408 in time")),
        Ok(reply) => match classify_http(&job, reply) {
            Outcome::Failed(label) if !ctx.hang_dropped(job.id).await => {
                Outcome::Lost(format!("{job:?}: {label}, but Backend went on"))
            }
            outcome => outcome,
        },
    };
    ctx.record(outcome, started.elapsed());
}

/// Closes `Narrow`'s gate for a new burst and returns it.
fn new_burst(ctx: &Ctx) -> Gate {
    let gate = Gate::new();
    *ctx.narrow_gate.lock().unwrap() = gate.clone();
    gate
}

/// `BURST` handle calls at once against `Narrow`: one runs, two wait, the rest are dropped.
async fn handle_burst(ctx: &Ctx) {
    let gate = new_burst(ctx);
    let started = Instant::now();
    let mut accepted = Vec::new();
    for i in 0..BURST {
        let mut call = ctx.narrow.hold.remote(i);
        ctx.sent(VIA_HANDLE);
        // A dropped call has failed by the time `remote` returns; an accepted one waits.
        match futures::poll!(&mut call) {
            std::task::Poll::Ready(Err(e)) if e.kind() == ErrorKind::BackPressure => {
                ctx.record(Outcome::Failed(H_BACK_PRESSURE), started.elapsed());
            }
            std::task::Poll::Ready(other) => ctx.record(
                Outcome::Lost(format!(
                    "burst call {i}: done before its gate opened: {other:?}"
                )),
                started.elapsed(),
            ),
            std::task::Poll::Pending => accepted.push((i, call)),
        }
    }
    if accepted.len() != NARROW_ACCEPTS {
        ctx.problem(format!(
            "a handle burst had {} calls accepted, not {NARROW_ACCEPTS}",
            accepted.len()
        ));
    }
    gate.open();
    for (i, call) in accepted {
        let outcome = match tokio::time::timeout(OUTCOME_DEADLINE, call).await {
            Ok(Ok(v)) if v == i => Outcome::Success,
            other => Outcome::Lost(format!("accepted burst call {i}: {other:?}")),
        };
        ctx.record(outcome, started.elapsed());
    }
}

/// `BURST` HTTP requests at once against `/narrow`, each on its own connection.
async fn http_burst(ctx: &Ctx) {
    let gate = new_burst(ctx);
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..BURST {
        ctx.sent(VIA_FRESH);
        let (tx, addr) = (tx.clone(), ctx.addr);
        tokio::spawn(async move {
            let path = format!("/narrow?i={i}");
            let reply =
                tokio::time::timeout(OUTCOME_DEADLINE, fresh(addr, &path, Vec::new())).await;
            let _ = tx.send((i, reply));
        });
    }
    drop(tx);
    let dropped_expected = BURST as usize - NARROW_ACCEPTS;
    let mut replies = 0;
    let mut back_pressure = 0;
    // The dropped requests are answered at once; the accepted ones only once the gate opens.
    let until = tokio::time::Instant::now() + PATIENCE;
    while back_pressure < dropped_expected {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some((i, reply))) => {
                replies += 1;
                let outcome = match reply {
                    Ok(Ok((503, body))) if body == "Request dropped due to backpressure" => {
                        back_pressure += 1;
                        Outcome::Failed(HTTP_503)
                    }
                    other => Outcome::Lost(format!(
                        "burst request {i}: answered before its gate opened: {other:?}"
                    )),
                };
                ctx.record(outcome, started.elapsed());
            }
            _ => break,
        }
    }
    if back_pressure != dropped_expected {
        ctx.problem(format!(
            "an HTTP burst had {back_pressure} requests dropped, not {dropped_expected}"
        ));
    }
    gate.open();
    while let Some((i, reply)) = rx.recv().await {
        replies += 1;
        let outcome = match reply {
            Ok(Ok((200, body))) if body == format!("narrow {i}") => Outcome::Success,
            other => Outcome::Lost(format!("accepted burst request {i}: {other:?}")),
        };
        ctx.record(outcome, started.elapsed());
    }
    assert_eq!(replies, BURST as usize, "every burst task reports back");
}

// --- observing the deployments --------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Scaling {
    min: usize,
    max: usize,
    ups: usize,
    downs: usize,
}

fn deployment_status(serve: &Serve, name: &str) -> Option<DeploymentStatus> {
    serve
        .status()
        .into_iter()
        .flat_map(|a| a.deployments)
        .find(|d| d.name == name)
}

/// How many replicas `Backend` runs; `None` while a rolling restart runs one more than its target.
fn backend_replicas(serve: &Serve) -> Option<usize> {
    deployment_status(serve, "Backend")
        .filter(|d| d.status != "UPDATING")
        .map(|d| d.num_replicas)
}

/// Samples `Backend`'s replica count every 10 ms until `stop` (polls an external observation),
/// leaving out rolling restarts.
fn sample_scaling(serve: Serve, stop: Arc<AtomicBool>) -> Scaling {
    let first = backend_replicas(&serve).unwrap_or(1);
    let mut scaling = Scaling {
        min: first,
        max: first,
        ..Scaling::default()
    };
    let mut last = first;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
        let Some(now) = backend_replicas(&serve) else {
            continue;
        };
        scaling.min = scaling.min.min(now);
        scaling.max = scaling.max.max(now);
        if now > last {
            scaling.ups += 1;
        } else if now < last {
            scaling.downs += 1;
        }
        last = now;
    }
    scaling
}

/// Keeps the injected panics' messages off stderr; any other panic is reported as usual.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !message.contains(INJECTED) {
            default(info);
        }
    }));
}

fn env_seconds() -> f64 {
    std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(SHORT_SECONDS, |s| s.min(MAX_SECONDS))
}

fn env_seed() -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[test]
fn soak_mixed_load_with_faults_loses_nothing() {
    quiet_injected_panics();
    let seconds = env_seconds();
    let seed = env_seed();
    let (handle_workers, keep_alive_workers, fresh_workers) = (4, 3, 2);

    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .set_http_request_timeout(Some(HTTP_REQUEST_TIMEOUT))
        .unwrap();
    let (hangs, ward) = (
        Hangs::new(),
        Ward(Arc::new(watch::channel(WardState::default()).0)),
    );
    let narrow_gate = Arc::new(Mutex::new(Gate::new()));
    let front = serve
        .run_http(
            Front::bind(Backend::bind(hangs.clone()), Scorer::bind(ward.clone())),
            named("front").route_prefix("/"),
        )
        .unwrap();
    let narrow = serve
        .run_http(
            Narrow::bind(narrow_gate.clone()),
            named("narrow").route_prefix("/narrow"),
        )
        .unwrap();

    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        serve: serve.clone(),
        addr,
        front,
        narrow,
        narrow_gate,
        hangs,
        ward,
        tally: Mutex::new(Tally::default()),
        next_id: AtomicU64::new(0),
        start,
        load_until: start + Duration::from_secs_f64(seconds),
        restarting: AtomicUsize::new(0),
        scorer_change: tokio::sync::Mutex::new(()),
    });
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (serve, stop) = (serve.clone(), stop_sampling.clone());
        std::thread::spawn(move || sample_scaling(serve, stop))
    };

    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (back_to_min, hangs_left) = clients.block_on(async {
        let mut tasks = Vec::new();
        let vias = std::iter::repeat_n(Via::Handle, handle_workers)
            .chain(std::iter::repeat_n(Via::KeepAlive, keep_alive_workers))
            .chain(std::iter::repeat_n(Via::Fresh, fresh_workers));
        for (i, via) in vias.enumerate() {
            let index = i as u64;
            tasks.push(tokio::spawn(worker(
                ctx.clone(),
                via,
                index,
                seed ^ (index + 1),
            )));
        }
        tasks.push(tokio::spawn(injector(ctx.clone(), seed)));
        for task in tasks {
            // Every wait inside is bounded; this bound only guards against a hang of the harness.
            tokio::time::timeout(OUTCOME_DEADLINE + PATIENCE * 4, task)
                .await
                .expect("a load task finished")
                .expect("a load task did not panic");
        }
        // Every hung Backend call was cancelled (each was also checked when its fault was injected).
        let mut rx = ctx.hangs.0.subscribe();
        let _ = tokio::time::timeout(PATIENCE, rx.wait_for(|s| s.entered == s.dropped)).await;
        let hangs_left = {
            let s = rx.borrow();
            s.entered.difference(&s.dropped).count()
        };
        // Idle again: Backend scales back to its minimum (polls an external observation).
        let idle = Instant::now();
        let mut back_to_min = None;
        while idle.elapsed() < PATIENCE {
            if backend_replicas(&serve) == Some(1) {
                back_to_min = Some(idle.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (back_to_min, hangs_left)
    });
    stop_sampling.store(true, Ordering::SeqCst);
    let scaling = sampler.join().unwrap();
    let elapsed = start.elapsed();
    drop(clients);
    serve.shutdown();
    serve_core::shutdown(); // the default instance that ran the caller-side timeout timers

    let tally = ctx.tally.lock().unwrap();
    let sent: u64 = tally.sent.values().sum();
    let failed: u64 = tally.failed.values().sum();
    let mut report = String::new();
    let mut row = |what: &str, value: String| {
        report.push_str(&format!("| {what:<58} | {value:>14} |\n"));
    };
    println!(
        "\nsoak: {seconds} s of load (SOAK_SECONDS), {elapsed:.1?} in all, seed {seed} (SOAK_SEED); \
         workers: {handle_workers} handle, {keep_alive_workers} HTTP keep-alive, \
         {fresh_workers} HTTP fresh-connection, 1 fault injector"
    );
    row("requests sent", sent.to_string());
    for (via, n) in &tally.sent {
        row(&format!("  {via}"), n.to_string());
    }
    row("succeeded (answer checked)", tally.succeeded.to_string());
    row("failed as expected for the fault met", failed.to_string());
    for (label, n) in &tally.failed {
        row(&format!("  {label}"), n.to_string());
    }
    row(
        "lost (no outcome, or not the expected one)",
        tally.lost.to_string(),
    );
    row(
        "Scorer replicas replaced after failing health checks",
        tally.replaced.to_string(),
    );
    row(
        "  slowest replacement",
        format!("{:.0?}", tally.slowest_replacement),
    );
    for (name, restarts) in &tally.restarts {
        row(
            &format!("rolling restarts of {name}: issued / completed"),
            format!("{} / {}", restarts.issued, restarts.completed),
        );
        row("  replicas replaced", restarts.replaced.to_string());
        row("  slowest restart", format!("{:.0?}", restarts.slowest));
    }
    row(
        "successes while a rolling restart was under way",
        tally.succeeded_while_restarting.to_string(),
    );
    row(
        "Backend replicas (autoscaling 1..4): min / max seen",
        format!("{} / {}", scaling.min, scaling.max),
    );
    row(
        "  scale-ups / scale-downs seen",
        format!("{} / {}", scaling.ups, scaling.downs),
    );
    row(
        "  back to 1 replica after the load",
        back_to_min.map_or("no".into(), |t| format!("in {t:.0?}")),
    );
    row("hung Backend calls never cancelled", hangs_left.to_string());
    row("slowest success", format!("{:.1?}", tally.slowest_success));
    println!("| {:<58} | {:>14} |", "what", "count");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(16));
    print!("{report}");
    for example in &tally.lost_examples {
        println!("lost: {example}");
    }
    for problem in &tally.problems {
        println!("problem: {problem}");
    }

    assert_eq!(
        sent,
        tally.succeeded + failed + tally.lost,
        "every request sent has an outcome"
    );
    assert_eq!(tally.lost, 0, "lost requests: {:?}", tally.lost_examples);
    assert!(tally.problems.is_empty(), "{:?}", tally.problems);
    assert!(tally.succeeded > 0, "nothing succeeded");
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|label| tally.failed.get(*label).copied().unwrap_or(0) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "fault paths never exercised: {missing:?}"
    );
    assert!(tally.replaced > 0, "no replica was replaced");
    for name in RESTARTED {
        let restarts = tally.restarts.get(name);
        assert!(
            restarts.is_some_and(|r| r.completed > 0 && r.replaced > 0),
            "no rolling restart of {name} completed: {restarts:?}"
        );
    }
    assert!(
        tally.succeeded_while_restarting > 0,
        "no request succeeded during a rolling restart"
    );
    assert!(scaling.max > 1, "Backend never scaled up: {scaling:?}");
    assert!(back_to_min.is_some(), "Backend never scaled back down");
    assert_eq!(hangs_left, 0, "hung Backend calls were never cancelled");
}
