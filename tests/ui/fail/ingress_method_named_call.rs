use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/health")]
    pub fn health(&self) -> String {
        String::new()
    }
    pub fn call(&self, input: u32) -> u32 {
        input
    }
}

fn main() {}
