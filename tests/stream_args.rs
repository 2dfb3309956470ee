//! Stream arguments (issue 11): a method parameter of type `ArgStream<T>` takes another call's
//! generator, or any stream, so streaming stages compose into pipelines that run concurrently,
//! with back pressure end to end, errors as items and cancellation through every stage; in one
//! process, and (the last part) across processes in cluster mode, with a real nats-server and
//! worker processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serve_core::__private::{BATCH_MAX, STREAM_BUFFER, STREAM_WINDOW};
use serve_core::prelude::*;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_worker, test_cluster, worker_env,
};
use serve_test_support::{
    Counter, Gate, NatsServer, OpenOnDrop, PATIENCE, deployment_status, named, run_with,
};

// --- the stages ---------------------------------------------------------------------------------

/// The first stage: produces numbers, counting each one as it is produced.
#[deployment]
pub struct Source {
    produced: Counter,
    step: Gate,
    dropped: Gate,
}

#[deployment]
impl Source {
    pub fn new(produced: Counter, step: Gate, dropped: Gate) -> Self {
        Self {
            produced,
            step,
            dropped,
        }
    }

    /// `0..n`, as fast as its consumer takes them.
    pub fn count(&self, n: u64) -> impl Stream<Item = u64> + Send + '_ {
        futures::stream::iter(0..n).map(move |i| {
            self.produced.incr();
            i
        })
    }

    /// `0`, then (once the gate is open) `1, 2, ..` without end.
    pub fn paced(&self) -> impl Stream<Item = u64> + Send + '_ {
        stream! {
            let _dropped = OpenOnDrop(self.dropped.clone());
            yield 0;
            self.step.wait().await;
            let mut i = 1;
            loop {
                self.produced.incr();
                yield i;
                i += 1;
            }
        }
    }

    /// `0..fail_at`, then an error.
    pub fn faulty(
        &self,
        fail_at: u64,
    ) -> impl Stream<Item = Result<u64, std::io::Error>> + Send + use<> {
        futures::stream::iter((0..=fail_at).map(move |i| {
            if i == fail_at {
                Err(std::io::Error::other(format!("sensor {i} failed")))
            } else {
                Ok(i)
            }
        }))
    }
}

/// A middle or last stage: `x * mul + add` for each item of its input stream.
#[deployment]
pub struct Relay {
    mul: u64,
    add: u64,
    dropped: Gate,
}

#[deployment]
impl Relay {
    pub fn new(mul: u64, add: u64, dropped: Gate) -> Self {
        Self { mul, add, dropped }
    }

    /// Passes an upstream error on with `?`: it is this stream's last item, naming this stage.
    pub fn relay(
        &self,
        mut xs: ArgStream<u64>,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + '_ {
        try_stream! {
            let _dropped = OpenOnDrop(self.dropped.clone());
            while let Some(x) = xs.next().await {
                yield x? * self.mul + self.add;
            }
        }
    }

    /// A unary method taking a stream.
    pub async fn sum(&self, xs: ArgStream<u64>) -> Result<u64, ServeError> {
        let _dropped = OpenOnDrop(self.dropped.clone());
        xs.fold(Ok(0), |acc: Result<u64, ServeError>, x| async move {
            Ok(acc? + x?)
        })
        .await
    }

    /// The first `n` items of its input; then it stops reading (and returns).
    pub async fn first(&self, mut xs: ArgStream<u64>, n: usize) -> Result<Vec<u64>, ServeError> {
        let _dropped = OpenOnDrop(self.dropped.clone());
        let mut items = Vec::with_capacity(n);
        while items.len() < n
            && let Some(x) = xs.next().await
        {
            items.push(x?);
        }
        Ok(items)
    }

