use serve_core::prelude::*;

#[deployment(autoscaling(min_replicas = 2))]
#[derive(Default)]
pub struct Adder;

fn main() {}
