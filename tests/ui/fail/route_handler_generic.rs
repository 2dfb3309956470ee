use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/items/{id}")]
    pub fn item<T: std::str::FromStr>(&self, id: T) -> String {
        let _ = id;
        String::new()
    }
}

fn main() {}
