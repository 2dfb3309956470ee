use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub fn check_health(&self, deep: bool) -> Result<(), std::io::Error> {
        let _ = deep;
        Ok(())
    }
    pub fn call(&self) -> u8 {
        1
    }
}

fn main() {
    let handle = serve_core::run(Model::bind()).unwrap();
    let _ = handle.remote();
}
