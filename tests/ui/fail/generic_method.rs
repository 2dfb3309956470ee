use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Echo;

#[deployment]
impl Echo {
    pub fn echo<T>(&self, value: T) -> T {
        value
    }
}

fn main() {}
