use serve_core::prelude::*;

#[batch(max_batch_size = 8)]
pub fn embed(xs: Vec<u8>) -> Vec<u8> {
    xs
}

fn main() {}
