use serve_core::prelude::*;

pub struct Embedding(Vec<f32>);

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn call(&self, text: String) -> Embedding {
        Embedding(vec![text.len() as f32])
    }
}

fn main() {}
