use serve_core::prelude::*;

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment(num_replicas = 2)]
impl Adder {
    pub fn new(increment: i32) -> Self {
        Self { increment }
    }
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

fn main() {
    // The stubs are still generated: only the misplaced options are reported.
    let handle = serve_core::run(Adder::bind(1)).unwrap();
    let _: DeploymentResponse<i32> = handle.call.remote(5);
}
