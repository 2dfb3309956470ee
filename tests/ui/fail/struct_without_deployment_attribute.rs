use serve_core::prelude::*;

#[derive(Default)]
pub struct Forgotten;

#[deployment]
impl Forgotten {
    pub fn call(&self) -> u8 {
        1
    }
}

fn main() {}
