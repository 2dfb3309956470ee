use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn reconfigure(&self) {}
}

fn main() {}
