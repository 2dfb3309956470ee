use serve_core::prelude::*;

#[deployment(max_ongoing_requests = 0)]
#[derive(Default)]
pub struct Adder;

fn main() {}
