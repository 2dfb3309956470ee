use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/files/{name}.txt")]
    pub fn file(&self, name: String) -> String {
        name
    }
}

fn main() {}
