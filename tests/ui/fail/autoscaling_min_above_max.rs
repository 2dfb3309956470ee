use serve_core::prelude::*;

#[deployment(autoscaling(min_replicas = 4, max_replicas = 2))]
#[derive(Default)]
pub struct Adder;

fn main() {}
