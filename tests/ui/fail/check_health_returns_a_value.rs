use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn check_health(&self) -> bool {
        true
    }
}

fn main() {}
