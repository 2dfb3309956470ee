//! Streaming methods and `DeploymentResponseGenerator` (issue point 6).

use serve_core::prelude::*;
use serve_test_support::{Gate, OpenOnDrop, PATIENCE, named};

// --- the seed's stream program ----------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Streamer;

#[deployment]
impl Streamer {
    pub fn call(&self, limit: u32) -> impl Stream<Item = u32> + Send + use<> {
        futures::stream::iter(0..limit)
    }
}

#[deployment]
pub struct Caller {
    streamer: DeploymentHandle<Streamer>,
}

#[deployment]
impl Caller {
    pub fn new(streamer: DeploymentHandle<Streamer>) -> Self {
        Self { streamer }
    }
    pub fn call(&self, limit: u32) -> impl Stream<Item = Result<u32, ServeError>> + Send + '_ {
        try_stream! {
            let mut items = self.streamer.remote(limit);
            while let Some(i) = items.next().await {
                yield i?;
            }
        }
    }
}

#[test]
fn seed_stream_program_gives_0_to_10_from_sync_code() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Caller::bind(Streamer::bind())).unwrap();
    let items: Result<Vec<u32>, ServeError> = handle.remote(10).into_iter().collect();
    assert_eq!(items.unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_generator_is_a_stream_in_async_code() {
    let serve = Serve::start().unwrap();
    let handle = serve
        .run_async(Caller::bind(Streamer::bind()))
        .await
        .unwrap();
    let items: Vec<u32> = handle.remote(5).map(|item| item.unwrap()).collect().await;
    assert_eq!(items, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn iterating_on_an_async_thread_yields_an_error_instead_of_blocking() {
    let serve = Serve::start().unwrap();
    let handle = serve.run_async(Streamer::bind()).await.unwrap();
    let mut items = handle.remote(3).into_iter();
    assert_eq!(
        items.next().unwrap().unwrap_err().kind(),
        ErrorKind::BlockingInAsync
    );
    assert!(items.next().is_none());
}

// --- items arrive as produced, errors, and early drop ------------------------------------------

#[deployment]
pub struct Paced {
    step: Gate,
    dropped: Gate,
}

#[deployment]
impl Paced {
    pub fn new(step: Gate, dropped: Gate) -> Self {
        Self { step, dropped }
    }

    /// Yields 0, then waits for the gate before yielding 1; never ends on its own after that.
    pub fn call(&self) -> impl Stream<Item = u64> + Send + '_ {
        stream! {
            let _guard = OpenOnDrop(self.dropped.clone());
            yield 0;
            self.step.wait().await;
            let mut i = 1;
            loop {
                yield i;
                i += 1;
                tokio::task::yield_now().await;
            }
        }
    }

    pub fn faulty(
        &self,
        fail_at: u32,
    ) -> impl Stream<Item = Result<u32, std::io::Error>> + Send + use<> {
        futures::stream::iter((0..10).map(move |i| {
            if i == fail_at {
                Err(std::io::Error::other(format!("sensor {i} failed")))
            } else {
                Ok(i)
            }
        }))
    }

    pub async fn awaited(&self, n: u32) -> impl Stream<Item = u32> + Send + use<> {
        tokio::task::yield_now().await;
        futures::stream::iter(0..n)
    }

    pub fn panics(&self) -> impl Stream<Item = u32> + Send + use<> {
        stream! {
            yield 1;
            panic!("stream broke");
        }
    }
}

#[tokio::test]
async fn items_arrive_as_they_are_produced_and_dropping_stops_the_producer() {
    let serve = Serve::start().unwrap();
    let (step, dropped) = (Gate::new(), Gate::new());
    let handle = serve
        .run_async(Paced::bind(step.clone(), dropped.clone()))
        .await
        .unwrap();
    let mut items = handle.remote();
    // The first item arrives while the producer is still blocked before the second.
    let first = tokio::time::timeout(PATIENCE, items.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), 0);
    assert!(!step.is_open());
    step.open();
    for expected in 1..=3 {
        assert_eq!(items.next().await.unwrap().unwrap(), expected);
    }
    assert!(!dropped.is_open(), "the producer is still running");
    drop(items);
    dropped.expect_open("the producer stream was dropped").await;
}

#[test]
fn an_error_mid_stream_arrives_after_the_items_before_it_and_ends_the_stream() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Paced::bind(Gate::new(), Gate::new())).unwrap();
    let items: Vec<Result<u32, ServeError>> = handle.faulty.remote(3).into_iter().collect();
    assert_eq!(items.len(), 4, "{items:?}");
    for (i, item) in items.iter().take(3).enumerate() {
        assert_eq!(*item.as_ref().unwrap(), i as u32);
    }
    let err = items[3].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(err.method(), Some("faulty"));
    assert!(err.to_string().contains("sensor 3 failed"), "{err}");
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

