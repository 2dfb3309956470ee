use serve_core::prelude::*;

#[deployment(autoscaling(min_replicas = 1, max_replica = 4))]
#[derive(Default)]
pub struct Adder;

fn main() {}
