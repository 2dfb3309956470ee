use serve_core::prelude::*;

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment]
impl Adder {
    pub fn new(increment: i32) -> Option<Self> {
        Some(Self { increment })
    }
    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

fn main() {}
