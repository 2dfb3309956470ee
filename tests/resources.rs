//! Resources (issue 4, point 7): replicas reserve CPUs, GPUs and custom resources from their
//! instance, never over-packed; those that do not fit stay pending (and are reported so) until a
//! reservation is given back; a replica knows the CPU and GPU ids it was given.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use serve_core::prelude::*;
use serve_core::{AutoscalingConfig, DeploymentUpdate};
use serve_test_support::{Gate, PATIENCE, deployment_status, named, wait_for_deployment};

/// What a replica's constructor saw in its replica context.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    replica: usize,
    cpus: Vec<usize>,
    gpus: Vec<usize>,
    asked: (f64, f64),
    request_id: String,
}

impl Given {
    fn now() -> Self {
        let ctx =
            serve_core::replica_context().expect("a constructor runs in its replica's context");
        Given {
            replica: ctx.replica_id(),
            cpus: ctx.cpu_ids().to_vec(),
            gpus: ctx.gpu_ids().to_vec(),
            asked: (ctx.resources().num_cpus, ctx.resources().num_gpus),
            request_id: ctx.request_id(),
        }
    }
}

/// The constructors that ran, in order; the test waits on it (a signal, not a sleep).
#[derive(Clone, Default)]
pub struct Started(Arc<(Mutex<Vec<Given>>, Condvar)>);

impl Started {
    fn record(&self, given: Given) {
        self.0.0.lock().unwrap().push(given);
        self.0.1.notify_all();
    }

    fn now(&self) -> Vec<Given> {
        let mut given = self.0.0.lock().unwrap().clone();
        given.sort_by_key(|g| g.replica);
        given
    }

    /// Blocks until `n` constructors ran (up to `PATIENCE`).
    fn wait_for(&self, n: usize) -> Vec<Given> {
        let guard = self.0.0.lock().unwrap();
        let (guard, _) = self
            .0
            .1
            .wait_timeout_while(guard, PATIENCE, |given| given.len() < n)
            .unwrap();
        assert!(guard.len() >= n, "only {} replica(s) started", guard.len());
        drop(guard);
        self.now()
    }
}

#[deployment(num_replicas = 3, num_gpus = 1)]
pub struct GpuModel {
    given: Given,
}

#[deployment]
impl GpuModel {
    /// A sync constructor (on the blocking pool): where a model loader pins itself.
    pub fn new(started: Started) -> Self {
        let given = Given::now();
        started.record(given.clone());
        Self { given }
    }

    /// The replica and the ids the method sees.
    pub fn call(&self) -> (usize, Vec<usize>, Vec<usize>) {
        let ctx = serve_core::replica_context().unwrap();
        assert_eq!(ctx.gpu_ids(), self.given.gpus, "the same ids as in `new`");
        (
            ctx.replica_id(),
            ctx.gpu_ids().to_vec(),
            ctx.cpu_ids().to_vec(),
        )
    }
}

#[deployment(num_replicas = 2, num_cpus = 2)]
pub struct CpuModel;

#[deployment]
impl CpuModel {
    /// An async constructor sees its replica too.
    pub async fn new(started: Started) -> Self {
        tokio::task::yield_now().await;
        started.record(Given::now());
        CpuModel
    }

    pub async fn call(&self) -> Vec<usize> {
        serve_core::replica_context().unwrap().cpu_ids().to_vec()
    }
}

#[deployment(num_replicas = 2, num_gpus = 1, num_cpus = 0.5)]
#[derive(Default)]
pub struct Holder;

#[deployment]
impl Holder {
    pub fn call(&self) -> Vec<usize> {
        serve_core::replica_context().unwrap().gpu_ids().to_vec()
    }
}

#[deployment(num_gpus = 1, num_cpus = 0)]
pub struct Sleeper {
    release: Gate,
}

#[deployment]
impl Sleeper {
    pub fn new(release: Gate) -> Self {
        Self { release }
    }
    pub async fn call(&self) {
        self.release.wait().await;
    }
}

#[deployment(resources(a100 = 1))]
#[derive(Default)]
pub struct NeedsA100;

#[deployment]
impl NeedsA100 {
    pub fn call(&self) {}
}

#[deployment(num_cpus = 0.25)]
pub struct Front {
    _model: DeploymentHandle<NeedsA100>,
}

#[deployment]
impl Front {
    pub fn new(model: DeploymentHandle<NeedsA100>) -> Self {
        Self { _model: model }
    }
    pub fn call(&self) {}
}

/// Runs `app` with its root deployment's config changed by `change`, as the application named
/// after its root deployment (so that several run side by side).
fn run_with<D: serve_core::Deployment>(
    serve: &Serve,
    app: Application<D>,
    change: impl FnOnce(DeploymentConfig) -> DeploymentConfig,
) -> Result<DeploymentHandle<D>, ServeError> {
    let mut configs = app.deployment_configs();
    let root = configs.pop().unwrap();
    let options = serve_core::RunOptions::named(root.name.clone());
    configs.push(change(root));
    serve.run_with(app, options.deployment_configs(configs))
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines of this test binary (one global subscriber, shared by its tests).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    })
}

