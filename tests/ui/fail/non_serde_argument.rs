use serve_core::prelude::*;

pub struct Tensor {
    pub data: Vec<f32>,
}

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn call(&self, input: Tensor) -> f32 {
        input.data.iter().sum()
    }
}

fn main() {}
