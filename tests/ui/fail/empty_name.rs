use serve_core::prelude::*;

#[deployment(name = "")]
#[derive(Default)]
pub struct Adder;

fn main() {}
