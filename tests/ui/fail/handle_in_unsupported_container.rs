use std::rc::Rc;
use std::sync::Arc;

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

/// A struct of the user's own: `bind` cannot see into it.
pub struct Wrapper<T>(T);

#[deployment]
pub struct Ensemble;

#[deployment]
impl Ensemble {
    pub fn new(
        shared: Arc<DeploymentHandle<Model>>,
        local: Vec<Rc<DeploymentHandle<Model>>>,
        wrapped: Wrapper<DeploymentHandle<Model>>,
    ) -> Self {
        let _ = (shared, local, wrapped);
        Self
    }
}

fn main() {}
