pub struct Point(pub u32, pub u32);

use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/points/{point}")]
    pub fn point(&self, point: Point) -> String {
        format!("{}", point.0)
    }
}

fn main() {}
