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

#[deployment]
#[derive(Default)]
pub struct Namer;

#[deployment]
impl Namer {
    pub fn call(&self) -> String {
        "x".into()
    }
}

fn main() {
    let adder = serve_core::run(Adder::bind(1)).unwrap();
    let namer = serve_core::run(Namer::bind()).unwrap();
    let _ = adder.remote(namer.remote());
}
