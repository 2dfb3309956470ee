use serve_core::prelude::*;

pub struct Model;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed]
    pub fn get_model(model_id: String) -> Model {
        let _ = model_id;
        Model
    }
}

fn main() {}
