use serve_core::prelude::*;

#[deployment(num_replicas)]
#[derive(Default)]
pub struct Adder;

fn main() {}
