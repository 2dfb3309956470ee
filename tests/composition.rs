//! Binding, typed handles and response chaining (issue points 1-5).

use serve_core::prelude::*;
use serve_test_support::{Counter, Gate, PATIENCE, named};

// --- the seed's chain program ---------------------------------------------------------------

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment]
impl Adder {
    pub fn new(increment: i32) -> Self {
        Self { increment }
    }
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

#[deployment]
pub struct Multiplier {
    multiple: i32,
}

#[deployment]
impl Multiplier {
    pub fn new(multiple: i32) -> Self {
        Self { multiple }
    }
    pub fn call(&self, val: i32) -> i32 {
        val * self.multiple
    }
}

#[deployment(num_replicas = 2)]
pub struct Ingress {
    adder: DeploymentHandle<Adder>,
    multiplier: DeploymentHandle<Multiplier>,
}

#[deployment]
impl Ingress {
    pub fn new(adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier>) -> Self {
        Self { adder, multiplier }
    }
    pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
        let added: DeploymentResponse<i32> = self.adder.remote(input);
        self.multiplier.remote(added).await
    }
}

#[test]
fn seed_chain_program_gives_12() {
    let serve = Serve::start().unwrap();
    let app = Ingress::bind(Adder::bind(1), Multiplier::bind(2));
    let handle: DeploymentHandle<Ingress> = serve.run(app).unwrap();
    assert_eq!(handle.remote(5).result().unwrap(), 12);
    assert_eq!(
        handle.call.remote(5).result().unwrap(),
        12,
        "`call` field stub"
    );
    assert_eq!(handle.num_replicas(), 2);
    serve.shutdown();
}

#[test]
fn free_run_uses_the_default_instance() {
    let handle = serve_core::run(Ingress::bind(Adder::bind(10), Multiplier::bind(3))).unwrap();
    assert_eq!(handle.remote(0).result().unwrap(), 30);
}

#[tokio::test]
async fn run_works_inside_a_tokio_runtime_and_handles_are_awaitable() {
    let serve = Serve::start().unwrap();
    let handle = serve
        .run(Ingress::bind(Adder::bind(1), Multiplier::bind(2)))
        .unwrap();
    assert_eq!(handle.remote(5).await.unwrap(), 12);
    let other = serve
        .run_async(Ingress::bind(Adder::bind(2), Multiplier::bind(2)))
        .await
        .unwrap();
    assert_eq!(other.remote(5).await.unwrap(), 14);
    serve.shutdown();
}

#[test]
fn two_instances_run_side_by_side_and_shut_down_separately() {
    let a = Serve::start().unwrap();
    let b = Serve::start().unwrap();
    let ha = a.run(Adder::bind(1)).unwrap();
    let hb = b.run(Adder::bind(100)).unwrap();
    assert_eq!(ha.remote(1).result().unwrap(), 2);
    assert_eq!(hb.remote(1).result().unwrap(), 101);
    a.shutdown();
    let err = ha.remote(1).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShutDown, "{err}");
    assert_eq!(hb.remote(1).result().unwrap(), 101, "b is unaffected");
    b.shutdown();
}

// --- chaining from the outside ----------------------------------------------------------------

#[test]
fn a_response_passed_un_awaited_is_resolved_first() {
    let serve = Serve::start().unwrap();
    let adder = serve.run_with(Adder::bind(1), named("adder")).unwrap();
    let multiplier = serve
        .run_with(Multiplier::bind(10), named("multiplier"))
        .unwrap();
    let added = adder.remote(4);
    assert_eq!(multiplier.remote(added).result().unwrap(), 50);
}

#[test]
fn one_response_feeds_several_calls_and_chains_await_in_any_order() {
    let serve = Serve::start().unwrap();
    let adder = serve.run_with(Adder::bind(1), named("adder")).unwrap();
    let multiplier = serve
        .run_with(Multiplier::bind(10), named("multiplier"))
        .unwrap();

    let a = adder.remote(1); // 2
    let b = multiplier.remote(&a); // 20
    let c = adder.remote(&b); // 21
    let d = multiplier.remote(&a); // 20, shares `a`
    let b2 = b.clone();
    // Await the end of the chain first, then the middle, then the start.
    assert_eq!(c.result_timeout(PATIENCE).unwrap(), 21);
    assert_eq!(b2.result_timeout(PATIENCE).unwrap(), 20);
    assert_eq!(b.result_timeout(PATIENCE).unwrap(), 20);
    assert_eq!(d.result_timeout(PATIENCE).unwrap(), 20);
    assert_eq!(a.result_timeout(PATIENCE).unwrap(), 2);
}

// --- eager dispatch -------------------------------------------------------------------------

#[deployment]
pub struct Signal {
    gate: Gate,
}

#[deployment]
impl Signal {
    pub fn new(gate: Gate) -> Self {
        Self { gate }
    }
    pub fn fire(&self) {
        self.gate.open();
    }
}

#[test]
fn remote_dispatches_at_once_even_if_the_response_is_dropped() {
    let serve = Serve::start().unwrap();
    let gate = Gate::new();
    let handle = serve.run(Signal::bind(gate.clone())).unwrap();
    drop(handle.fire.remote());
    assert!(gate.wait_blocking(), "the un-awaited request ran");
}

// --- upstream failure -------------------------------------------------------------------------

#[derive(Debug)]
pub struct Refused(i32);
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused {}", self.0)
    }
}
impl std::error::Error for Refused {}

#[deployment]
#[derive(Default)]
pub struct Picky;

#[deployment]
impl Picky {
    pub fn call(&self, val: i32) -> Result<i32, Refused> {
        if val < 0 { Err(Refused(val)) } else { Ok(val) }
    }
}

