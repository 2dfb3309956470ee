use serve_core::prelude::*;

#[deployment(num_cpus = -0.5, num_gpus = -1, resources(a100 = -2))]
#[derive(Default)]
pub struct Adder;

fn main() {}
