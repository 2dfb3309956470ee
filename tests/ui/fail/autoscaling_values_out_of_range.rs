use serve_core::prelude::*;

#[deployment(autoscaling(
    max_replicas = 0,
    target_ongoing_requests = 0,
    upscale_delay_s = -1,
    downscale_delay_s = -0.5,
    downscale_to_zero_delay_s = -2,
    look_back_period_s = 0,
    metrics_interval_s = 0,
    upscaling_factor = 0,
    downscaling_factor = -1,
))]
#[derive(Default)]
pub struct Adder;

fn main() {}
