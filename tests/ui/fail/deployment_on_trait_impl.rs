use serve_core::prelude::*;

#[deployment]
#[derive(Clone)]
pub struct Greeter;

pub trait Greet {
    fn greet(&self, name: String) -> String;
}

#[deployment]
impl Greet for Greeter {
    fn greet(&self, name: String) -> String {
        format!("Hello {name}!")
    }
}

fn main() {}
