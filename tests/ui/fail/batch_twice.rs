use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    #[batch(max_batch_size = 8)]
    #[batch(batch_wait_timeout_s = 0.1)]
    pub fn embed(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }
}

fn main() {}
