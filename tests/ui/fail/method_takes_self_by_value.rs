use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[deployment]
impl Counter {
    pub fn into_count(self) -> u64 {
        self.count
    }
}

fn main() {}
