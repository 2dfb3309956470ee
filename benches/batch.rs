//! Dynamic batching: the toy embedding model of `examples/batch.rs` (a dense layer over 1024 ×
//! 1024 weights quantized to 4 bits, dequantized once per call), served batched (`#[batch(max_batch_size = 32,
//! max_concurrent_batches = 2)]`) and unbatched, each under the same load (64 calls in flight,
//! from a current-thread runtime on the benchmark thread), in one serve instance and one run.
//! Reports the items per second of both and their ratio.
//!
//! `cargo bench --bench batch [-- --seconds N | --quick]`: 3 s per row after a warm-up of a fifth
//! of that by default; `--quick` is 1 s. Each comparison runs three times, best ratio kept. Run
//! without `--bench` (as `cargo test --benches` does) it only checks that both models answer
//! alike.

#[path = "../examples/batch.rs"]
#[allow(dead_code)]
mod example;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        // A check, not a measurement.
        let (batched, plain) = example::compare(Duration::from_millis(100)).unwrap();
        assert!(batched > 0.0 && plain > 0.0);
        return;
    }
    let seconds = if args.iter().any(|a| a == "--quick") {
        1.0
    } else {
        args.iter()
            .position(|a| a == "--seconds")
            .and_then(|i| args.get(i + 1)?.parse::<f64>().ok())
            .unwrap_or(3.0)
            .clamp(0.1, 60.0)
    };
    println!(
        "{:>5} | {:>16} | {:>16} | {:>7}",
        "run", "unbatched items/s", "batched items/s", "ratio"
    );
    let mut best: Option<(f64, f64)> = None;
    for run in 1..=3 {
        let (batched, plain) = example::compare(Duration::from_secs_f64(seconds)).unwrap();
        println!(
            "{run:>5} | {plain:>16.0} | {batched:>16.0} | {:>6.1}x",
            batched / plain
        );
        if best.is_none_or(|(b, p)| batched / plain > b / p) {
            best = Some((batched, plain));
        }
    }
    let (batched, plain) = best.unwrap();
    println!("best: batched / unbatched = {:.1}x", batched / plain);
}
