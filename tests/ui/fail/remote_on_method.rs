use serve_core::prelude::*;

pub struct Greeter;

impl Greeter {
    #[remote]
    pub fn greet(&self, name: String) -> String {
        format!("Hi {name}")
    }
}

fn main() {
    let _ = Greeter.greet(String::from("Dora"));
}
