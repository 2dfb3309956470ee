use serve_core::http::Request;
use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[post("/echo")]
    pub fn echo(&self, first: Request, second: Request) -> String {
        format!("{}{}", first.path(), second.path())
    }
}

fn main() {}
