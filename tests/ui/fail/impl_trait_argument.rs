use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Greeter;

#[deployment]
impl Greeter {
    pub fn greet(&self, name: impl Into<String>) -> String {
        format!("Hello {}!", name.into())
    }
}

fn main() {}
