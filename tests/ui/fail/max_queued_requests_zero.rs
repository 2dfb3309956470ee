use serve_core::prelude::*;

#[deployment(max_queued_requests = 0)]
#[derive(Default)]
pub struct Adder;

fn main() {}
