use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    #[batch]
    pub fn none(&self) -> Vec<u8> {
        Vec::new()
    }

    #[batch]
    pub fn two(&self, xs: Vec<u8>, ys: Vec<u8>) -> Vec<u8> {
        [xs, ys].concat()
    }

    #[batch]
    pub fn not_a_vec(&self, x: u8) -> Vec<u8> {
        vec![x]
    }

    #[batch]
    pub async fn slice(&self, xs: [u8; 4]) -> Vec<u8> {
        xs.to_vec()
    }
}

fn main() {}
