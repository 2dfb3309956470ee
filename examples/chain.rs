//! Chaining handle calls: the Ray Serve guide's `chain.py`.
//!
//! The adder's response goes straight into the multiplier call without an `.await`: the runtime
//! waits for the adder, then calls the multiplier with its *value*.
//!
//! ```python
//! # File name: chain.py
//! from ray import serve
//! from ray.serve.handle import DeploymentHandle, DeploymentResponse
//!
//!
//! @serve.deployment
//! class Adder:
//!     def __init__(self, increment: int):
//!         self._increment = increment
//!
//!     def __call__(self, val: int) -> int:
//!         return val + self._increment
//!
//!
//! @serve.deployment
//! class Multiplier:
//!     def __init__(self, multiple: int):
//!         self._multiple = multiple
//!
//!     def __call__(self, val: int) -> int:
//!         return val * self._multiple
//!
//!
//! @serve.deployment
//! class Ingress:
//!     def __init__(self, adder: DeploymentHandle, multiplier: DeploymentHandle):
//!         self._adder = adder
//!         self._multiplier = multiplier
//!
//!     async def __call__(self, input: int) -> int:
//!         adder_response: DeploymentResponse = self._adder.remote(input)
//!         # Pass the adder response directly into the multiplier (no `await` needed).
//!         multiplier_response: DeploymentResponse = self._multiplier.remote(
//!             adder_response
//!         )
//!         # `await` the final chained response.
//!         return await multiplier_response
//!
//!
//! app = Ingress.bind(
//!     Adder.bind(increment=1),
//!     Multiplier.bind(multiple=2),
//! )
//!
//! handle: DeploymentHandle = serve.run(app)
//! response = handle.remote(5)
//! assert response.result() == 12, "(5 + 1) * 2 = 12"
//! ```
//!
//! Run it with `cargo run --example chain`; it prints `12`.

use serve_core::prelude::*;

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment]
impl Adder {
    pub fn new(increment: i32) -> Self {
        Self { increment }
    }

    /// `call` plays Python's `__call__`: `handle.remote(..)` calls it.
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

#[deployment]
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
        let adder_response: DeploymentResponse<i32> = self.adder.remote(input);
        // Pass the adder response directly into the multiplier (no `.await` needed).
        let multiplier_response: DeploymentResponse<i32> = self.multiplier.remote(adder_response);
        // `.await` the final chained response.
        multiplier_response.await
    }
}

fn main() -> Result<(), ServeError> {
    let app = Ingress::bind(Adder::bind(1), Multiplier::bind(2));

    let handle: DeploymentHandle<Ingress> = serve_core::run(app)?;
    let response = handle.remote(5);
    let result = response.result()?;
    assert_eq!(result, 12, "(5 + 1) * 2 = 12");
    println!("{result}");

    serve_core::shutdown();
    Ok(())
}
