use serve_core::prelude::*;

#[deployment(autoscaling(max_replicas = 4, max_replicas = 8))]
#[derive(Default)]
pub struct Adder;

fn main() {}
