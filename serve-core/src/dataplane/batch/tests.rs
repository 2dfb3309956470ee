//! The batcher on its own: a replica's state and scope made by hand, no serve instance.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::request::context::{Assignment, ReplicaInfo};

/// A model that records each batch and doubles its items; 99 makes its result one short.
#[derive(Default)]
struct Model {
    batches: Mutex<Vec<Vec<u32>>>,
}

impl Model {
    fn double(&self, xs: Vec<u32>) -> Result<Vec<u32>, BoxError> {
        self.batches.lock().unwrap().push(xs.clone());
        let mut out: Vec<u32> = xs.iter().map(|x| 2 * x).collect();
        if xs.contains(&99) {
            out.pop();
        }
        Ok(out)
    }
}

fn replica() -> Arc<ReplicaInfo> {
    Arc::new(ReplicaInfo::new(
        "App".into(),
        "Model".into(),
        0,
        Assignment::none(),
    ))
}

/// The method's identity (a fn item, like the generated code's `Model::double`).
fn method(this: &Model, xs: Vec<u32>) -> Result<Vec<u32>, BoxError> {
    this.double(xs)
}

const SYNC: BatchFn<Model, u32, u32> = BatchFn::Sync(method);

fn run_async(this: Arc<Model>, xs: Vec<u32>) -> BatchFuture<u32> {
    Box::pin(async move { this.double(xs) })
}

const ASYNC: BatchFn<Model, u32, u32> = BatchFn::Async(run_async);

/// Calls `call_batched` for each item at once, on `replica`, and returns the results in order.
async fn call_all(
    replica: &Arc<ReplicaInfo>,
    spec: &'static BatchSpec,
    run: BatchFn<Model, u32, u32>,
    this: &Arc<Model>,
    items: impl IntoIterator<Item = u32>,
) -> Vec<Result<u32, String>> {
    let calls = items.into_iter().map(|x| {
        let (replica, this) = (replica.clone(), this.clone());
        tokio::spawn(context::on_replica(replica, async move {
            call_batched(method, spec, run, this, x)
                .await
                .map_err(|e| e.to_string())
        }))
    });
    let mut out = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_items_form_batches_and_each_gets_its_own_result() {
    static SPEC: BatchSpec = BatchSpec::new("double", 4, 30.0, 1);
    for run in [SYNC, ASYNC] {
        let (replica, model) = (replica(), Arc::new(Model::default()));
        // A long wait: every batch goes because it is full.
        let results = call_all(&replica, &SPEC, run, &model, 0..16).await;
        assert_eq!(results, (0..16).map(|x| Ok(2 * x)).collect::<Vec<_>>());
        let batches = model.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 4, "{batches:?}");
        assert!(batches.iter().all(|b| b.len() == 4), "{batches:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_item_waits_for_the_timeout_then_goes_alone() {
    static SPEC: BatchSpec = BatchSpec::new("double", 4, 0.05, 1);
    let (replica, model) = (replica(), Arc::new(Model::default()));
    let start = Instant::now();
    assert_eq!(call_all(&replica, &SPEC, SYNC, &model, [3]).await, [Ok(6)]);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(49), "{took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_of_the_wrong_length_fails_the_whole_batch() {
    static SPEC: BatchSpec = BatchSpec::new("double", 2, 30.0, 1);
    let (replica, model) = (replica(), Arc::new(Model::default()));
    let results = call_all(&replica, &SPEC, SYNC, &model, [99, 1]).await;
    let message = "the batched method `Model.double` returned 1 result(s) for a batch of 2 item(s): it must return one result per item, in order";
    assert_eq!(results, [Err(message.to_owned()), Err(message.to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_the_next_batches_and_refuse_bad_values() {
    static SPEC: BatchSpec = BatchSpec::new("double", 4, 30.0, 1);
    let (replica, model) = (replica(), Arc::new(Model::default()));
    let batching = context::on_replica(replica.clone(), async {
        declare_batch(method, &SPEC);
        batching(method).unwrap()
    })
    .await;
    assert_eq!(batching.max_batch_size(), 4);
    batching.set_max_batch_size(2).unwrap();
    let results = call_all(&replica, &SPEC, SYNC, &model, 0..6).await;
    assert_eq!(results.len(), 6);
    assert!(model.batches.lock().unwrap().iter().all(|b| b.len() == 2));

    let e = batching.set_max_batch_size(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string()
            .contains("`max_batch_size` must be at least 1, not 0"),
        "{e}"
    );
    let e = batching.set_batch_wait_timeout_s(-1.0).unwrap_err();
    assert!(
        e.to_string()
            .contains("`batch_wait_timeout_s` must be a number of at least 0, not -1"),
        "{e}"
    );
    assert_eq!(
        batching.max_batch_size(),
        2,
        "a refused value changes nothing"
    );
    batching.set_batch_wait_timeout_s(0.5).unwrap();
    assert_eq!(batching.batch_wait_timeout_s(), 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_needs_a_replica_and_a_batched_method() {
    let e = batching(method).unwrap_err();
    assert!(e.to_string().contains("outside a replica"), "{e}");
    let e = context::on_replica(replica(), async { batching(run_async).unwrap_err() }).await;
    assert!(e.to_string().contains("is not a `#[batch]` method"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrent_batches_run_at_once() {
    use std::sync::atomic::AtomicUsize;
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    fn slow(this: Arc<Model>, xs: Vec<u32>) -> BatchFuture<u32> {
        Box::pin(async move {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            this.double(xs)
        })
    }
    static SPEC: BatchSpec = BatchSpec::new("double", 2, 0.0, 2);
    let (replica, model) = (replica(), Arc::new(Model::default()));
    let results = call_all(&replica, &SPEC, BatchFn::Async(slow), &model, 0..40).await;
    assert!(results.iter().all(Result::is_ok));
    assert!(
        MOST.load(Ordering::SeqCst) <= 2,
        "{}",
        MOST.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_size_sends_the_batch_forming_now() {
    static SPEC: BatchSpec = BatchSpec::new("double", 4, 3600.0, 1);
    let (replica, model) = (replica(), Arc::new(Model::default()));
    let batching = context::on_replica(replica.clone(), async {
        declare_batch(method, &SPEC);
        batching(method).unwrap()
    })
    .await;
    let calls = {
        let (replica, model) = (replica.clone(), model.clone());
        tokio::spawn(async move { call_all(&replica, &SPEC, SYNC, &model, [1, 2]).await })
    };
    // Both items wait (for an hour, or two more items).
    while batching.queued() < 2 {
        tokio::task::yield_now().await;
    }
    batching.set_max_batch_size(2).unwrap();
    let results = tokio::time::timeout(Duration::from_secs(20), calls)
        .await
        .expect("the batch went once it was full")
        .unwrap();
    assert_eq!(results, [Ok(2), Ok(4)]);
}
