//! Health checks, replica replacement, and `reconfigure` with a `user_config` (issue 4, points 5
//! and 6).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serve_core::prelude::*;
use serve_test_support::{Counter, PATIENCE, replica_ids, wait_for_deployment};

type Sick = Arc<Mutex<HashSet<usize>>>;

#[derive(Debug)]
pub struct Unwell(usize);
impl std::fmt::Display for Unwell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "replica {} lost its model", self.0)
    }
}
impl std::error::Error for Unwell {}

#[deployment(
    num_replicas = 2,
    health_check_period_s = 0.02,
    health_check_timeout_s = 1
)]
pub struct Patient {
    id: usize,
    sick: Sick,
}

#[deployment]
impl Patient {
    pub fn new(ids: Counter, sick: Sick) -> Self {
        Self {
            id: ids.incr(),
            sick,
        }
    }

    pub fn check_health(&self) -> Result<(), Unwell> {
        if self.sick.lock().unwrap().contains(&self.id) {
            Err(Unwell(self.id))
        } else {
            Ok(())
        }
    }

    pub fn call(&self) -> usize {
        self.id
    }
}

#[test]
fn a_replica_that_fails_its_health_checks_is_replaced_and_no_request_fails() {
    let serve = Serve::start().unwrap();
    let (ids, sick) = (Counter::new(), Sick::default());
    let handle = serve.run(Patient::bind(ids.clone(), sick.clone())).unwrap();
    assert_eq!(replica_ids(&serve), [0, 1]);

    sick.lock().unwrap().insert(0);
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut served = 0;
    // Keep calling while the sick replica is found out and replaced: every call succeeds. (The
    // instance ids come from the constructors, which run in parallel: instance 0 may be either
    // router replica; the replacement is router replica 2.)
    while !(ids.get() == 3 && replica_ids(&serve).len() == 2 && replica_ids(&serve).contains(&2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "never replaced: {:?}",
            serve.status()
        );
        handle.remote().result_timeout(PATIENCE).unwrap();
        served += 1;
        std::thread::sleep(Duration::from_millis(2)); // paces the calls; not a synchronisation
    }
    assert!(served > 0);
    assert_eq!(ids.get(), 3, "one replacement was constructed");
    let status = &serve.status()[0].deployments[0];
    assert_eq!(status.status, "HEALTHY", "{status:?}");
    for _ in 0..20 {
        assert_ne!(
            handle.remote().result_timeout(PATIENCE).unwrap(),
            0,
            "the sick replica takes no requests"
        );
    }
}

#[deployment(health_check_period_s = 0.02)]
pub struct Flaky {
    id: usize,
}

#[deployment]
impl Flaky {
    pub fn new(ids: Counter) -> Result<Self, std::io::Error> {
        let id = ids.incr();
        if id > 0 {
            return Err(std::io::Error::other(format!("GPU {id} is gone")));
        }
        Ok(Self { id })
    }

    pub async fn check_health(&self) -> Result<(), Unwell> {
        Err(Unwell(self.id))
    }

    pub fn call(&self) -> usize {
        self.id
    }
}

#[test]
fn a_deployment_whose_replacements_cannot_be_constructed_is_reported_unhealthy() {
    let serve = Serve::start().unwrap();
    let ids = Counter::new();
    serve.run(Flaky::bind(ids.clone())).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let status = serve.status()[0].deployments[0].clone();
        if status.status == "UNHEALTHY" {
            let message = status.message.unwrap();
            assert!(
                message.contains("GPU") && message.contains("is gone"),
                "{message}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never unhealthy: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(5)); // polling an external observation
    }
    let tries = ids.get();
    assert!(
        tries >= 4,
        "the first replica, then at least 3 failed constructions: {tries}"
    );
}

// --- reconfigure ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    pub positive: f32,
}

#[deployment(num_replicas = 2)]
#[derive(Default)]
pub struct Scorer {
    thresholds: Mutex<Option<Thresholds>>,
    reconfigured: std::sync::atomic::AtomicUsize,
}

#[deployment]
impl Scorer {
    pub fn reconfigure(&self, config: Thresholds) {
        *self.thresholds.lock().unwrap() = Some(config);
        self.reconfigured
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn call(&self) -> Option<Thresholds> {
        self.thresholds.lock().unwrap().clone()
    }
}

#[test]
fn every_replica_gets_the_user_config_before_its_first_request() {
    let serve = Serve::start().unwrap();
    let app = Scorer::bind();
    let mut configs = app.deployment_configs();
    let scorer = configs
        .pop()
        .unwrap()
        .user_config(serde_json::json!({"positive": 0.7}));
    configs.push(scorer);
    let handle = serve.run_configured(app, configs).unwrap();
    for _ in 0..10 {
        assert_eq!(
            handle.remote().result().unwrap(),
            Some(Thresholds { positive: 0.7 })
        );
    }
}

#[test]
fn a_user_config_that_does_not_fit_fails_the_deployment() {
    let serve = Serve::start().unwrap();
    let app = Scorer::bind();
    let mut configs = app.deployment_configs();
    let scorer = configs
        .pop()
        .unwrap()
        .user_config(serde_json::json!({"positive": "high"}));
    configs.push(scorer);
    let err = serve.run_configured(app, configs).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constructor);
    assert!(
        err.to_string().contains("user_config does not fit"),
        "{err}"
    );
}

