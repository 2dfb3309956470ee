use serve_core::prelude::*;

#[deployment(health_check_period_s = 0, health_check_timeout_s = -1, graceful_shutdown_timeout_s = 0.0)]
#[derive(Default)]
pub struct Adder;

fn main() {}
