//! Stream arguments (issue 11): a method parameter of type `ArgStream<T>` takes another call's
//! generator, or any stream, so streaming stages compose into pipelines that run concurrently,
//! with back pressure end to end, errors as items and cancellation through every stage.

use std::time::{Duration, Instant};

use serve_core::__private::{BATCH_MAX, STREAM_BUFFER};
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
    assert_eq!(out.len(), 4, "three items, then the error: {out:?}");
    for (i, item) in out.iter().take(3).enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u64 * 2 + 1);
    }
    let err = out[3].as_ref().unwrap_err();
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
    assert!(err.downcast_ref::<std::io::Error>().is_some());
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

// --- cluster mode ----------------------------------------------------------------------------------

/// An ingress (on the head) that passes a stream to a deployment on a worker.
#[deployment]
pub struct Front {
    relay: DeploymentHandle<Relay>,
}

#[deployment]
impl Front {
    pub fn new(relay: DeploymentHandle<Relay>) -> Self {
        Self { relay }
    }

    pub fn call(&self, n: u64) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        self.relay.relay.remote(futures::stream::iter(0..n))
    }
}

fn front_app() -> Application<Front> {
    Front::bind(Relay::bind(2, 0, Gate::new()))
}

#[test]
#[ignore = "the worker process of the cluster-mode test"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    run_worker(front_app(), &env);
}

#[test]
fn a_stream_argument_to_a_replica_in_another_process_fails_with_a_clear_error() {
    let nats = NatsServer::start();
    let serve = Serve::builder()
        .cluster(test_cluster(&nats.url(), "stream_args"))
        .start()
        .unwrap();
    let _worker = WorkerProcess::start(
        WorkerSpec::new("front", &nats.url(), "stream_args", "w1").num_cpus(8.0),
    );
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let handle = serve.run(front_app()).unwrap();
    let relay_nodes: Vec<_> = deployment_status(&serve, "Relay")
        .replicas
        .into_iter()
        .map(|r| r.node)
        .collect();
    assert_eq!(relay_nodes, [Some("w1".to_owned())]);

    let items: Vec<_> = handle.remote(3).into_iter().collect();
    assert_eq!(items.len(), 1, "{items:?}");
    let err = items[0].as_ref().unwrap_err();
    let cause = err
        .downcast_ref::<ServeError>()
        .unwrap_or_else(|| panic!("no downstream error in {err:?}"));
    assert_eq!(cause.kind(), ErrorKind::Wire);
    assert_eq!(
        (cause.deployment(), cause.method()),
        (Some("Relay"), Some("relay"))
    );
    assert!(
        cause.to_string().contains(
            "stream arguments (`ArgStream`) cannot cross to a replica in another process yet"
        ),
        "{cause}"
    );
    serve.shutdown();
}
