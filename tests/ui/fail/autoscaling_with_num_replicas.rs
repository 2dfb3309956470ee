use serve_core::prelude::*;

#[deployment(num_replicas = 2, autoscaling(min_replicas = 1, max_replicas = 8))]
#[derive(Default)]
pub struct Adder;

fn main() {}
