//! Scaling and staying up (issue 4): back pressure, autoscaling up, down, to zero and back.

use std::time::Duration;

use serve_core::AutoscalingConfig;
use serve_core::prelude::*;
use serve_test_support::{
    Counter, Gate, PATIENCE, quick_autoscaling, run_with, wait_for_deployment, wait_until,
};

#[deployment(max_ongoing_requests = 1)]
pub struct Held {
    release: Gate,
    ran: Counter,
}

#[deployment]
impl Held {
    pub fn new(release: Gate, ran: Counter) -> Self {
        Self { release, ran }
    }
    pub async fn call(&self, i: u32) -> u32 {
        self.release.wait().await;
        self.ran.incr();
        i
    }
}

#[test]
fn a_storm_against_max_queued_requests_either_runs_or_is_dropped_and_counts_add_up() {
    let serve = Serve::start().unwrap();
    let (release, ran) = (Gate::new(), Counter::new());
    let handle = run_with(&serve, Held::bind(release.clone(), ran.clone()), |c| {
        c.max_queued_requests(3)
    });

    // One call takes the only slot, three wait, the rest are dropped at once.
    let calls: Vec<_> = (0..20).map(|i| handle.remote(i)).collect();
    let mut dropped = 0;
    let mut accepted = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        match call.result_timeout(Duration::from_millis(1)) {
            Err(e) if e.kind() == ErrorKind::BackPressure => {
                assert!(
                    e.to_string()
                        .contains("Request dropped due to backpressure"),
                    "{e}"
                );
                dropped += 1;
            }
            Err(e) if e.kind() == ErrorKind::Timeout => accepted.push((i, call)),
            other => panic!("call {i}: {other:?}"),
        }
    }
    assert_eq!((accepted.len(), dropped), (4, 16));
    release.open();
    for (i, call) in accepted {
        assert_eq!(
            call.result_timeout(PATIENCE).unwrap(),
            i as u32,
            "queued calls still run"
        );
    }
    assert_eq!(ran.get(), 4);
}

#[test]
fn concurrent_callers_against_back_pressure_lose_nothing() {
    let serve = Serve::start().unwrap();
    let (release, ran) = (Gate::new(), Counter::new());
    release.open();
    let handle = run_with(&serve, Held::bind(release, ran.clone()), |c| {
        c.max_queued_requests(2)
    });
    let (ok, dropped) = (Counter::new(), Counter::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (handle, ok, dropped) = (handle.clone(), ok.clone(), dropped.clone());
            s.spawn(move || {
                let calls: Vec<_> = (0..50).map(|i| handle.remote(t * 100 + i)).collect();
                for call in calls {
                    match call.result_timeout(PATIENCE) {
                        Ok(_) => ok.incr(),
                        Err(e) if e.kind() == ErrorKind::BackPressure => dropped.incr(),
                        Err(e) => panic!("unexpected failure: {e}"),
                    };
                }
            });
        }
    });
    assert_eq!(
        ok.get() + dropped.get(),
        400,
        "every call either ran or was dropped"
    );
    assert_eq!(ran.get(), ok.get(), "every accepted call ran exactly once");
    assert!(ok.get() >= 3, "calls that found room ran: {}", ok.get());
}

// --- autoscaling ---------------------------------------------------------------------------------

#[deployment]
pub struct Busy {
    release: Gate,
}

#[deployment]
impl Busy {
    pub fn new(release: Gate) -> Self {
        Self { release }
    }
    pub async fn call(&self, hold: bool) -> String {
        if hold {
            self.release.wait().await;
        }
        "done".into()
    }
}

#[test]
fn autoscaling_follows_the_load_up_and_down_without_failing_a_request() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    let handle = run_with(&serve, Busy::bind(release.clone()), |c| {
        c.autoscaling(quick_autoscaling(1, 3))
    });
    assert_eq!(handle.num_replicas(), 1);

    // Six requests held at once: load 6 for a target of 1 per replica, clamped to 3 replicas.
    let held: Vec<_> = (0..6).map(|_| handle.remote(true)).collect();
    wait_for_deployment(&serve, "Busy", "3 replicas", |d| d.num_replicas == 3);
    wait_for_deployment(&serve, "Busy", "the status to settle", |d| {
        d.status == "HEALTHY"
    });
    release.open();
    for call in held {
        assert_eq!(call.result_timeout(PATIENCE).unwrap(), "done");
    }
    // Idle: back down to the minimum, serving all along.
    wait_for_deployment(&serve, "Busy", "1 replica", |d| {
        d.num_replicas == 1 && d.target_replicas == 1
    });
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
}

