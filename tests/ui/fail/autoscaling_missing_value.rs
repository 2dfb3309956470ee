use serve_core::prelude::*;

#[deployment(autoscaling(max_replicas, min_replicas = 1))]
#[derive(Default)]
pub struct Adder;

fn main() {}
