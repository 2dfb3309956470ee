use serve_core::prelude::*;

#[deployment(num_cpus = 1e999)]
#[derive(Default)]
pub struct Adder;

fn main() {}
