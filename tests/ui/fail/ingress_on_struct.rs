use serve_core::prelude::*;

// `#[ingress]` goes on the impl block; the struct keeps `#[deployment]`.
#[ingress]
pub struct Api;

fn main() {}
