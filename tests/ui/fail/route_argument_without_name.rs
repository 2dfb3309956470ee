use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/range")]
    pub fn range(&self, (from, to): (u32, u32)) -> String {
        (to - from).to_string()
    }
}

fn main() {}
