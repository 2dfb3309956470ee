use serve_core::prelude::*;

#[deployment]
pub fn greet(name: String) -> String {
    format!("Hello {name}!")
}

fn main() {
    let _ = greet(String::from("Dora"));
}