#[test]
fn gpu_replicas_get_distinct_gpus_and_the_one_that_does_not_fit_is_pending() {
    let logs = logs();
    let serve = Serve::builder()
        .num_cpus(2.0)
        .num_gpus(2.0)
        .start()
        .unwrap();
    let started = Started::default();
    let handle = serve.run(GpuModel::bind(started.clone())).unwrap();

    // `run` returned with the two replicas that fit; their constructors saw what they were given.
    let given = started.now();
    assert_eq!(
        given,
        [
            Given {
                replica: 0,
                cpus: vec![0],
                gpus: vec![0],
                asked: (1.0, 1.0),
                request_id: String::new(),
            },
            Given {
                replica: 1,
                cpus: vec![1],
                gpus: vec![1],
                asked: (1.0, 1.0),
                request_id: String::new(),
            },
        ]
    );

    // The third is pending, and reported so.
    let status = deployment_status(&serve, "GpuModel");
    assert_eq!(
        (
            status.num_replicas,
            status.pending_replicas,
            status.target_replicas
        ),
        (2, 1, 3),
        "{status:?}"
    );
    assert_eq!(status.status, "UPSCALING");
    let message = status.message.unwrap();
    assert!(message.contains("1 replica(s) pending"), "{message}");
    assert!(message.contains("GPU: needs 1, free 0"), "{message}");
    let free = serve.available_resources();
    assert_eq!((free.num_cpus, free.num_gpus), (Some(0.0), 0.0));
    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("deployment=GpuModel"))
        .unwrap_or_else(|| panic!("no warning about the pending replica:\n{log}"));
    assert!(
        warning.contains("1 of 3 replica(s) are pending") && warning.contains("GPU: needs 1"),
        "{warning}"
    );

    // Methods see the same ids as their constructor did.
    for _ in 0..20 {
        let (replica, gpus, cpus) = handle.remote().result().unwrap();
        assert_eq!(gpus, given[replica].gpus);
        assert_eq!(cpus, given[replica].cpus);
    }
    assert_eq!(started.now().len(), 2, "nothing else was constructed");
}

#[test]
fn a_pending_replica_starts_when_another_application_gives_its_gpu_back() {
    let serve = Serve::builder()
        .num_cpus(2.0)
        .num_gpus(2.0)
        .start()
        .unwrap();
    let holder = serve.run_with(Holder::bind(), named("holder")).unwrap();
    let started = Started::default();
    let model = run_with(&serve, GpuModel::bind(started.clone()), |c| {
        c.num_replicas(2).num_cpus(0.5)
    })
    .unwrap();

    // Both GPUs are the holder's: the model runs no replica, and a call waits in its queue.
    let status = deployment_status(&serve, "GpuModel");
    assert_eq!((status.num_replicas, status.pending_replicas), (0, 2));
    let waiting = model.remote();
    assert_eq!(deployment_status(&serve, "GpuModel").queued_requests, 1);
    assert!(started.now().is_empty());

    // The holder scales down: the GPU its replica held goes to one pending replica.
    serve
        .update_deployment("Holder", DeploymentUpdate::new().num_replicas(1))
        .unwrap();
    let given = started.wait_for(1);
    let kept = holder.remote().result().unwrap();
    assert_eq!(given.len(), 1);
    assert_eq!(given[0].gpus.len(), 1);
    assert_ne!(given[0].gpus, kept, "never the GPU the holder still holds");

    // The queued call ran on it; the other replica is still pending.
    let (replica, gpus, _) = waiting.result_timeout(PATIENCE).unwrap();
    assert_eq!((replica, gpus), (given[0].replica, given[0].gpus.clone()));
    let status = deployment_status(&serve, "GpuModel");
    assert_eq!(
        (status.num_replicas, status.pending_replicas),
        (1, 1),
        "{status:?}"
    );
    assert_eq!(serve.available_resources().num_gpus, 0.0);
}

