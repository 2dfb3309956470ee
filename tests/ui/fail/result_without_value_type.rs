use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Parser;

type Result = std::result::Result<u32, std::num::ParseIntError>;

#[deployment]
impl Parser {
    pub fn parse(&self, text: String) -> Result {
        text.parse()
    }
}

fn main() {}
