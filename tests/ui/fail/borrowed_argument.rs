use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Greeter;

#[deployment]
impl Greeter {
    pub fn greet(&self, name: &str) -> String {
        format!("Hello {name}!")
    }
}

fn main() {}