#[test]
fn a_deployment_scaled_to_zero_wakes_for_a_request() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    release.open();
    let handle = run_with(&serve, Busy::bind(release), |c| {
        c.autoscaling(
            quick_autoscaling(0, 2)
                .initial_replicas(0)
                .metrics_interval_s(3600.0), // only a waiting request can wake it
        )
    });
    assert_eq!(handle.num_replicas(), 0);
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
    assert!(handle.num_replicas() >= 1);
}

#[test]
fn an_idle_deployment_scales_to_zero_and_back() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    release.open();
    let handle = run_with(&serve, Busy::bind(release), |c| {
        c.autoscaling(quick_autoscaling(0, 2))
    });
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
    wait_for_deployment(&serve, "Busy", "0 replicas", |d| d.num_replicas == 0);
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
}

#[test]
fn min_replicas_zero_starts_with_no_replica_and_the_first_call_wakes_it() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    release.open();
    // `initial_replicas` not given: it is `min_replicas`, 0, as in Ray.
    let handle = run_with(&serve, Busy::bind(release), |c| {
        c.autoscaling(AutoscalingConfig::default().min_replicas(0).max_replicas(2))
    });
    assert_eq!(handle.num_replicas(), 0);
    let status = serve_test_support::deployment_status(&serve, "Busy");
    assert_eq!((status.num_replicas, status.target_replicas), (0, 0));
    // The call waits in the queue, wakes the controller, and runs on the replica it starts
    // (without the 30 s upscale delay).
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
    assert_eq!(handle.num_replicas(), 1);
}

/// The controller decides every 0.1 s whatever `metrics_interval_s` is (here its default, 10 s):
/// `downscale_delay_s = 1` holds as written.
#[test]
fn an_idle_deployment_scales_down_within_two_seconds_of_its_downscale_delay() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    release.open();
    let delay = Duration::from_secs(1);
    let config = AutoscalingConfig::default()
        .min_replicas(1)
        .max_replicas(2)
        .initial_replicas(2)
        .downscale_delay_s(delay.as_secs_f64());
    assert_eq!(config.metrics_interval_s, 10.0, "the default");
    let deployed = std::time::Instant::now();
    let handle = run_with(&serve, Busy::bind(release), |c| c.autoscaling(config));
    assert_eq!(handle.num_replicas(), 2);
    wait_for_deployment(&serve, "Busy", "1 replica", |d| {
        d.num_replicas == 1 && d.target_replicas == 1
    });
    let took = deployed.elapsed();
    eprintln!("idle 2 -> 1 replicas with downscale_delay_s = 1: {took:?} after deploying");
    assert!(took >= delay, "not before the delay: {took:?}");
    assert!(
        took < delay + Duration::from_secs(2),
        "within 2 s of the delay: {took:?}"
    );
}

#[test]
fn the_last_step_to_zero_waits_downscale_to_zero_delay_s() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    release.open();
    // Without `downscale_to_zero_delay_s` the step to 0 would wait the 600 s downscale delay.
    let handle = run_with(&serve, Busy::bind(release), |c| {
        c.autoscaling(
            AutoscalingConfig::default()
                .min_replicas(0)
                .max_replicas(2)
                .initial_replicas(1)
                .downscale_to_zero_delay_s(0.2),
        )
    });
    assert_eq!(handle.num_replicas(), 1);
    wait_for_deployment(&serve, "Busy", "0 replicas", |d| d.num_replicas == 0);
    assert_eq!(
        handle.remote(false).result_timeout(PATIENCE).unwrap(),
        "done"
    );
}

// --- constructors that fail ------------------------------------------------------------------------

/// Fails its first `failures` constructions (`built` counts them all).
#[deployment]
pub struct Flaky;

#[deployment]
impl Flaky {
    pub fn new(built: Counter, failures: usize) -> Result<Self, String> {
        if built.incr() < failures {
            return Err("the model server is not up yet".into());
        }
        Ok(Self)
    }
    pub fn call(&self) -> String {
        "up".into()
    }
}

#[test]
fn a_constructor_that_fails_at_deploy_time_is_tried_again() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    // One replica: up to 3 failures (Ray's min(3 * 1, 20)); two are tolerated.
    let handle = serve.run(Flaky::bind(built.clone(), 2)).unwrap();
    assert_eq!(built.get(), 3, "two failures, then the replica");
    assert_eq!(handle.remote().result_timeout(PATIENCE).unwrap(), "up");
    let status = serve_test_support::deployment_status(&serve, "Flaky");
    assert_eq!(
        (status.status.as_str(), status.num_replicas),
        ("HEALTHY", 1)
    );
}

