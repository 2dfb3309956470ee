#[derive(serde::Serialize)]
pub struct User {
    id: u64,
}

use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/users/{id}")]
    pub fn get_user(&self, id: u64) -> User {
        User { id }
    }
}

fn main() {}
