use serve_core::prelude::*;

#[deployment(resources(CPU = 1, GPU = 1, "" = 1))]
#[derive(Default)]
pub struct Adder;

fn main() {}