#[test]
fn a_deploy_fails_with_the_constructors_error_after_min_3_per_replica_20_failures() {
    for (replicas, attempts) in [(1, 3), (2, 6), (10, 20)] {
        let serve = Serve::start().unwrap();
        let built = Counter::new();
        let err = run_attempt(&serve, Flaky::bind(built.clone(), usize::MAX), replicas)
            .expect_err("a constructor that always fails fails the deploy");
        assert_eq!(err.kind(), ErrorKind::Constructor, "{err}");
        assert!(
            err.to_string().contains("the model server is not up yet"),
            "the constructor's error: {err}"
        );
        assert_eq!(
            built.get(),
            attempts,
            "{replicas} replica(s): {attempts} attempts in all"
        );
        assert!(serve.status().is_empty(), "nothing is left deployed");
        serve.shutdown();
    }
}

fn run_attempt(
    serve: &Serve,
    app: Application<Flaky>,
    replicas: usize,
) -> Result<DeploymentHandle<Flaky>, ServeError> {
    let mut configs = app.deployment_configs();
    configs[0] = configs[0].clone().num_replicas(replicas);
    serve.run_configured(app, configs)
}

/// Constructs while `broken` is closed or `fixed` open; fails in between.
#[deployment]
pub struct Moody;

#[deployment]
impl Moody {
    pub fn new(built: Counter, broken: Gate, fixed: Gate) -> Result<Self, String> {
        built.incr();
        if broken.is_open() && !fixed.is_open() {
            return Err("the weights file is corrupt".into());
        }
        Ok(Self)
    }
    pub fn call(&self) -> usize {
        serve_core::replica_context().unwrap().replica_id()
    }
}

/// Past the bound, a running deployment keeps the replicas it has, is `UNHEALTHY` with the
/// constructor's error, and tries once per health-check period until a construction works.
#[test]
fn a_running_deployment_whose_constructions_keep_failing_is_unhealthy_then_recovers() {
    let serve = Serve::start().unwrap();
    let (built, broken, fixed) = (Counter::new(), Gate::new(), Gate::new());
    let handle = run_with(
        &serve,
        Moody::bind(built.clone(), broken.clone(), fixed.clone()),
        |c| c.health_check_period_s(0.2),
    );
    assert_eq!(handle.remote().result_timeout(PATIENCE).unwrap(), 0);
    broken.open();
    // A restart replaces the replica, rolling: its new replicas cannot be built.
    serve
        .update_deployment("Moody", serve_core::DeploymentUpdate::new().restart())
        .unwrap();
    wait_for_deployment(&serve, "Moody", "unhealthy", |d| d.status == "UNHEALTHY");
    let status = serve_test_support::deployment_status(&serve, "Moody");
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("3 replica constructions failed in a row")
                && m.contains("the weights file is corrupt")),
        "{status:?}"
    );
    assert_eq!(
        handle.remote().result_timeout(PATIENCE).unwrap(),
        0,
        "the old replica serves on"
    );
    // Fixed: the next try (within a health-check period) builds the new replica.
    fixed.open();
    wait_for_deployment(&serve, "Moody", "healthy, the replica replaced", |d| {
        d.status == "HEALTHY" && d.replicas.len() == 1 && d.replicas[0].replica_id > 0
    });
    assert!(handle.remote().result_timeout(PATIENCE).unwrap() > 0);
}

// --- timeouts ------------------------------------------------------------------------------------------

#[deployment]
pub struct Sleepy {
    entered: Gate,
    dropped: Gate,
}

#[deployment]
impl Sleepy {
    pub fn new(entered: Gate, dropped: Gate) -> Self {
        Self { entered, dropped }
    }
    /// Would take a minute unless cancelled.
    pub async fn call(&self) -> String {
        let _guard = serve_test_support::OpenOnDrop(self.dropped.clone());
        self.entered.open();
        tokio::time::sleep(Duration::from_secs(60)).await;
        "late".into()
    }
}

#[deployment]
pub struct Caller {
    sleepy: DeploymentHandle<Sleepy>,
}

#[deployment]
impl Caller {
    pub fn new(sleepy: DeploymentHandle<Sleepy>) -> Self {
        Self { sleepy }
    }
    /// Gives the downstream call 50 ms.
    pub async fn call(&self) -> Result<String, ServeError> {
        self.sleepy
            .remote()
            .timeout(Duration::from_millis(50))
            .await
    }
}

