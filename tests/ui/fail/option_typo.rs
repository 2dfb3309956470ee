use serve_core::prelude::*;

#[deployment(num_replica = 2)]
#[derive(Default)]
pub struct Adder;

fn main() {}
