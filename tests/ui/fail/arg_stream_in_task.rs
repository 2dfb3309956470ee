use serve_core::prelude::*;

#[remote]
pub async fn total(numbers: ArgStream<u64>) -> u64 {
    numbers.map(|n| n.unwrap_or(0)).fold(0, |a, b| async move { a + b }).await
}

fn main() {}
