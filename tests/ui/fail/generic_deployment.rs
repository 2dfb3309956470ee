use serve_core::prelude::*;

#[deployment]
pub struct Echo<T> {
    last: Option<T>,
}

fn main() {}
