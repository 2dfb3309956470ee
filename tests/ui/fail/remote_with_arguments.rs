use serve_core::prelude::*;

#[remote(num_cpus = 2)]
pub fn say_hi(name: String) -> String {
    format!("Hi {name}")
}

fn main() {}
