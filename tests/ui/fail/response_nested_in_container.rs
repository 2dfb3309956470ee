use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Summer;

#[deployment]
impl Summer {
    pub fn call(&self, values: Vec<i32>) -> i32 {
        values.iter().sum()
    }
    pub fn one(&self) -> i32 {
        1
    }
}

fn main() {
    let summer = serve_core::run(Summer::bind()).unwrap();
    let _ = summer.remote(vec![summer.one.remote(), summer.one.remote()]);
}