// --- updating a running deployment -----------------------------------------------------------------

#[deployment(num_replicas = 2)]
pub struct Tunable {
    thresholds: Mutex<Option<Thresholds>>,
}

#[deployment]
impl Tunable {
    pub fn new(built: Counter) -> Self {
        built.incr();
        Self {
            thresholds: Mutex::new(None),
        }
    }
    pub fn reconfigure(&self, config: Thresholds) {
        *self.thresholds.lock().unwrap() = Some(config);
    }
    pub fn call(&self) -> Option<Thresholds> {
        self.thresholds.lock().unwrap().clone()
    }
}

#[test]
fn a_running_deployment_takes_a_new_user_config_and_replica_count_without_restarts() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let handle = serve.run(Tunable::bind(built.clone())).unwrap();
    assert_eq!(handle.remote().result().unwrap(), None);

    serve
        .update_deployment(
            "Tunable",
            serve_core::DeploymentUpdate::new().user_config(serde_json::json!({"positive": 0.9})),
        )
        .unwrap();
    for _ in 0..10 {
        assert_eq!(
            handle.remote().result().unwrap(),
            Some(Thresholds { positive: 0.9 }),
            "every replica was reconfigured"
        );
    }
    assert_eq!(built.get(), 2, "reconfigured in place, not restarted");

    serve
        .update_deployment(
            "Tunable",
            serve_core::DeploymentUpdate::new().num_replicas(4),
        )
        .unwrap();
    wait_for_deployment(&serve, "Tunable", "4 replicas", |d| d.num_replicas == 4);
    for _ in 0..20 {
        // The new replicas got the current user_config before their first request.
        assert_eq!(
            handle.remote().result().unwrap(),
            Some(Thresholds { positive: 0.9 })
        );
    }
    serve
        .update_deployment(
            "Tunable",
            serve_core::DeploymentUpdate::new().num_replicas(1),
        )
        .unwrap();
    wait_for_deployment(&serve, "Tunable", "1 replica", |d| d.num_replicas == 1);
    assert_eq!(built.get(), 4);
    assert!(handle.remote().result().is_ok());
}

#[test]
fn updates_that_cannot_apply_are_refused_with_the_reason() {
    let serve = Serve::start().unwrap();
    serve
        .run(Patient::bind(Counter::new(), Sick::default()))
        .unwrap();
    let err = serve
        .update_deployment(
            "Nobody",
            serve_core::DeploymentUpdate::new().num_replicas(2),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("the deployments are: Patient"),
        "{err}"
    );
    let err = serve
        .update_deployment(
            "Patient",
            serve_core::DeploymentUpdate::new().user_config(serde_json::json!(1)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("no `reconfigure` method"), "{err}");
}

#[deployment]
pub struct SlowToTune {
    release: serve_test_support::Gate,
    entered: serve_test_support::Gate,
}

#[deployment]
impl SlowToTune {
    pub fn new(entered: serve_test_support::Gate, release: serve_test_support::Gate) -> Self {
        Self { release, entered }
    }
    pub async fn reconfigure(&self, _config: Thresholds) {
        self.entered.open();
        self.release.wait().await;
    }
    pub fn call(&self) -> u8 {
        1
    }
}

#[test]
fn status_says_updating_while_replicas_take_a_new_user_config() {
    let serve = Serve::start().unwrap();
    let (entered, release) = (
        serve_test_support::Gate::new(),
        serve_test_support::Gate::new(),
    );
    let handle = serve
        .run(SlowToTune::bind(entered.clone(), release.clone()))
        .unwrap();
    let updater = serve.clone();
    let update = std::thread::spawn(move || {
        updater.update_deployment(
            "SlowToTune",
            serve_core::DeploymentUpdate::new().user_config(serde_json::json!({"positive": 1.0})),
        )
    });
    assert!(entered.wait_blocking(), "reconfigure started");
    assert_eq!(serve.status()[0].deployments[0].status, "UPDATING");
    assert_eq!(
        handle.remote().result().unwrap(),
        1,
        "it serves while it updates"
    );
    release.open();
    update.join().unwrap().unwrap();
    assert_eq!(serve.status()[0].deployments[0].status, "HEALTHY");
}

#[test]
fn a_user_config_for_a_deployment_without_reconfigure_is_refused_at_deploy() {
    let serve = Serve::start().unwrap();
    let app = Patient::bind(Counter::new(), Sick::default());
    let mut configs = app.deployment_configs();
    let patient = configs.pop().unwrap().user_config(serde_json::json!(1));
    configs.push(patient);
    let err = serve.run_configured(app, configs).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constructor);
    assert!(err.to_string().contains("no `reconfigure` method"), "{err}");
}