#[deployment]
pub struct Recorder {
    calls: Counter,
}

#[deployment]
impl Recorder {
    pub fn new(calls: Counter) -> Self {
        Self { calls }
    }
    pub fn call(&self, val: i32) -> i32 {
        self.calls.incr();
        val
    }
}

#[test]
fn failed_upstream_never_invokes_downstream_and_the_error_names_it() {
    let serve = Serve::start().unwrap();
    let calls = Counter::new();
    let picky = serve.run_with(Picky::bind(), named("picky")).unwrap();
    let recorder = serve
        .run_with(Recorder::bind(calls.clone()), named("recorder"))
        .unwrap();

    let err = recorder.remote(picky.remote(-3)).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Upstream);
    let text = err.to_string();
    assert!(text.contains("Picky.call"), "names the upstream: {text}");
    assert!(
        text.contains("Recorder.call"),
        "names the downstream: {text}"
    );
    assert_eq!(err.downcast_ref::<Refused>().map(|r| r.0), Some(-3));

    assert_eq!(recorder.remote(picky.remote(3)).result().unwrap(), 3);
    assert_eq!(calls.get(), 1, "only the call with a good argument ran");
}

// --- binding: shared deployments and names ----------------------------------------------------

#[deployment(name = "Inner")]
pub struct InnerA {
    built: Counter,
}

#[deployment]
impl InnerA {
    pub fn new(built: Counter) -> Self {
        built.incr();
        Self { built }
    }
    pub fn constructed(&self) -> usize {
        self.built.get()
    }
}

#[deployment(name = "Inner")]
#[derive(Default)]
pub struct InnerB;

#[deployment]
impl InnerB {
    pub fn ping(&self) -> String {
        "pong".into()
    }
}

#[deployment]
pub struct Pair {
    left: DeploymentHandle<InnerA>,
    right: DeploymentHandle<InnerA>,
    other: DeploymentHandle<InnerB>,
}

#[deployment]
impl Pair {
    pub fn new(
        left: DeploymentHandle<InnerA>,
        right: DeploymentHandle<InnerA>,
        other: DeploymentHandle<InnerB>,
    ) -> Self {
        Self { left, right, other }
    }
    pub fn names(&self) -> Vec<String> {
        vec![
            self.left.deployment_name().to_owned(),
            self.right.deployment_name().to_owned(),
            self.other.deployment_name().to_owned(),
        ]
    }
    pub async fn constructed(&self) -> Result<usize, ServeError> {
        self.left.constructed.remote().await
    }
}

#[test]
fn a_shared_application_is_one_deployment_and_same_names_are_made_unique() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let inner = InnerA::bind(built.clone());
    let pair = serve
        .run(Pair::bind(inner.clone(), inner, InnerB::bind()))
        .unwrap();
    let names = pair.names.remote().result().unwrap();
    assert_eq!(names[0], names[1], "both parents got the same deployment");
    assert_eq!(names[0], "Inner");
    assert_eq!(
        names[2], "Inner_1",
        "a different deployment with the same name"
    );
    assert_eq!(built.get(), 1, "constructed once");
    assert_eq!(pair.constructed.remote().result().unwrap(), 1);
}

// --- constructors -----------------------------------------------------------------------------

#[deployment]
pub struct Model {
    weights: Vec<f32>,
}

#[deployment]
impl Model {
    pub async fn new(size: usize) -> Result<Self, std::io::Error> {
        if size == 0 {
            return Err(std::io::Error::other("no weights to load"));
        }
        Ok(Self {
            weights: vec![0.5; size],
        })
    }
    pub fn size(&self) -> usize {
        self.weights.len()
    }
}

#[test]
fn async_fallible_constructors_work_and_their_error_fails_run() {
    let serve = Serve::start().unwrap();
    let model = serve.run(Model::bind(3)).unwrap();
    assert_eq!(model.size.remote().result().unwrap(), 3);

    let err = serve.run(Model::bind(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constructor);
    assert_eq!(err.deployment(), Some("Model"));
    assert!(err.to_string().contains("no weights to load"), "{err}");
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

#[deployment(num_replicas = 3)]
pub struct Fragile {
    _id: usize,
}

#[deployment]
impl Fragile {
    pub fn new(built: Counter) -> Self {
        let id = built.incr();
        if id >= 2 {
            panic!("replica {id} failed to load");
        }
        Self { _id: id }
    }
    pub fn ping(&self) {}
}

#[test]
fn a_panicking_constructor_fails_run_with_its_message() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let err = serve.run(Fragile::bind(built.clone())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constructor);
    assert!(err.to_string().contains("failed to load"), "{err}");
    // Two replicas built; the third tried until min(3 * 3, 20) = 9 constructions failed.
    assert_eq!(built.get(), 2 + 9);
    assert!(serve.status().is_empty(), "nothing stays deployed");
}

// --- handle and application traits --------------------------------------------------------------

fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}

#[test]
fn handles_responses_and_applications_are_clone_send_sync() {
    assert_clone_send_sync::<DeploymentHandle<Ingress>>();
    assert_clone_send_sync::<Application<Ingress>>();
    assert_clone_send_sync::<DeploymentResponse<i32>>();
    assert_clone_send_sync::<ObjectRef<String>>();
    fn assert_send<T: Send + 'static>() {}
    assert_send::<DeploymentResponseGenerator<u32>>();
}

#[test]
fn a_handle_can_be_shared_by_many_threads() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Adder::bind(1)).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let handle = handle.clone();
            s.spawn(move || {
                for i in 0..50 {
                    assert_eq!(
                        handle.remote(t * 100 + i).result().unwrap(),
                        t * 100 + i + 1
                    );
                }
            });
        }
    });
}
