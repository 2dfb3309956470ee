use serve_core::prelude::*;

#[remote]
pub fn count(limit: u32) -> impl Iterator<Item = u32> {
    0..limit
}

fn main() {}
