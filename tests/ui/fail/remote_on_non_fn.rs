use serve_core::prelude::*;

#[remote]
pub struct SayHi;

fn main() {
    let _ = SayHi;
}
