use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/users/{user-id}")]
    pub fn get_user(&self, id: u64) -> String {
        id.to_string()
    }
}

fn main() {}
