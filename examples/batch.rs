//! Dynamic batching (`#[batch]`): a toy embedding model, a dense layer `y = relu(x · W)` whose
//! 1024 × 1024 weights are quantized to 4 bits (two per byte, a scale per row, as quantized LLM
//! weights are), served batched and unbatched under the same load.
//!
//! The layer dequantizes each row of `W` to `f32` and multiplies every item of the call by it:
//! the dequantization (unpacking, converting and scaling 1M weights) is paid once per call,
//! whatever the number of items. Unbatched, each item pays it; batched, 32 items share it. Both
//! models run the same function; only the number of items per call differs. Callers see none of
//! it: `model.embed.remote(x)` takes one vector and returns one.
//!
//! `cargo run --release --example batch [-- --seconds N]` keeps 64 calls in flight on each model
//! for N seconds (default 2) and prints the items per second of both and their ratio;
//! `benches/batch.rs` runs the same comparison as a benchmark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serve_core::RunOptions;
use serve_core::futures::StreamExt;
use serve_core::futures::stream::FuturesUnordered;
use serve_core::prelude::*;

/// The input width.
pub const D: usize = 1024;
/// The output width.
pub const H: usize = 1024;
/// Calls kept in flight by the load generator.
pub const IN_FLIGHT: usize = 64;

/// The layer's weights: row `k` of `W` is `H / 2` bytes of two 4-bit weights each (`w = (q - 8)
/// · scale[k]`), shared by every replica of a process.
#[derive(Clone)]
pub struct Weights {
    packed: Arc<Vec<u8>>,
    scales: Arc<Vec<f32>>,
}

impl Weights {
    /// Deterministic pseudo-random weights.
    pub fn new() -> Self {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let packed = (0..D * H / 2)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        let scales = (0..D).map(|k| 0.01 + (k % 7) as f32 * 0.001).collect();
        Weights {
            packed: Arc::new(packed),
            scales: Arc::new(scales),
        }
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self::new()
    }
}

/// `relu(x · W)` for each row `x` of `xs`: each row of `W` is dequantized once, then used for
/// every item, so a call costs one dequantization of `W` plus one multiply-add per weight and
/// item.
pub fn dense(w: &Weights, xs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut out = vec![vec![0.0f32; H]; xs.len()];
    let mut row = vec![0.0f32; H];
    for (k, packed) in w.packed.chunks_exact(H / 2).enumerate() {
        let scale = w.scales[k];
        for (pair, byte) in row.chunks_exact_mut(2).zip(packed) {
            pair[0] = ((byte & 15) as f32 - 8.0) * scale;
            pair[1] = ((byte >> 4) as f32 - 8.0) * scale;
        }
        for (x, y) in xs.iter().zip(out.iter_mut()) {
            let a = x[k];
            for (y, w) in y.iter_mut().zip(&row) {
                *y += a * w;
            }
        }
    }
    for y in out.iter_mut().flatten() {
        *y = y.max(0.0);
    }
    out
}

/// An input vector derived from `seed`.
pub fn input(seed: u32) -> Vec<f32> {
    (0..D)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect()
}

/// The model served batched: up to 32 items per multiply, two batches at a time (one per core).
#[deployment(max_ongoing_requests = 64)]
pub struct BatchedModel {
    weights: Weights,
}

#[deployment]
impl BatchedModel {
    pub fn new(weights: Weights) -> Self {
        Self { weights }
    }

    /// One vector in, one embedding out; the runtime groups concurrent calls.
    #[batch(
        max_batch_size = 32,
        batch_wait_timeout_s = 0.002,
        max_concurrent_batches = 2
    )]
    pub fn embed(&self, xs: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        dense(&self.weights, &xs)
    }
}

/// The same model, one item per call.
#[deployment(max_ongoing_requests = 64)]
pub struct PlainModel {
    weights: Weights,
}

#[deployment]
impl PlainModel {
    pub fn new(weights: Weights) -> Self {
        Self { weights }
    }

    pub fn embed(&self, x: Vec<f32>) -> Vec<f32> {
        dense(&self.weights, std::slice::from_ref(&x)).remove(0)
    }
}

/// Keeps [`IN_FLIGHT`] calls of `call` in flight for `time`; returns the calls completed per
/// second. Every answer is checked to have `H` values.
pub async fn load<F>(time: Duration, call: F) -> f64
where
    F: Fn(u32) -> DeploymentResponse<Vec<f32>>,
{
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0u32;
    let mut done = 0u64;
    while in_flight.len() < IN_FLIGHT {
        in_flight.push(call(sent));
        sent += 1;
    }
    while let Some(result) = in_flight.next().await {
        assert_eq!(result.expect("the model answers").len(), H);
        done += 1;
        if start.elapsed() < time {
            in_flight.push(call(sent));
            sent += 1;
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// Items per second of the batched and the unbatched model under the same load, in one instance.
pub fn compare(time: Duration) -> Result<(f64, f64), ServeError> {
    let serve = Serve::start()?;
    let weights = Weights::new();
    // Two applications side by side: each has its own name.
    let batched = serve.run_with(
        BatchedModel::bind(weights.clone()),
        RunOptions::named("batched"),
    )?;
    let plain = serve.run_with(PlainModel::bind(weights), RunOptions::named("plain"))?;

    // Both give the same embedding for the same input.
    assert_eq!(
        batched.embed.remote(input(7)).result()?,
        plain.embed.remote(input(7)).result()?
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the load generator");
    let warm_up = time / 5;
    rt.block_on(load(warm_up, |i| plain.embed.remote(input(i))));
    let plain_rate = rt.block_on(load(time, |i| plain.embed.remote(input(i))));
    rt.block_on(load(warm_up, |i| batched.embed.remote(input(i))));
    let batched_rate = rt.block_on(load(time, |i| batched.embed.remote(input(i))));
    serve.shutdown();
    Ok((batched_rate, plain_rate))
}

#[allow(dead_code)] // `benches/batch.rs` includes this file for `compare`
fn main() -> Result<(), ServeError> {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse::<f64>().ok())
        .unwrap_or(2.0);
    let (batched, plain) = compare(Duration::from_secs_f64(seconds))?;
    println!("unbatched: {plain:>8.0} items/s");
    println!("batched:   {batched:>8.0} items/s");
    println!("batched / unbatched: {:.1}x", batched / plain);
    Ok(())
}
