use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Summer;

#[deployment]
impl Summer {
    pub async fn sum(&self, numbers: ArgStream<u64>) -> u64 {
        numbers.map(|n| n.unwrap_or(0)).fold(0, |a, b| async move { a + b }).await
    }
}

fn main() {
    let handle = serve_core::run(Summer::bind()).unwrap();
    let _ = handle.sum.remote(5u64);
}
