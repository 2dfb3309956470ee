//! Converting a response to an object ref and passing it to a task: the Ray Serve guide's
//! `response_to_object_ref.py`.
//!
//! `#[remote]` on a free function is our `@ray.remote`: `say_hi_task.remote(arg)` starts it on the
//! runtime and returns an `ObjectRef<String>`. `response.to_object_ref().await` is Ray's
//! `await response._to_object_ref()` (`.to_object_ref_blocking()` is `_to_object_ref_sync()`).
//!
//! ```python
//! # File name: response_to_object_ref.py
//! import ray
//! from ray import serve
//! from ray.serve.handle import DeploymentHandle, DeploymentResponse
//!
//!
//! @ray.remote
//! def say_hi_task(inp: str):
//!     return f"Ray task got message: '{inp}'"
//!
//!
//! @serve.deployment
//! class SayHi:
//!     def __call__(self) -> str:
//!         return "Hi from Serve deployment"
//!
//!
//! @serve.deployment
//! class Ingress:
//!     def __init__(self, say_hi: DeploymentHandle):
//!         self._say_hi = say_hi
//!
//!     async def __call__(self):
//!         # Make a call to the SayHi deployment and pass the result ref to
//!         # a downstream Ray task.
//!         response: DeploymentResponse = self._say_hi.remote()
//!         response_obj_ref: ray.ObjectRef = await response._to_object_ref()
//!         final_obj_ref: ray.ObjectRef = say_hi_task.remote(response_obj_ref)
//!         return await final_obj_ref
//!
//!
//! app = Ingress.bind(SayHi.bind())
//! handle: DeploymentHandle = serve.run(app)
//! assert handle.remote().result() == "Ray task got message: 'Hi from Serve deployment'"
//! ```
//!
//! Run it with `cargo run --example object_ref`; it prints
//! `Ray task got message: 'Hi from Serve deployment'`.

use serve_core::prelude::*;

/// A task: runs on the runtime's blocking pool (its body is synchronous).
#[remote]
fn say_hi_task(inp: String) -> String {
    format!("Ray task got message: '{inp}'")
}

/// No constructor: a deployment without `new` is built with `Default` and binds with no arguments.
#[deployment]
#[derive(Default)]
pub struct SayHi;

#[deployment]
impl SayHi {
    pub fn call(&self) -> String {
        "Hi from Serve deployment".to_string()
    }
}

#[deployment]
pub struct Ingress {
    say_hi: DeploymentHandle<SayHi>,
}

#[deployment]
impl Ingress {
    pub fn new(say_hi: DeploymentHandle<SayHi>) -> Self {
        Self { say_hi }
    }

    pub async fn call(&self) -> Result<String, ServeError> {
        // Make a call to the SayHi deployment and pass the result ref to a downstream task.
        let response: DeploymentResponse<String> = self.say_hi.remote();
        let response_obj_ref: ObjectRef<String> = response.to_object_ref().await?;
        let final_obj_ref: ObjectRef<String> = say_hi_task.remote(response_obj_ref);
        final_obj_ref.await
    }
}

fn main() -> Result<(), ServeError> {
    let app = Ingress::bind(SayHi::bind());
    let handle: DeploymentHandle<Ingress> = serve_core::run(app)?;

    let message = handle.remote().result()?;
    assert_eq!(message, "Ray task got message: 'Hi from Serve deployment'");
    println!("{message}");

    serve_core::shutdown();
    Ok(())
}
