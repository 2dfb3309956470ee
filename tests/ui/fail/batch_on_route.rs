use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[batch]
    #[get("/embed")]
    pub fn embed(&self, text: String) -> String {
        text
    }
}

fn main() {}
