use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/users/{id}")]
    pub fn get_user(&self, id: u64) -> String {
        id.to_string()
    }
    // The same route: `{name}` matches what `{id}` matches.
    #[get("/users/{name}")]
    pub fn get_by_name(&self, name: String) -> String {
        name
    }
}

fn main() {}
