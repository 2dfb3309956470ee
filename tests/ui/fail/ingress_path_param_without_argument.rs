use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/users/{id}")]
    pub fn get_user(&self, user_id: u64) -> String {
        user_id.to_string()
    }
}

fn main() {}
