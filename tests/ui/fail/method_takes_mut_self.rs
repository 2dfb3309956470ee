use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[deployment]
impl Counter {
    pub fn increment(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}

fn main() {}
