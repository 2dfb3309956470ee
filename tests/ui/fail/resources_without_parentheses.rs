use serve_core::prelude::*;

#[deployment(resources = 1)]
#[derive(Default)]
pub struct Adder;

fn main() {}