#[test]
fn async_streaming_methods_and_panics_in_streams() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Paced::bind(Gate::new(), Gate::new())).unwrap();
    let items: Result<Vec<u32>, _> = handle.awaited.remote(4).into_iter().collect();
    assert_eq!(items.unwrap(), vec![0, 1, 2, 3]);

    let items: Vec<_> = handle.panics.remote().into_iter().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(*items[0].as_ref().unwrap(), 1);
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.to_string().contains("stream broke"), "{err}");
    // The replica still serves.
    assert_eq!(handle.faulty.remote(99).into_iter().count(), 10);
}

#[deployment]
#[derive(Default)]
pub struct Source;

#[deployment]
impl Source {
    pub fn fail(&self) -> Result<u32, std::io::Error> {
        Err(std::io::Error::other("no input"))
    }
}

#[test]
fn a_failed_argument_ends_a_stream_with_an_upstream_error() {
    let serve = Serve::start().unwrap();
    let source = serve.run_with(Source::bind(), named("source")).unwrap();
    let streamer = serve.run_with(Streamer::bind(), named("streamer")).unwrap();
    let items: Vec<_> = streamer.remote(source.fail.remote()).into_iter().collect();
    assert_eq!(items.len(), 1);
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert!(err.to_string().contains("Source.fail"), "{err}");
}

// --- a stream cut short cancels the calls its method made ---------------------------------------

/// Opens its gate if dropped before `finished` is set.
struct DroppedEarly(Gate, bool);

impl Drop for DroppedEarly {
    fn drop(&mut self) {
        if !self.1 {
            self.0.open();
        }
    }
}

/// A slow unary model: opens `entered` when a call starts, waits for `release`, then opens
/// `done`; opens `dropped` if its future is dropped before that (it was cancelled).
#[derive(Clone, Default)]
pub struct ModelGates {
    entered: Gate,
    release: Gate,
    done: Gate,
    dropped: Gate,
}

#[deployment]
pub struct SlowModel {
    gates: ModelGates,
}

#[deployment]
impl SlowModel {
    pub fn new(gates: ModelGates) -> Self {
        Self { gates }
    }

    pub async fn predict(&self, x: u32) -> u32 {
        let mut early = DroppedEarly(self.gates.dropped.clone(), false);
        self.gates.entered.open();
        self.gates.release.wait().await;
        early.1 = true;
        self.gates.done.open();
        x
    }
}

/// Starts a `SlowModel` call it does not await (fire and forget), then yields items until told.
#[deployment]
pub struct Fanout {
    model: DeploymentHandle<SlowModel>,
}

#[deployment]
impl Fanout {
    pub fn new(model: DeploymentHandle<SlowModel>) -> Self {
        Self { model }
    }

    /// Starts `model.predict(7)` in the background, then yields `0..n`.
    pub fn call(&self, n: u32) -> impl Stream<Item = u32> + Send + '_ {
        stream! {
            let _running: DeploymentResponse<u32> = self.model.predict.remote(7);
            for i in 0..n {
                yield i;
                tokio::task::yield_now().await;
            }
        }
    }
}

fn fanout(serve: &Serve) -> (DeploymentHandle<Fanout>, ModelGates) {
    let gates = ModelGates::default();
    let handle = serve
        .run(Fanout::bind(SlowModel::bind(gates.clone())))
        .unwrap();
    (handle, gates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_generator_cancels_the_calls_its_streaming_method_made() {
    let serve = Serve::start().unwrap();
    let (handle, gates) = fanout(&serve);
    let mut items = handle.remote(u32::MAX);
    assert_eq!(items.next().await.unwrap().unwrap(), 0);
    gates.entered.expect_open("the model call started").await;
    drop(items);
    gates
        .dropped
        .expect_open("the model call was cancelled with the stream")
        .await;
    assert!(!gates.done.is_open());
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_leaves_the_calls_its_method_made_running() {
    let serve = Serve::start().unwrap();
    let (handle, gates) = fanout(&serve);
    let items: Vec<u32> = handle.remote(3).map(|item| item.unwrap()).collect().await;
    assert_eq!(items, [0, 1, 2]);
    gates.entered.expect_open("the model call started").await;
    // The stream ended whole: its call runs on to its end.
    gates.release.open();
    gates
        .done
        .expect_open("the model call ran to its end")
        .await;
    assert!(!gates.dropped.is_open(), "the model call was cancelled");
    serve.shutdown();
}
