//! Replicas that stop and start on a running instance (issue 4): `graceful_shutdown_timeout_s`
//! when an instance shuts down and when a replica leaves routing, rolling restarts and resource
//! changes, `max_ongoing_requests` changed in place, and cancelled requests freeing their place
//! in a bounded queue.

use std::time::{Duration, Instant};

use serve_core::prelude::*;
use serve_core::{DeploymentUpdate, ReplicaResources};
use serve_test_support::{
    Counter, Gate, OpenOnDrop, PATIENCE, replica_ids, run_with, wait_for_deployment, wait_until,
};

// --- graceful_shutdown_timeout_s -----------------------------------------------------------------

/// `call(true)` hangs until `release` opens, `call(false)` answers at once. A hanging call
/// opens `dropped` when its future is dropped (the request was stopped).
#[deployment(max_ongoing_requests = 1)]
pub struct Stuck {
    entered: Counter,
    release: Gate,
    dropped: Gate,
}

#[deployment]
impl Stuck {
    pub fn new(entered: Counter, release: Gate, dropped: Gate) -> Self {
        Self {
            entered,
            release,
            dropped,
        }
    }
    pub async fn call(&self, hang: bool) -> usize {
        let replica = serve_core::replica_context().unwrap().replica_id();
        if hang {
            // Opens `dropped` only if the method is dropped before it returns.
            let stopped = OpenOnDrop(self.dropped.clone());
            self.entered.incr();
            self.release.wait().await;
            std::mem::forget(stopped);
        }
        replica
    }
}

#[test]
fn shutdown_fails_requests_still_running_after_the_graceful_shutdown_timeout() {
    let serve = Serve::start().unwrap();
    let (entered, release, dropped) = (Counter::new(), Gate::new(), Gate::new());
    let handle = run_with(
        &serve,
        Stuck::bind(entered.clone(), release.clone(), dropped.clone()),
        |c| c.graceful_shutdown_timeout_s(0.2),
    );
    let stuck = handle.remote(true);
    wait_until("the request started", || entered.get() == 1);

    let started = Instant::now();
    // `None`: each deployment's own timeout bounds the shutdown.
    let finished_in_time = serve.shutdown_graceful(None);
    assert!(!finished_in_time, "a request had to be failed");
    assert!(
        started.elapsed() < PATIENCE / 2,
        "the shutdown waited for the deployment's 0.2 s, not more: {:?}",
        started.elapsed()
    );
    let err = stuck.result_timeout(PATIENCE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShutDown, "{err}");
    assert!(
        err.to_string()
            .contains("graceful shutdown timeout (200ms)"),
        "the error says why: {err}"
    );
    assert!(
        dropped.wait_blocking(),
        "the stopped request's method was dropped"
    );
}

#[test]
fn a_removed_replica_gets_its_graceful_shutdown_timeout_then_its_requests_fail_alone() {
    let serve = Serve::start().unwrap();
    let (entered, release, dropped) = (Counter::new(), Gate::new(), Gate::new());
    let handle = run_with(
        &serve,
        Stuck::bind(entered.clone(), release.clone(), dropped.clone()),
        |c| c.num_replicas(2).graceful_shutdown_timeout_s(0.2),
    );
    // One hanging request on each replica (one slot each).
    let first = handle.remote(true);
    let second = handle.remote(true);
    wait_until("both requests started", || entered.get() == 2);

    serve
        .update_deployment("Stuck", DeploymentUpdate::new().num_replicas(1))
        .unwrap();
    assert!(
        dropped.wait_blocking(),
        "the removed replica's request was stopped after its timeout"
    );
    // Exactly one of the two failed: the one on the removed replica.
    let (failed, running) = match first.result_timeout(Duration::from_millis(1)) {
        Err(e) if e.kind() == ErrorKind::ShutDown => (e, second),
        Err(e) if e.kind() == ErrorKind::Timeout => {
            let e2 = second.result_timeout(PATIENCE).unwrap_err();
            (e2, first)
        }
        other => panic!("unexpected: {other:?}"),
    };
    assert_eq!(failed.kind(), ErrorKind::ShutDown, "{failed}");
    assert!(
        failed.to_string().contains("was stopped"),
        "the error says the replica stopped: {failed}"
    );
    let survivor = serve.status()[0].deployments[0].replicas[0].replica_id;
    release.open();
    assert_eq!(
        running.result_timeout(PATIENCE).unwrap(),
        survivor,
        "the request on the remaining replica finished normally"
    );
    assert_eq!(handle.remote(false).result().unwrap(), survivor);
    serve.shutdown();
}

