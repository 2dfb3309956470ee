use serve_core::prelude::*;

#[remote]
pub fn count(limit: u32) -> impl Stream<Item = u32> + Send {
    futures::stream::iter(0..limit)
}

fn main() {}
