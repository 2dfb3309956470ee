use serve_core::prelude::*;

#[deployment]
pub struct Model;

#[deployment]
impl Model {
    #[batch]
    pub fn new() -> Self {
        Model
    }

    #[batch]
    fn helper(xs: Vec<u8>) -> Vec<u8> {
        xs
    }

    #[batch]
    pub fn check_health(&self) -> Result<(), String> {
        Ok(())
    }

    #[batch]
    pub fn reconfigure(&self, config: u32) {
        let _ = config;
    }
}

fn main() {}
