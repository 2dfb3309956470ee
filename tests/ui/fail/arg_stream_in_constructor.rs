use serve_core::prelude::*;

#[deployment]
pub struct Model {
    warmup: Vec<u32>,
}

#[deployment]
impl Model {
    pub fn new(warmup: ArgStream<u32>) -> Self {
        let _ = warmup;
        Self { warmup: Vec::new() }
    }
    pub fn call(&self, x: u32) -> u32 {
        x + self.warmup.len() as u32
    }
}

fn main() {}
