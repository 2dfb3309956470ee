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
    pub fn set_increment(&mut self, increment: i32) {
        self.increment = increment;
    }
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
    pub fn describe(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.increment)
    }
}

fn main() {
    // `call` is valid: its stub, the handle and `bind` are generated despite the two errors.
    let handle = serve_core::run(Adder::bind(1)).unwrap();
    let _: DeploymentResponse<i32> = handle.call.remote(5);
    let _: DeploymentResponse<i32> = handle.remote(5);
}