#[test]
fn a_removed_replica_that_finishes_in_time_fails_nothing() {
    let serve = Serve::start().unwrap();
    let (entered, release, dropped) = (Counter::new(), Gate::new(), Gate::new());
    let handle = run_with(
        &serve,
        Stuck::bind(entered.clone(), release.clone(), dropped.clone()),
        |c| c.num_replicas(2).graceful_shutdown_timeout_s(60.0),
    );
    let calls = [handle.remote(true), handle.remote(true)];
    wait_until("both requests started", || entered.get() == 2);
    serve
        .update_deployment("Stuck", DeploymentUpdate::new().num_replicas(1))
        .unwrap();
    wait_for_deployment(&serve, "Stuck", "one replica", |d| d.num_replicas == 1);
    release.open();
    for call in calls {
        call.result_timeout(PATIENCE)
            .expect("finished on the draining replica");
    }
    assert!(!dropped.is_open());
    serve.shutdown();
}

#[test]
fn a_shutdown_waits_for_and_stops_replicas_that_left_routing_too() {
    let serve = Serve::start().unwrap();
    let (entered, release, dropped) = (Counter::new(), Gate::new(), Gate::new());
    let handle = run_with(
        &serve,
        Stuck::bind(entered.clone(), release.clone(), dropped.clone()),
        |c| c.graceful_shutdown_timeout_s(1.0),
    );
    let stuck = handle.remote(true);
    wait_until("the request started", || entered.get() == 1);
    // The replica leaves routing (a new one replaces it) and drains its hanging request.
    serve
        .update_deployment("Stuck", DeploymentUpdate::new().restart())
        .unwrap();
    wait_for_deployment(&serve, "Stuck", "the replacement", |d| {
        d.replicas.len() == 1 && d.replicas[0].replica_id == 1
    });

    assert!(
        !serve.shutdown_graceful(None),
        "the draining replica's request had to be failed"
    );
    let err = stuck.result_timeout(PATIENCE).unwrap_err();
    assert!(err.to_string().contains("was stopped"), "{err}");
    assert!(dropped.wait_blocking());
}

// --- rolling restarts ------------------------------------------------------------------------------

/// Counts its constructions (its `generation` is its number, from 1); constructions after the
/// first `free` wait for `hold`.
#[deployment(num_replicas = 2)]
pub struct Model {
    generation: usize,
}

#[deployment]
impl Model {
    pub fn new(built: Counter, free: usize, hold: Gate) -> Self {
        let n = built.incr() + 1;
        if n > free {
            assert!(hold.wait_blocking(), "the test never let it build");
        }
        Self { generation: n }
    }
    pub async fn call(&self) -> usize {
        self.generation
    }
}

#[test]
fn a_restart_replaces_replicas_rolling_new_ones_first_and_fails_no_request() {
    let serve = Serve::start().unwrap();
    let (built, hold) = (Counter::new(), Gate::new());
    let handle = serve
        .run(Model::bind(built.clone(), 2, hold.clone()))
        .unwrap();
    let old = replica_ids(&serve);
    assert_eq!(old.len(), 2);

    // Load throughout the rollout: every call must succeed. The rollout starts once the load
    // has served its first call, so the load overlaps it however slowly the thread starts.
    let (stop, loading) = (Gate::new(), Gate::new());
    let load = {
        let (handle, stop, loading) = (handle.clone(), stop.clone(), loading.clone());
        std::thread::spawn(move || {
            let mut served = 0;
            while !stop.is_open() {
                handle.remote().result().expect("no request fails");
                served += 1;
                loading.open();
            }
            served
        })
    };
    assert!(loading.wait_blocking(), "the load started");

    serve
        .update_deployment("Model", DeploymentUpdate::new().restart())
        .unwrap();
    // The first new replica is being constructed (held): both old replicas still serve.
    wait_until("a new replica started constructing", || built.get() == 3);
    let status = &serve.status()[0].deployments[0];
    assert_eq!(status.status, "UPDATING", "{status:?}");
    assert_eq!(
        replica_ids(&serve),
        old,
        "no old replica left before a new one runs"
    );
    for _ in 0..10 {
        assert!(handle.remote().result().unwrap() <= 2, "old replicas serve");
    }

    hold.open();
    wait_for_deployment(&serve, "Model", "the rollout done", |d| {
        d.status == "HEALTHY" && d.num_replicas == 2 && d.replicas.iter().all(|r| r.replica_id > 1)
    });
    stop.open();
    assert!(load.join().unwrap() > 0);
    assert_eq!(built.get(), 4, "each replica was replaced once");
    for _ in 0..10 {
        assert!(handle.remote().result().unwrap() > 2, "new replicas serve");
    }
    serve.shutdown();
}

