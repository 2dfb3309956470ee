use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("users")]
    pub fn users(&self) -> String {
        String::new()
    }
}

fn main() {}
