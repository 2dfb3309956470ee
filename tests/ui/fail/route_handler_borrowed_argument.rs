use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/greet")]
    pub fn greet(&self, name: &str) -> String {
        name.to_owned()
    }
}

fn main() {}
