use serve_core::http::Json;
use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[post("/pair")]
    pub fn pair(&self, left: Json<u8>, right: Json<u8>) -> String {
        (left.0 + right.0).to_string()
    }
}

fn main() {}