#[deployment(num_gpus = 1, num_cpus = 0)]
#[derive(Default)]
pub struct GpuModel;

#[deployment]
impl GpuModel {
    pub fn call(&self) -> (usize, f64) {
        let ctx = serve_core::replica_context().unwrap();
        (ctx.replica_id(), ctx.resources().num_gpus)
    }
}

#[test]
fn new_resources_roll_out_even_when_only_an_old_replica_can_make_room() {
    // One GPU: the new replica (0.5 GPU) cannot start beside the old one (1 GPU) until the old
    // one leaves, so the rollout stops the old replica first.
    let serve = Serve::builder().num_gpus(1.0).start().unwrap();
    let handle = serve.run(GpuModel::bind()).unwrap();
    assert_eq!(handle.remote().result().unwrap(), (0, 1.0));

    let half = ReplicaResources {
        num_cpus: 0.0,
        num_gpus: 0.5,
        custom: Default::default(),
    };
    serve
        .update_deployment("GpuModel", DeploymentUpdate::new().resources(half))
        .unwrap();
    wait_for_deployment(&serve, "GpuModel", "the new replica", |d| {
        d.status == "HEALTHY" && d.replicas.len() == 1 && d.replicas[0].replica_id == 1
    });
    assert_eq!(handle.remote().result().unwrap(), (1, 0.5));
    assert_eq!(serve.available_resources().num_gpus, 0.5);

    let never = ReplicaResources {
        num_cpus: 0.0,
        num_gpus: 2.0,
        custom: Default::default(),
    };
    let err = serve
        .update_deployment("GpuModel", DeploymentUpdate::new().resources(never))
        .unwrap_err();
    assert!(err.to_string().contains("could never fit"), "{err}");
    let err = serve
        .update_deployment("GpuModel", DeploymentUpdate::new().max_ongoing_requests(0))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(
        handle.remote().result().unwrap(),
        (1, 0.5),
        "nothing changed"
    );
    serve.shutdown();
}

/// Four replicas of one GPU each; constructions after the first four wait for `hold`.
#[deployment(num_replicas = 4, num_gpus = 1, num_cpus = 0)]
pub struct GpuFleet;

#[deployment]
impl GpuFleet {
    pub fn new(built: Counter, hold: Gate) -> Self {
        if built.incr() >= 4 {
            assert!(hold.wait_blocking(), "the test never let it build");
        }
        Self
    }
    pub fn call(&self) -> usize {
        serve_core::replica_context().unwrap().replica_id()
    }
}

#[test]
fn a_rollout_short_of_resources_replaces_one_replica_at_a_time() {
    // Every GPU is taken: each new replica needs an old one out of the way first, and no more
    // than one may be out at a time.
    let serve = Serve::builder().num_gpus(4.0).start().unwrap();
    let (built, hold) = (Counter::new(), Gate::new());
    let handle = serve
        .run(GpuFleet::bind(built.clone(), hold.clone()))
        .unwrap();
    let fewest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(4));
    let stop = Gate::new();
    let watcher = {
        let (serve, fewest, stop) = (serve.clone(), fewest.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.is_open() {
                let n = serve.status()[0].deployments[0].num_replicas;
                fewest.fetch_min(n, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1)); // sampling, not synchronisation
            }
        })
    };

    serve
        .update_deployment("GpuFleet", DeploymentUpdate::new().restart())
        .unwrap();
    // The first new replica got the GPU of one old replica and is held in its constructor.
    wait_until("a new replica constructing", || built.get() == 5);
    wait_for_deployment(&serve, "GpuFleet", "three replicas serving", |d| {
        d.num_replicas == 3
    });
    for _ in 0..10 {
        handle
            .remote()
            .result()
            .expect("the three old replicas serve");
    }
    let status = &serve.status()[0].deployments[0];
    assert_eq!(
        status.num_replicas, 3,
        "no second old replica left: {status:?}"
    );
    assert_eq!(status.status, "UPDATING");

    hold.open();
    wait_for_deployment(&serve, "GpuFleet", "the rollout done", |d| {
        d.status == "HEALTHY" && d.num_replicas == 4 && d.replicas.iter().all(|r| r.replica_id >= 4)
    });
    stop.open();
    watcher.join().unwrap();
    // Sampled: a dip may be missed, but one seen is a failure.
    let fewest = fewest.load(std::sync::atomic::Ordering::SeqCst);
    assert!(fewest >= 3, "{fewest} replica(s) serving at one point");
    assert_eq!(built.get(), 8);
    serve.shutdown();
}