#[test]
fn a_per_call_timeout_fails_the_call_and_cancels_it_downstream() {
    let serve = Serve::start().unwrap();
    let (entered, dropped) = (Gate::new(), Gate::new());
    let caller = serve
        .run(Caller::bind(Sleepy::bind(entered.clone(), dropped.clone())))
        .unwrap();
    let err = caller.remote().result_timeout(PATIENCE).unwrap_err();
    let inner = err
        .downcast_ref::<ServeError>()
        .expect("the downstream error");
    assert_eq!(inner.kind(), ErrorKind::Timeout, "{err}");
    assert!(entered.is_open());
    assert!(
        dropped.wait_blocking(),
        "the timed-out downstream call was cancelled"
    );
}

#[test]
fn a_timeout_from_outside_cancels_the_request() {
    let serve = Serve::start().unwrap();
    let (entered, dropped) = (Gate::new(), Gate::new());
    let sleepy = serve.run(Sleepy::bind(entered, dropped.clone())).unwrap();
    let err = sleepy
        .remote()
        .timeout(Duration::from_millis(20))
        .result_timeout(PATIENCE)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        dropped.wait_blocking(),
        "the request was cancelled when it timed out"
    );
}

#[deployment]
pub struct SleepyIngress {
    sleepy: DeploymentHandle<Sleepy>,
}

#[deployment]
impl SleepyIngress {
    pub fn new(sleepy: DeploymentHandle<Sleepy>) -> Self {
        Self { sleepy }
    }
    pub async fn call(&self, _req: serve_core::http::Request) -> Result<String, ServeError> {
        self.sleepy.remote().await
    }
}

#[tokio::test]
async fn the_http_request_timeout_answers_408_and_cancels_the_work() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .set_http_request_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let (entered, dropped) = (Gate::new(), Gate::new());
    serve
        .run_http(
            SleepyIngress::bind(Sleepy::bind(entered, dropped.clone())),
            "/",
        )
        .unwrap();
    let reply = serve_test_support::http::send(addr, "GET", "/", &[], "").await;
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert!(reply.body.starts_with("Request Timeout"), "{}", reply.body);
    dropped
        .expect_open("the downstream call was cancelled with the timed-out request")
        .await;
    serve.shutdown();
}

// --- graceful shutdown ---------------------------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Doubler;

#[deployment]
impl Doubler {
    pub fn call(&self, x: u32) -> u32 {
        x * 2
    }
}

#[deployment]
pub struct Waiter {
    entered: Counter,
    release: Gate,
    doubler: DeploymentHandle<Doubler>,
}

#[deployment]
impl Waiter {
    pub fn new(entered: Counter, release: Gate, doubler: DeploymentHandle<Doubler>) -> Self {
        Self {
            entered,
            release,
            doubler,
        }
    }
    /// Waits for the gate, then calls downstream: that call happens during the shutdown.
    pub async fn call(&self, x: u32) -> Result<u32, ServeError> {
        self.entered.incr();
        self.release.wait().await;
        self.doubler.remote(x).await
    }
}

#[test]
fn graceful_shutdown_refuses_new_requests_and_finishes_those_in_flight() {
    let serve = Serve::start().unwrap();
    let (entered, release) = (Counter::new(), Gate::new());
    let waiter = serve
        .run(Waiter::bind(
            entered.clone(),
            release.clone(),
            Doubler::bind(),
        ))
        .unwrap();
    let in_flight: Vec<_> = (0..3).map(|i| waiter.remote(i)).collect();
    wait_until("the requests started", || entered.get() == 3);
    let deadline = std::time::Instant::now() + PATIENCE;

    let stopping = serve.clone();
    let shutdown = std::thread::spawn(move || stopping.shutdown_graceful(PATIENCE));
    // New outside requests are refused once the shutdown began.
    let refused = loop {
        match waiter.remote(9).result_timeout(Duration::from_millis(1)) {
            Err(e) if e.kind() == ErrorKind::ShutDown => break e,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "new requests still admitted"
            ),
        }
    };
    assert!(
        refused.to_string().contains("takes no new requests"),
        "{refused}"
    );
    assert!(
        !shutdown.is_finished(),
        "the shutdown waits for the requests in flight"
    );

    release.open();
    for (i, call) in in_flight.into_iter().enumerate() {
        assert_eq!(
            call.result_timeout(PATIENCE).unwrap(),
            2 * i as u32,
            "finished, downstream call included"
        );
    }
    assert!(
        shutdown.join().unwrap(),
        "everything in flight finished in time"
    );
}
