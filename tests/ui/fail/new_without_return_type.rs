use serve_core::prelude::*;

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment]
impl Adder {
    pub fn new(increment: i32) {
        let _ = increment;
    }
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

fn main() {}
