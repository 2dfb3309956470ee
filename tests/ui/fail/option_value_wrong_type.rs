use serve_core::prelude::*;

#[deployment(num_replicas = "2")]
#[derive(Default)]
pub struct Adder;

fn main() {}