/// Constructs until `free` constructions are done; later ones fail (a bad model file).
#[deployment]
pub struct Fragile;

#[deployment]
impl Fragile {
    pub fn new(built: Counter, free: usize) -> Result<Self, String> {
        if built.incr() >= free {
            return Err("the new model file is corrupt".into());
        }
        Ok(Self)
    }
    pub fn call(&self) -> usize {
        serve_core::replica_context().unwrap().replica_id()
    }
}

#[test]
fn a_rollout_whose_new_replicas_cannot_be_built_is_unhealthy_and_the_old_replica_serves() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let handle = serve.run(Fragile::bind(built.clone(), 1)).unwrap();
    serve
        .update_deployment("Fragile", DeploymentUpdate::new().restart())
        .unwrap();
    wait_for_deployment(&serve, "Fragile", "unhealthy", |d| d.status == "UNHEALTHY");
    let status = &serve.status()[0].deployments[0];
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("the new model file is corrupt")),
        "the constructor's error: {status:?}"
    );
    assert_eq!(replica_ids(&serve), [0], "the old replica stays in routing");
    for _ in 0..5 {
        assert_eq!(handle.remote().result().unwrap(), 0, "and serves");
    }
    serve.shutdown();
}

// --- max_ongoing_requests and the queue ------------------------------------------------------------

#[deployment(max_ongoing_requests = 1)]
pub struct Slots {
    entered: Counter,
    release: Gate,
}

#[deployment]
impl Slots {
    pub fn new(entered: Counter, release: Gate) -> Self {
        Self { entered, release }
    }
    pub async fn call(&self, i: u32) -> u32 {
        self.entered.incr();
        self.release.wait().await;
        i
    }
}

#[test]
fn more_max_ongoing_requests_start_queued_requests_at_once() {
    let serve = Serve::start().unwrap();
    let (entered, release) = (Counter::new(), Gate::new());
    let handle = serve
        .run(Slots::bind(entered.clone(), release.clone()))
        .unwrap();
    let calls: Vec<_> = (0..3).map(|i| handle.remote(i)).collect();
    wait_until("one request running", || entered.get() == 1);
    assert_eq!(serve.status()[0].deployments[0].queued_requests, 2);

    serve
        .update_deployment("Slots", DeploymentUpdate::new().max_ongoing_requests(3))
        .unwrap();
    wait_until("all three running on the one replica", || {
        entered.get() == 3
    });
    let status = &serve.status()[0].deployments[0];
    assert_eq!(status.max_ongoing_requests, 3);
    assert_eq!(status.num_replicas, 1, "changed in place, no new replica");
    release.open();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.result_timeout(PATIENCE).unwrap(), i as u32);
    }
    serve.shutdown();
}

#[test]
fn a_cancelled_queued_request_frees_its_place_in_a_full_queue() {
    let serve = Serve::start().unwrap();
    let (entered, release) = (Counter::new(), Gate::new());
    let handle = run_with(&serve, Slots::bind(entered.clone(), release.clone()), |c| {
        c.max_queued_requests(1)
    });
    let running = handle.remote(0);
    wait_until("one request running", || entered.get() == 1);
    let queued = handle.remote(1);
    let refused = handle.remote(2).result_timeout(PATIENCE).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::BackPressure, "the queue is full");

    queued.cancel();
    let admitted = handle.remote(3);
    release.open();
    assert_eq!(running.result_timeout(PATIENCE).unwrap(), 0);
    assert_eq!(
        admitted.result_timeout(PATIENCE).unwrap(),
        3,
        "the cancelled request's place was free"
    );
    assert_eq!(
        queued.result_timeout(PATIENCE).unwrap_err().kind(),
        ErrorKind::Cancelled
    );
    assert_eq!(entered.get(), 2, "the cancelled request never ran");
    serve.shutdown();
}
