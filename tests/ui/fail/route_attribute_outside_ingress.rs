use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

// Under `#[deployment]`, a route attribute is not consumed.
#[deployment]
impl Api {
    #[get("/health")]
    pub fn health(&self) -> String {
        String::new()
    }
}

fn main() {}
