use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/pairs/{id}/{id}")]
    pub fn pair(&self, id: u64) -> String {
        id.to_string()
    }
}

fn main() {}
