use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[post("/count")]
    pub fn increment(&mut self) -> String {
        String::new()
    }
}

fn main() {}
