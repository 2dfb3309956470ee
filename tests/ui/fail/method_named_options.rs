use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Greeter;

#[deployment]
impl Greeter {
    pub fn options(&self) -> Vec<String> {
        vec![String::from("hello"), String::from("bonjour")]
    }
}

fn main() {}
