use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Numbers;

#[deployment]
impl Numbers {
    pub fn up_to(&self, limit: u32) -> impl Stream + Send {
        futures::stream::iter(0..limit)
    }
}

fn main() {}
