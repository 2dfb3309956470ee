use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::dataplane::replica::LocalReplica;

/// A request for the router's own tests: runs a closure with the slot.
struct TestCall<F, A> {
    run: F,
    abandoned: A,
}

impl<F, A> Call<()> for TestCall<F, A>
where
    F: FnOnce(Slot<()>) + Send + 'static,
    A: Fn() -> bool + Send + 'static,
{
    type Values = ();
    fn abandoned(&self) -> bool {
        (self.abandoned)()
    }
    fn fail(self, _err: ServeError) {}
    fn run(self, _values: (), slot: Slot<()>) {
        (self.run)(slot)
    }
}

fn submit(
    r: &Arc<RequestRouter<()>>,
    run: impl FnOnce(Slot<()>) + Send + 'static,
    abandoned: impl Fn() -> bool + Send + 'static,
) {
    r.dispatch(TestCall { run, abandoned }, ());
}

/// Submits a request that only counts that it ran; `abandoned` says whether anyone still wants it.
fn count_runs(
    r: &Arc<RequestRouter<()>>,
    abandoned: impl Fn() -> bool + Send + 'static,
) -> Arc<AtomicUsize> {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    submit(
        r,
        move |_slot| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
        abandoned,
    );
    ran
}

fn router(replicas: usize, max: usize, rt: &tokio::runtime::Runtime) -> Arc<RequestRouter<()>> {
    let settings = RouterSettings {
        max_ongoing: max,
        max_queued: None,
        graceful_timeout: Duration::from_secs(20),
        metrics: None,
    };
    let replicas = (0..replicas).map(LocalReplica::unplaced).collect();
    Arc::new(RequestRouter::new(
        Arc::from("T"),
        replicas,
        settings,
        rt.handle().clone(),
    ))
}

fn loads(r: &RequestRouter<()>) -> Vec<usize> {
    r.replicas().iter().map(|r| r.slots().load()).collect()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn removed_replicas_take_no_new_requests_and_added_ones_drain_the_queue() {
    let rt = current_thread();
    let r = router(1, 1, &rt);
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        submit(&r, move |slot| held.lock().unwrap().push(slot), || false);
    }
    let ran = count_runs(&r, || false);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "queued behind the held slot");
    r.add_replica(|| LocalReplica::unplaced(1));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "a new replica drains the queue at once"
    );
    assert!(r.remove_where(|_| Some(0)).is_some());
    assert_eq!(r.num_replicas(), 1);
    assert!(r.remove_where(|_| Some(0)).is_some());
    assert_eq!(r.num_replicas(), 0);
    assert!(r.reserve().is_none(), "no replica takes new requests");
    held.lock().unwrap().clear(); // the removed replica's request still finishes cleanly
    assert_eq!(r.ongoing(), 0);
}

#[test]
fn reserve_respects_the_limit_across_replicas() {
    let rt = current_thread();
    let r = router(2, 2, &rt);
    let reserved: Vec<_> = (0..4).map(|_| r.reserve().unwrap()).collect();
    assert_eq!(loads(&r), [2, 2]);
    assert!(r.reserve().is_none(), "all slots taken");
    drop(reserved);
}

#[test]
fn queued_jobs_run_in_fifo_order_when_slots_free() {
    let rt = current_thread();
    let r = router(1, 1, &rt);
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(None));
    {
        let held = held.clone();
        submit(&r, move |slot| *held.lock().unwrap() = Some(slot), || false);
    }
    for i in 0..3 {
        let order = order.clone();
        submit(&r, move |_slot| order.lock().unwrap().push(i), || false);
    }
    assert!(order.lock().unwrap().is_empty(), "the only slot is held");
    assert_eq!(r.queued(), 3);
    held.lock().unwrap().take(); // release: the queue drains in order
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    assert_eq!(loads(&r), [0]);
}

#[test]
fn abandoned_jobs_are_skipped_without_a_slot() {
    let rt = current_thread();
    let r = router(1, 1, &rt);
    let held = Arc::new(Mutex::new(None));
    {
        let held = held.clone();
        submit(&r, move |slot| *held.lock().unwrap() = Some(slot), || false);
    }
    let ran = count_runs(&r, || true);
    held.lock().unwrap().take();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(r.queued(), 0);
}
