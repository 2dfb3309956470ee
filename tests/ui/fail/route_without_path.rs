use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get]
    pub fn health(&self) -> String {
        String::new()
    }
}

fn main() {}
