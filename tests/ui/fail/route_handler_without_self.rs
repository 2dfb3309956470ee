use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/health")]
    pub fn health() -> String {
        String::new()
    }
}

fn main() {}