    /// Passes its input on (`x * mul + add`), and leaves marks in the directory `marks` for a
    /// test in another process: `error` holds the kind of an error item it read, `dropped` says
    /// that the stream was dropped.
    pub fn watch(
        &self,
        mut xs: ArgStream<u64>,
        marks: String,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + '_ {
        try_stream! {
            let _dropped = MarkOnDrop(Path::new(&marks).join("dropped"));
            while let Some(x) = xs.next().await {
                match x {
                    Ok(x) => yield x * self.mul + self.add,
                    Err(e) => {
                        mark(&Path::new(&marks).join("error"), &format!("{:?}", e.kind()));
                        Err(e)?;
                    }
                }
            }
        }
    }

    /// The items before an upstream error, and that error as the stream gave it:
    /// `(deployment, method, kind, message)`.
    pub async fn inspect(
        &self,
        mut xs: ArgStream<u64>,
    ) -> (Vec<u64>, Option<(String, String, String, String)>) {
        let mut items = Vec::new();
        while let Some(x) = xs.next().await {
            match x {
                Ok(x) => items.push(x),
                Err(e) => {
                    // The error is the last item: the stream ends after it.
                    assert!(xs.next().await.is_none());
                    let described = (
                        e.deployment().unwrap_or_default().to_owned(),
                        e.method().unwrap_or_default().to_owned(),
                        format!("{:?}", e.kind()),
                        e.to_string(),
                    );
                    return (items, Some(described));
                }
            }
        }
        (items, None)
    }
}

/// The last stage: `x + 1` for each item (another deployment, so that a pipeline has three).
#[deployment]
pub struct PlusOne {
    dropped: Gate,
}

#[deployment]
impl PlusOne {
    pub fn new(dropped: Gate) -> Self {
        Self { dropped }
    }

    /// An `async fn` returning a stream that reads its input.
    pub async fn relay(
        &self,
        mut xs: ArgStream<u64>,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + '_ {
        try_stream! {
            let _dropped = OpenOnDrop(self.dropped.clone());
            while let Some(x) = xs.next().await {
                yield x? + 1;
            }
        }
    }
}

struct Pipeline {
    source: DeploymentHandle<Source>,
    double: DeploymentHandle<Relay>,
    plus_one: DeploymentHandle<PlusOne>,
    produced: Counter,
    step: Gate,
    dropped: [Gate; 3],
    _serve: Serve,
}

impl Pipeline {
    async fn start() -> Self {
        let serve = Serve::start().unwrap();
        let (produced, step) = (Counter::new(), Gate::new());
        let dropped = [Gate::new(), Gate::new(), Gate::new()];
        let source = serve
            .run_with_async(
                Source::bind(produced.clone(), step.clone(), dropped[0].clone()),
                named("source"),
            )
            .await
            .unwrap();
        let double = serve
            .run_with_async(Relay::bind(2, 0, dropped[1].clone()), named("double"))
            .await
            .unwrap();
        let plus_one = serve
            .run_with_async(PlusOne::bind(dropped[2].clone()), named("plus_one"))
            .await
            .unwrap();
        Self {
            source,
            double,
            plus_one,
            produced,
            step,
            dropped,
            _serve: serve,
        }
    }
}

// --- a three-stage pipeline ----------------------------------------------------------------------

#[tokio::test]
async fn a_three_stage_pipeline_passes_100_000_items_in_order() {
    let p = Pipeline::start().await;
    const N: u64 = 100_000;
    let mut out = p
        .plus_one
        .relay
        .remote(p.double.relay.remote(p.source.count.remote(N)));
    let mut expected = 0;
    while let Some(item) = out.next().await {
        assert_eq!(item.unwrap(), expected * 2 + 1);
        expected += 1;
    }
    assert_eq!(expected, N);
    assert_eq!(p.produced.get(), N as usize);
}

#[tokio::test]
async fn items_flow_through_every_stage_as_they_are_produced() {
    let p = Pipeline::start().await;
    let mut out = p
        .plus_one
        .relay
        .remote(p.double.relay.remote(p.source.paced.remote()));
    // The first item crosses all three stages while the source still waits before its second.
    let first = tokio::time::timeout(PATIENCE, out.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), 1);
    assert!(!p.step.is_open());
    p.step.open();
    for i in 1..=10u64 {
        assert_eq!(out.next().await.unwrap().unwrap(), i * 2 + 1);
    }
}

