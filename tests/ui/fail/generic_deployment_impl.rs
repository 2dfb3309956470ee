use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Echo;

pub struct Wrapper<T>(T);

#[deployment]
impl<T: Send + Sync + 'static> Wrapper<T> {
    pub fn get(&self) -> u8 {
        0
    }
}

fn main() {
    let _ = Echo;
}
