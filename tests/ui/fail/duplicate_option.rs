use serve_core::prelude::*;

#[deployment(num_replicas = 2, max_ongoing_requests = 10, num_replicas = 3)]
#[derive(Default)]
pub struct Adder;

fn main() {}
