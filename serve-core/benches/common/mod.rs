//! Deployments shared by the benchmarks (`handle.rs`, `instructions.rs`, `chain.rs`,
//! `stream.rs`), so they time the same code. Each bench uses some of them.
#![allow(dead_code)]

use serve_core::prelude::*;

/// One-replica echo, `async fn` endpoint.
#[deployment]
#[derive(Default)]
pub struct AsyncEcho;

#[deployment]
impl AsyncEcho {
    pub async fn call(&self, x: u64) -> u64 {
        x + 1
    }
}

/// One-replica echo, sync `fn` endpoint (on the blocking pool at first, then in place).
#[deployment]
#[derive(Default)]
pub struct SyncEcho;

#[deployment]
impl SyncEcho {
    pub fn call(&self, x: u64) -> u64 {
        x + 1
    }
}

/// The seed's leaves as written: sync `Adder` and `Multiplier`.

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

/// The seed's chain as written: `Ingress` (2 replicas) -> `Adder`, then `Multiplier`.
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

/// The seed's chain with async leaves: `AsyncIngress` (2 replicas) -> `AsyncAdder`, then
/// `AsyncMultiplier`.

#[deployment]
pub struct AsyncAdder {
    increment: i32,
}

#[deployment]
impl AsyncAdder {
    pub fn new(increment: i32) -> Self {
        Self { increment }
    }
    pub async fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

#[deployment]
pub struct AsyncMultiplier {
    multiple: i32,
}

#[deployment]
impl AsyncMultiplier {
    pub fn new(multiple: i32) -> Self {
        Self { multiple }
    }
    pub async fn call(&self, val: i32) -> i32 {
        val * self.multiple
    }
}

#[deployment(num_replicas = 2)]
pub struct AsyncIngress {
    adder: DeploymentHandle<AsyncAdder>,
    multiplier: DeploymentHandle<AsyncMultiplier>,
}

#[deployment]
impl AsyncIngress {
    pub fn new(
        adder: DeploymentHandle<AsyncAdder>,
        multiplier: DeploymentHandle<AsyncMultiplier>,
    ) -> Self {
        Self { adder, multiplier }
    }
    pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
        let added: DeploymentResponse<i32> = self.adder.remote(input);
        self.multiplier.remote(added).await
    }
}

/// The seed's stream app (`examples/stream.rs`): `Caller` re-streams `Streamer`'s `0..limit`.
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
            let mut items: DeploymentResponseGenerator<u32> = self.streamer.remote(limit);
            while let Some(i) = items.next().await {
                yield i?;
            }
        }
    }
}

/// A stage of a streaming pipeline (streams into streams): adds `increment` to each item of its
/// input stream, as it arrives. `Streamer -> Shift(1) -> Shift(-1)` (two applications of it,
/// named apart) gives back `0..limit`.
#[deployment]
pub struct Shift {
    increment: i64,
}

#[deployment]
impl Shift {
    pub fn new(increment: i64) -> Self {
        Self { increment }
    }

    pub fn call(
        &self,
        mut items: ArgStream<u32>,
    ) -> impl Stream<Item = Result<u32, ServeError>> + Send + '_ {
        try_stream! {
            while let Some(i) = items.next().await {
                yield (i64::from(i?) + self.increment) as u32;
            }
        }
    }
}
