use std::collections::HashMap;

use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn call(&self, x: i32) -> i32 {
        x
    }
}

#[deployment]
pub struct Ensemble;

#[deployment]
impl Ensemble {
    pub fn new(
        by_model: HashMap<DeploymentHandle<Model>, String>,
        with_weight: (DeploymentHandle<Model>, f32),
    ) -> Self {
        let _ = (by_model, with_weight);
        Self
    }
}

fn main() {}
