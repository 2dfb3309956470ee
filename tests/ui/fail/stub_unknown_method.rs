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

fn main() {
    let handle = serve_core::run(Adder::bind(1)).unwrap();
    let _ = handle.subtract.remote(5);
}
