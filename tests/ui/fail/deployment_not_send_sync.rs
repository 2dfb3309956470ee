use serve_core::prelude::*;
use std::rc::Rc;

#[deployment]
pub struct Cache {
    entries: Rc<Vec<String>>,
}

#[deployment]
impl Cache {
    pub fn new() -> Self {
        Self { entries: Rc::new(Vec::new()) }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn main() {}