#[tokio::test]
async fn a_slow_final_consumer_holds_back_the_first_stage() {
    // What one hop between two stages may hold (streaming.md, "Flow control and batching"): the
    // channel's messages of up to BATCH_MAX items, the batch its producer collects while the
    // channel is full, and the batch its consumer took out of the channel.
    const PER_HOP: usize = (STREAM_BUFFER + 2) * BATCH_MAX;
    // Three hops (source -> double -> plus_one -> this test), and an item in hand per stage.
    const BOUND: usize = 3 * PER_HOP + 3;
    const N: u64 = 20_000;
    let p = Pipeline::start().await;
    let mut out = p
        .plus_one
        .relay
        .remote(p.double.relay.remote(p.source.count.remote(N)));
    let mut consumed = 0usize;
    let mut most_ahead = 0;
    while let Some(item) = out.next().await {
        item.unwrap();
        consumed += 1;
        if consumed % 2_000 == 1 {
            // Pause: with nothing holding it back, the source would now run to the end. It has
            // until the deadline to run past the bound; a bounded pipeline stops well before.
            let deadline = Instant::now() + Duration::from_millis(200);
            while p.produced.get() - consumed <= BOUND && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let ahead = p.produced.get() - consumed;
        most_ahead = most_ahead.max(ahead);
        assert!(
            ahead <= BOUND,
            "the source ran {ahead} items ahead of the consumer (bound {BOUND})"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(consumed, N as usize);
    eprintln!("the source ran at most {most_ahead} items ahead (bound {BOUND})");
    // Not vacuous: the stages did run ahead of the consumer, filling their buffers.
    assert!(
        most_ahead >= 3 * STREAM_BUFFER,
        "the source never ran ahead ({most_ahead})"
    );
}

// --- errors ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upstream_error_is_the_last_item_of_the_input_as_the_upstream_gave_it() {
    let p = Pipeline::start().await;
    let (items, err) = p
        .double
        .inspect
        .remote(p.source.faulty.remote(3))
        .await
        .unwrap();
    assert_eq!(items, vec![0, 1, 2]);
    let (deployment, method, kind, message) = err.expect("an error item");
    assert_eq!((deployment.as_str(), method.as_str()), ("Source", "faulty"));
    assert_eq!(kind, "User");
    assert!(message.contains("sensor 3 failed"), "{message}");
}

#[tokio::test]
async fn an_error_passed_on_with_question_mark_reaches_the_end_naming_every_stage() {
    let p = Pipeline::start().await;
    let out: Vec<_> = p
        .plus_one
        .relay
        .remote(p.double.relay.remote(p.source.faulty.remote(3)))
        .collect()
        .await;
    let err = faulty_pipeline_error(&out);
    expect_named_every_stage(err);
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

/// What `PlusOne::relay(Relay::relay(Source::faulty(3)))` yields (the relay doubling): three
/// items, then an error, which it returns.
fn faulty_pipeline_error(out: &[Result<u64, ServeError>]) -> &ServeError {
    assert_eq!(out.len(), 4, "three items, then the error: {out:?}");
    for (i, item) in out.iter().take(3).enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u64 * 2 + 1);
    }
    out[3].as_ref().unwrap_err()
}

/// `PlusOne::relay`'s error of that pipeline, naming the stages that passed it on.
fn expect_named_every_stage(err: &ServeError) {
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(
        (err.deployment(), err.method()),
        (Some("PlusOne"), Some("relay"))
    );
    assert!(
        err.to_string()
            .contains("Relay.relay failed: Source.faulty failed: sensor 3 failed"),
        "{err}"
    );
}

// --- cancellation ---------------------------------------------------------------------------------

#[tokio::test]
async fn dropping_the_final_generator_cancels_every_stage() {
    let p = Pipeline::start().await;
    p.step.open();
    let mut out = p
        .plus_one
        .relay
        .remote(p.double.relay.remote(p.source.paced.remote()));
    for i in 0..5u64 {
        assert_eq!(out.next().await.unwrap().unwrap(), i * 2 + 1);
    }
    assert!(p.dropped.iter().all(|d| !d.is_open()), "every stage runs");
    drop(out);
    p.dropped[2]
        .expect_open("the last stage's stream was dropped")
        .await;
    p.dropped[1]
        .expect_open("the middle stage's stream was dropped")
        .await;
    p.dropped[0]
        .expect_open("the first stage's stream was dropped")
        .await;
}

#[tokio::test]
async fn cancelling_a_unary_call_that_reads_a_stream_stops_the_stream() {
    let p = Pipeline::start().await;
    p.step.open();
    let total = p.double.sum.remote(p.source.paced.remote());
    // The source runs (its input never ends), then the call is cancelled.
    while p.produced.get() < 1_000 {
        tokio::task::yield_now().await;
    }
    total.cancel();
    p.dropped[1]
        .expect_open("the summing method was dropped")
        .await;
    p.dropped[0]
        .expect_open("the source stream was dropped")
        .await;
    assert_eq!(total.await.unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn a_call_that_is_refused_drops_its_stream_argument_at_once() {
    let serve = Serve::start().unwrap();
    let summer = run_with(&serve, Relay::bind(1, 0, Gate::new()), |c| {
        c.max_ongoing_requests(1).max_queued_requests(1)
    });
    // One call runs (its input never ends), one waits: the queue is full.
    let running = summer.sum.remote(futures::stream::pending::<u64>());
    let queued = summer.sum.remote(futures::stream::pending::<u64>());
    let dropped = Gate::new();
    let guard = OpenOnDrop(dropped.clone());
    let input = futures::stream::iter(0..10u64).map(move |x| {
        let _held = &guard;
        x
    });
    let refused = summer.sum.remote(input);
    assert!(dropped.is_open(), "the refused call's stream was dropped");
    assert_eq!(
        refused.result().unwrap_err().kind(),
        ErrorKind::BackPressure
    );
    running.cancel();
    queued.cancel();
}

// --- any stream, and unary methods ------------------------------------------------------------------

#[tokio::test]
async fn any_stream_can_be_the_argument() {
    let p = Pipeline::start().await;
    let out: Vec<u64> = p
        .double
        .relay
        .remote(futures::stream::iter(0..5u64))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(out, vec![0, 2, 4, 6, 8]);
    // A stream of results: its error reaches the method as an error item.
    let with_error = futures::stream::iter([
        Ok(1u64),
        Err(p.source.faulty.remote(0).next().await.unwrap().unwrap_err()),
    ]);
    let (items, err) = p.double.inspect.remote(with_error).await.unwrap();
    assert_eq!(items, vec![1]);
    assert_eq!(err.unwrap().0, "Source");
}

#[test]
fn a_unary_method_sums_a_stream_from_sync_code() {
    let serve = Serve::start().unwrap();
    let summer = serve
        .run_with(Relay::bind(1, 0, Gate::new()), named("summer"))
        .unwrap();
    let source = serve
        .run_with(
            Source::bind(Counter::new(), Gate::new(), Gate::new()),
            named("source"),
        )
        .unwrap();
    assert_eq!(
        summer
            .sum
            .remote(source.count.remote(101))
            .result()
            .unwrap(),
        5050
    );
    assert_eq!(
        summer
            .sum
            .remote(futures::stream::iter(vec![1u64, 2, 3]))
            .result()
            .unwrap(),
        6
    );
    // An upstream error fails the sum with it.
    let err = summer
        .sum
        .remote(source.faulty.remote(2))
        .result()
        .unwrap_err();
    assert!(err.to_string().contains("sensor 2 failed"), "{err}");
}

// --- cluster mode: stream arguments cross processes ------------------------------------------------

/// Leaves a mark file (what a deployment in a worker process tells a test).
fn mark(path: &Path, text: &str) {
    std::fs::write(path, text).expect("a mark file");
}

/// Leaves a mark file when dropped.
struct MarkOnDrop(PathBuf);

impl Drop for MarkOnDrop {
    fn drop(&mut self) {
        mark(&self.0, "");
    }
}

/// A fresh directory for the marks of one test.
struct Marks(PathBuf);

impl Marks {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("serve-stream-args-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Marks(dir)
    }

    fn dir(&self) -> String {
        self.0.display().to_string()
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(name)).ok()
    }

    /// Waits (polling, up to [`PATIENCE`]) for the mark `name`.
    async fn expect(&self, name: &str, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(text) = self.read(name) {
                return text;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ingress, on the head; every stage it calls runs on the worker, so each stream argument
/// it passes crosses to another process.
#[deployment]
pub struct Front {
    source: DeploymentHandle<Source>,
    double: DeploymentHandle<Relay>,
    plus_one: DeploymentHandle<PlusOne>,
}

#[deployment]
impl Front {
    pub fn new(
        source: DeploymentHandle<Source>,
        double: DeploymentHandle<Relay>,
        plus_one: DeploymentHandle<PlusOne>,
    ) -> Self {
        Self {
            source,
            double,
            plus_one,
        }
    }

    /// `detok(model(tok(n)))`: three streaming stages, each on the worker.
    pub fn pipeline(&self, n: u64) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        self.plus_one
            .relay
            .remote(self.double.relay.remote(self.source.count.remote(n)))
    }

    /// The same with a source that fails at `fail_at`.
    pub fn faulty_pipeline(
        &self,
        fail_at: u64,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        self.plus_one
            .relay
            .remote(self.double.relay.remote(self.source.faulty.remote(fail_at)))
    }

    /// The caller's stream through two stages on the worker.
    pub fn relay(
        &self,
        xs: ArgStream<u64>,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        self.plus_one.relay.remote(self.double.relay.remote(xs))
    }

    /// The caller's stream, summed on the worker.
    pub async fn sum(&self, xs: ArgStream<u64>) -> Result<u64, ServeError> {
        self.double.sum.remote(xs).await
    }

    /// The caller's stream's first `n` items, taken on the worker.
    pub async fn first(&self, xs: ArgStream<u64>, n: usize) -> Result<Vec<u64>, ServeError> {
        self.double.first.remote(xs, n).await
    }

    /// What the worker's stage saw of a source (on the worker too) failing at `fail_at`.
    pub async fn inspect(
        &self,
        fail_at: u64,
    ) -> Result<(Vec<u64>, Option<(String, String, String, String)>), ServeError> {
        self.double
            .inspect
            .remote(self.source.faulty.remote(fail_at))
            .await
    }

    /// What the worker's stage saw of the caller's stream.
    pub async fn inspect_stream(
        &self,
        xs: ArgStream<u64>,
    ) -> Result<(Vec<u64>, Option<(String, String, String, String)>), ServeError> {
        self.double.inspect.remote(xs).await
    }
}

fn front_app() -> Application<Front> {
    Front::bind(
        Source::bind(Counter::new(), Gate::new(), Gate::new()),
        Relay::bind(2, 0, Gate::new()),
        PlusOne::bind(Gate::new()),
    )
}

/// Passes its input stream on to `Relay::watch`. With no CPU on the head and one on each of two
/// workers, `Relay` goes to the first worker and this to the second, which then lends the stream
/// it pulls from the caller to the first.
#[deployment]
pub struct Hop {
    next: DeploymentHandle<Relay>,
}

#[deployment]
impl Hop {
    pub fn new(next: DeploymentHandle<Relay>) -> Self {
        Self { next }
    }

    pub fn watch(
        &self,
        xs: ArgStream<u64>,
        marks: String,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        self.next.watch.remote(xs, marks)
    }
}

fn hop_app() -> Application<Hop> {
    Hop::bind(Relay::bind(1, 0, Gate::new()))
}

/// A head offering no CPU (every replica goes to a worker) and workers of [`hop_app`] offering
/// `cpus` each, joined in the order given; `placed` says where each deployment must run.
fn hop_cluster(
    nats: &NatsServer,
    name: &str,
    (workers, cpus): (&[&str], f64),
    placed: &[(&str, &str)],
) -> (Serve, DeploymentHandle<Hop>, Vec<WorkerProcess>) {
    let serve = Serve::builder()
        .num_cpus(0.0)
        .cluster(test_cluster(&nats.url(), name))
        .start()
        .unwrap();
    let workers: Vec<_> = workers
        .iter()
        .map(|node| {
            WorkerProcess::start(WorkerSpec::new("hop", &nats.url(), name, node).num_cpus(cpus))
        })
        .collect();
    serve.wait_for_workers(workers.len(), PATIENCE).unwrap();
    let hop = serve.run(hop_app()).unwrap();
    expect_placed(&serve, placed);
    (serve, hop, workers)
}

/// Fails unless each deployment runs one replica, on its node.
fn expect_placed(serve: &Serve, placed: &[(&str, &str)]) {
    for (deployment, node) in placed {
        let nodes: Vec<_> = deployment_status(serve, deployment)
            .replicas
            .into_iter()
            .map(|r| r.node)
            .collect();
        assert_eq!(nodes, [Some((*node).to_owned())], "{deployment}");
    }
}

#[test]
#[ignore = "the worker processes of the cluster-mode tests"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "front" => run_worker(front_app(), &env),
        "hop" => run_worker(hop_app(), &env),
        other => panic!("no application `{other}`"),
    }
}

/// A head with one worker running every deployment of [`front_app`] but the ingress.
struct FrontCluster {
    front: DeploymentHandle<Front>,
    serve: Serve,
    _worker: WorkerProcess,
    _nats: NatsServer,
}

impl FrontCluster {
    fn start(name: &str) -> Self {
        let nats = NatsServer::start();
        let serve = Serve::builder()
            .cluster(test_cluster(&nats.url(), name))
            .start()
            .unwrap();
        let worker =
            WorkerProcess::start(WorkerSpec::new("front", &nats.url(), name, "w1").num_cpus(8.0));
        serve.wait_for_workers(1, PATIENCE).unwrap();
        let front = serve.run(front_app()).unwrap();
        expect_placed(
            &serve,
            &[
                ("Front", "head"),
                ("Source", "w1"),
                ("Relay", "w1"),
                ("PlusOne", "w1"),
            ],
        );
        Self {
            front,
            serve,
            _worker: worker,
            _nats: nats,
        }
    }
}

impl Drop for FrontCluster {
    fn drop(&mut self) {
        self.serve.shutdown();
    }
}

/// `0, 1, 2, ..` without end, counting each item produced; opens `dropped` when dropped.
fn counting(produced: &Counter, dropped: &Gate) -> impl Stream<Item = u64> + Send + 'static {
    let (produced, guard) = (produced.clone(), OpenOnDrop(dropped.clone()));
    futures::stream::iter(0..).map(move |i| {
        let _held = &guard;
        produced.incr();
        i
    })
}

/// The `ServeError` an ingress's error item carries (its stream wraps what it passes on).
fn cause(err: &ServeError) -> &ServeError {
    err.downcast_ref::<ServeError>().unwrap_or(err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_stage_pipeline_on_a_worker_passes_20_000_items_in_order() {
    const N: u64 = 20_000;
    let c = FrontCluster::start("stream-args-pipeline");
    // Source -> Relay -> PlusOne, all on the worker: each stream crosses to the head and back.
    let mut out = c.front.pipeline.remote(N);
    let mut expected = 0;
    while let Some(item) = out.next().await {
        assert_eq!(item.unwrap(), expected * 2 + 1);
        expected += 1;
    }
    assert_eq!(expected, N);

    // A stream of this process into the same two stages, and a unary method summing one.
    let started = Instant::now();
    let mut out = c.front.relay.remote(futures::stream::iter(0..N));
    let mut expected = 0;
    while let Some(item) = out.next().await {
        assert_eq!(item.unwrap(), expected * 2 + 1);
        expected += 1;
    }
    assert_eq!(expected, N);
    eprintln!(
        "{N} items of a local stream through two stages on a worker: {:.0} items/s",
        N as f64 / started.elapsed().as_secs_f64()
    );
    let total = c
        .front
        .sum
        .remote(futures::stream::iter(0..N))
        .await
        .unwrap();
    assert_eq!(total, (N - 1) * N / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_holds_back_a_stream_that_crosses_to_a_worker() {
    // What one hop in a process may hold (see the local test above), and what a stream may have in
    // flight between processes: a window (credit is given as the consumer takes items).
    const PER_HOP: usize = (STREAM_BUFFER + 2) * BATCH_MAX;
    const WINDOW: usize = STREAM_WINDOW as usize;
    // A stage on the worker fed by a stream of the head: the argument's window, an item in hand,
    // its generator on the worker, an item being sent, the reply's window, the generator on the
    // head, and an item in the hand of whatever passes it on.
    const REMOTE_STAGE: usize = 2 * WINDOW + 2 * PER_HOP + 3;
    // This stream -> Relay (worker) -> PlusOne (worker) -> Front (head) -> this test.
    const BOUND: usize = 2 * REMOTE_STAGE + PER_HOP + 2;
    const N: usize = 20_000;
    let c = FrontCluster::start("stream-args-bound");
    let (produced, dropped) = (Counter::new(), Gate::new());
    let mut out = c.front.relay.remote(counting(&produced, &dropped));
    let mut consumed = 0usize;
    let mut most_ahead = 0;
    while consumed < N {
        out.next().await.unwrap().unwrap();
        consumed += 1;
        if consumed % 2_000 == 1 {
            // Pause: unchecked, the source would now run on without end. It has until the
            // deadline to run past the bound; a bounded pipeline stops well before.
            let deadline = Instant::now() + Duration::from_millis(300);
            while produced.get() - consumed <= BOUND && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let ahead = produced.get() - consumed;
        most_ahead = most_ahead.max(ahead);
        assert!(
            ahead <= BOUND,
            "the source ran {ahead} items ahead of the consumer (bound {BOUND})"
        );
    }
    eprintln!("the source ran at most {most_ahead} items ahead (bound {BOUND})");
    // Not vacuous: the items in flight filled more than the windows between the processes.
    assert!(
        most_ahead > 4 * WINDOW,
        "the source never ran ahead ({most_ahead})"
    );
    drop(out);
    dropped.expect_open("the source was dropped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_reaches_a_method_on_a_worker_as_the_same_item() {
    let c = FrontCluster::start("stream-args-errors");
    // The same error item as in one process (the local test above).
    let (items, err) = c.front.inspect.remote(3).await.unwrap();
    assert_eq!(items, vec![0, 1, 2]);
    let (deployment, method, kind, message) = err.expect("an error item");
    assert_eq!((deployment.as_str(), method.as_str()), ("Source", "faulty"));
    assert_eq!(kind, "User");
    assert!(message.contains("sensor 3 failed"), "{message}");

    // Passed on with `?` through two stages on the worker, then by the ingress.
    let out: Vec<_> = c.front.faulty_pipeline.remote(3).collect().await;
    expect_named_every_stage(cause(faulty_pipeline_error(&out)));

    // An error item of a stream of this process reaches the worker's method as it was.
    let upstream = c
        .front
        .faulty_pipeline
        .remote(0)
        .next()
        .await
        .unwrap()
        .unwrap_err();
    let failing = futures::stream::iter([Ok(7u64), Err(upstream.clone())]);
    let (items, err) = c.front.inspect_stream.remote(failing).await.unwrap();
    assert_eq!(items, vec![7]);
    let (deployment, method, kind, message) = err.expect("an error item");
    assert_eq!(
        (Some(deployment.as_str()), Some(method.as_str())),
        (upstream.deployment(), upstream.method())
    );
    assert_eq!(kind, format!("{:?}", upstream.kind()));
    assert_eq!(message, upstream.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_caller_stops_the_method_on_the_worker_and_drops_the_source() {
    let nats = NatsServer::start();
    // This stream -> Hop (w1) -> Relay::watch (w1).
    let placed = [("Hop", "w1"), ("Relay", "w1")];
    let (serve, hop, _workers) = hop_cluster(&nats, "stream-args-cancel", (&["w1"], 8.0), &placed);
    let marks = Marks::new("cancel");
    let (produced, dropped) = (Counter::new(), Gate::new());
    let mut out = hop.watch.remote(counting(&produced, &dropped), marks.dir());
    for i in 0..5u64 {
        assert_eq!(out.next().await.unwrap().unwrap(), i);
    }
    assert!(marks.read("dropped").is_none(), "the method runs");
    assert!(!dropped.is_open());
    drop(out);
    marks
        .expect("dropped", "the method on the worker was dropped")
        .await;
    dropped.expect_open("the source was dropped").await;
    assert!(
        marks.read("error").is_none(),
        "the stream was cut, not failed"
    );
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_unary_call_on_a_worker_drops_the_stream_it_reads() {
    let c = FrontCluster::start("stream-args-cancel-unary");
    let (produced, dropped) = (Counter::new(), Gate::new());
    let total = c.front.sum.remote(counting(&produced, &dropped));
    let deadline = Instant::now() + PATIENCE;
    while produced.get() < 1_000 {
        assert!(Instant::now() < deadline, "the sum never read its stream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    total.cancel();
    dropped.expect_open("the summed stream was dropped").await;
    assert_eq!(total.await.unwrap_err().kind(), ErrorKind::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_on_a_worker_that_stops_reading_drops_the_source() {
    let c = FrontCluster::start("stream-args-first");
    let (produced, dropped) = (Counter::new(), Gate::new());
    let first = c
        .front
        .first
        .remote(counting(&produced, &dropped), 10)
        .await
        .unwrap();
    assert_eq!(first, (0..10).collect::<Vec<u64>>());
    // The method returned: its stream is dropped where it was lent, having run a window ahead
    // at most (the method took 10; the caller sent up to a window more).
    dropped.expect_open("the source was dropped").await;
    let produced = produced.get();
    assert!(
        produced <= 10 + STREAM_WINDOW as usize + 1,
        "the source ran {produced} items"
    );
    // A stream that ends ends on the worker too.
    let short = c.front.first.remote(futures::stream::iter(0..3u64), 10);
    assert_eq!(short.await.unwrap(), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_ends_the_streams_it_read_with_unavailable() {
    let nats = NatsServer::start();
    // This stream -> Hop (w2, pulls it from this process) -> Relay::watch (w1, pulls it from w2).
    let placed = [("Relay", "w1"), ("Hop", "w2")];
    let (serve, hop, mut workers) =
        hop_cluster(&nats, "stream-args-dead", (&["w1", "w2"], 1.0), &placed);
    let marks = Marks::new("dead");
    let (produced, dropped) = (Counter::new(), Gate::new());
    let mut out = hop.watch.remote(counting(&produced, &dropped), marks.dir());
    for i in 0..5u64 {
        assert_eq!(out.next().await.unwrap().unwrap(), i);
    }
    workers[1].kill();
    // The call to w2 fails when w2 is declared dead, as any call does, ...
    let err = loop {
        let item = tokio::time::timeout(PATIENCE, out.next())
            .await
            .expect("the stream ends")
            .expect("with an error");
        if let Err(e) = item {
            break e;
        }
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(out.next().await.is_none());
    // ... this process drops the stream it lent w2, ...
    dropped.expect_open("the source was dropped").await;
    // ... and on w1 the stream pulled from w2 ends: the method is dropped (cancelled, since
    // its caller is gone), having read `Unavailable` if it got to read again first.
    marks
        .expect("dropped", "the method on w1 was dropped")
        .await;
    let read = marks.read("error");
    eprintln!("the method on w1 read an error of kind {read:?} before it was dropped");
    if let Some(kind) = read {
        assert_eq!(kind, "Unavailable");
    }
    serve.shutdown();
}
