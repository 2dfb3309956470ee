use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[post("/users", summary)]
    pub fn create(&self) -> String {
        String::new()
    }
}

fn main() {}
