use serve_core::prelude::*;

#[deployment]
pub enum Color {
    Red,
    Green,
}

fn main() {
    let _ = Color::Red;
}
