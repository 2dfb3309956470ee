use serve_core::prelude::*;

#[remote]
pub fn echo<T: Send + 'static>(value: T) -> T {
    value
}

fn main() {}
