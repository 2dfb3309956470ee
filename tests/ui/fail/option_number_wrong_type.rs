use serve_core::prelude::*;

#[deployment(health_check_period_s = "10")]
#[derive(Default)]
pub struct Adder;

fn main() {}
