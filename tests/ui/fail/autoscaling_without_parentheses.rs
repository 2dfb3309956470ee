use serve_core::prelude::*;

#[deployment(autoscaling = true)]
#[derive(Default)]
pub struct Adder;

fn main() {}
