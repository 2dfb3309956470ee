use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Counter;

#[deployment]
impl Counter {
    pub fn count(&self, items: ArgStream<u32>) -> usize {
        let _ = items;
        0
    }
}

fn main() {}
