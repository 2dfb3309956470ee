use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Greeter;

#[deployment]
impl Greeter {
    pub fn bind() -> Self {
        Greeter
    }
    pub fn greet(&self, name: String) -> String {
        format!("Hello {name}!")
    }
}

fn main() {}