#[test]
fn a_pending_replica_starts_when_another_application_scales_to_zero() {
    let serve = Serve::builder().num_gpus(1.0).start().unwrap();
    let release = Gate::new();
    let sleeper = run_with(&serve, Sleeper::bind(release.clone()), |c| {
        c.autoscaling(
            AutoscalingConfig::default()
                .min_replicas(0)
                .max_replicas(1)
                .initial_replicas(1)
                .target_ongoing_requests(1.0)
                .metrics_interval_s(0.02)
                .look_back_period_s(0.1)
                .upscale_delay_s(0.1)
                .downscale_delay_s(0.2),
        )
    })
    .unwrap();
    // A request in flight keeps the sleeper at one replica, holding the only GPU.
    let busy = sleeper.remote();
    let started = Started::default();
    let model = run_with(&serve, GpuModel::bind(started.clone()), |c| {
        c.num_replicas(1)
    })
    .unwrap();
    assert_eq!(deployment_status(&serve, "GpuModel").pending_replicas, 1);

    release.open();
    busy.result_timeout(PATIENCE).unwrap();
    // Idle, the sleeper scales to zero; its GPU goes to the pending replica.
    let given = started.wait_for(1);
    assert_eq!(given[0].gpus, [0]);
    assert_eq!(model.remote().result_timeout(PATIENCE).unwrap().1, [0]);
    wait_for_deployment(&serve, "Sleeper", "the sleeper at zero", |d| {
        d.num_replicas == 0
    });
    let status = deployment_status(&serve, "GpuModel");
    assert_eq!((status.num_replicas, status.pending_replicas), (1, 0));
}

#[test]
fn whole_cpus_get_their_own_cpu_ids_and_async_constructors_see_them() {
    let serve = Serve::builder().num_cpus(4.0).start().unwrap();
    let started = Started::default();
    let handle = serve.run(CpuModel::bind(started.clone())).unwrap();
    let given = started.now();
    let cpus: Vec<_> = given.iter().map(|g| g.cpus.clone()).collect();
    assert_eq!(cpus, [vec![0, 1], vec![2, 3]]);
    assert!(
        given
            .iter()
            .all(|g| g.gpus.is_empty() && g.asked == (2.0, 0.0))
    );
    let seen = handle.remote().result().unwrap();
    assert!(cpus.contains(&seen), "{seen:?}");
    assert_eq!(serve.available_resources().num_cpus, Some(0.0));
}

#[test]
fn a_replica_that_could_never_fit_fails_run_and_deploys_nothing() {
    let serve = Serve::builder().num_gpus(0.0).start().unwrap();
    let err = serve.run(GpuModel::bind(Started::default())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Runtime);
    let message = err.to_string();
    assert!(message.contains("GpuModel"), "{message}");
    assert!(
        message.contains("GPU: needs 1, the instance has 0"),
        "{message}"
    );
    assert!(message.contains("Serve::builder()"), "{message}");

    // A parent that fits is not deployed either when its child could never fit.
    let serve = Serve::builder()
        .num_cpus(1.0)
        .resource("a100", 0.5)
        .start()
        .unwrap();
    let err = serve.run(Front::bind(NeedsA100::bind())).unwrap_err();
    assert!(
        err.to_string()
            .contains("a100: needs 1, the instance has 0.5"),
        "{err}"
    );
    assert!(serve.status().is_empty());
    assert_eq!(serve.available_resources(), serve.total_resources());
}

#[test]
fn by_default_cpus_are_not_limited_and_gpus_are_detected() {
    let serve = Serve::start().unwrap();
    let total = serve.total_resources();
    assert_eq!(total.num_cpus, None);
    assert_eq!(total.num_gpus, serve_core::resources::detect_gpus() as f64);
    assert!(total.custom.is_empty());
    // More one-CPU replicas than the machine has cores all run (tasks of one process).
    let started = Started::default();
    let cores = serve_core::resources::detect_cpus();
    run_with(&serve, GpuModel::bind(started.clone()), |c| {
        c.num_replicas(cores + 1).num_gpus(0.0)
    })
    .unwrap();
    let given = started.now();
    assert_eq!(given.len(), cores + 1);
    assert!(
        given
            .iter()
            .all(|g| g.cpus.is_empty() && g.asked == (1.0, 0.0))
    );
    assert_eq!(deployment_status(&serve, "GpuModel").pending_replicas, 0);
}

#[test]
fn the_builder_checks_its_amounts() {
    for (builder, expected) in [
        (
            Serve::builder().num_cpus(-1.0),
            "`num_cpus` must be a number of at least 0, not -1",
        ),
        (
            Serve::builder().num_gpus(f64::NAN),
            "`num_gpus` must be a number of at least 0, not NaN",
        ),
        (
            Serve::builder().resource("GPU", 1.0),
            "`resources`: `GPU` is not a custom resource: use `num_gpus`",
        ),
        (
            Serve::builder().resource("a100", -2.0),
            "`resources.a100` must be a number of at least 0, not -2",
        ),
        (
            Serve::builder().num_gpus(1e9),
            "`num_gpus` must be at most 65536, not 1000000000",
        ),
    ] {
        let err = builder.start().unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let serve = Serve::builder()
        .num_cpus(2.5)
        .num_gpus(1.0)
        .resource("a100", 4.0)
        .start()
        .unwrap();
    let total = serve.total_resources();
    assert_eq!(
        (total.num_cpus, total.num_gpus, total.custom["a100"]),
        (Some(2.5), 1.0, 4.0)
    );
}
