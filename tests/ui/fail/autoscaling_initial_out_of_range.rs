use serve_core::prelude::*;

#[deployment(autoscaling(min_replicas = 1, max_replicas = 4, initial_replicas = 5))]
#[derive(Default)]
pub struct Adder;

fn main() {}
