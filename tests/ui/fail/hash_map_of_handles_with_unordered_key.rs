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

/// Hashable but not ordered: the members of a map are deployed in key order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

#[deployment]
pub struct Ensemble;

#[deployment]
impl Ensemble {
    pub fn new(models: HashMap<Key, DeploymentHandle<Model>>) -> Self {
        let _ = models;
        Self
    }
}

fn main() {}
