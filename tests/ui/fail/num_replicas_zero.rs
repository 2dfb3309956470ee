use serve_core::prelude::*;

#[deployment(num_replicas = 0)]
#[derive(Default)]
pub struct Adder;

fn main() {}
