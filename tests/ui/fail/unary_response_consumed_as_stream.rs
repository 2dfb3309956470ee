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
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
    pub fn count(&self, limit: i32) -> impl Stream<Item = i32> + Send + use<> {
        futures::stream::iter(0..limit)
    }
}

async fn consume(handle: DeploymentHandle<Adder>) {
    let mut items = handle.remote(1);
    let _ = items.next().await;
}

fn main() {}
