use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    #[batch(max_size = 8)]
    pub fn unknown(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch(max_batch_size = 0, batch_wait_timeout_s = -0.5, max_concurrent_batches = -1)]
    pub fn out_of_range(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch(max_batch_size = "8")]
    pub fn not_a_number(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch(max_batch_size = 2.5)]
    pub fn not_whole(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch(max_batch_size = 8, max_batch_size = 16)]
    pub fn repeated(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch(batch_wait_timeout_s)]
    pub fn no_value(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch = 8]
    pub fn not_in_parentheses(&self, xs: Vec<u8>) -> Vec<u8> {
        xs
    }
}

fn main() {}
