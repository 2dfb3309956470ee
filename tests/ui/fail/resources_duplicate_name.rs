use serve_core::prelude::*;

#[deployment(resources(a100 = 1, "a100" = 2))]
#[derive(Default)]
pub struct Adder;

fn main() {}
