use serve_core::prelude::*;

#[remote]
pub fn say_hi(name: &str) -> String {
    format!("Hi {name}")
}

fn main() {}
