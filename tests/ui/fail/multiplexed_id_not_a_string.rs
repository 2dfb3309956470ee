use serve_core::prelude::*;

pub struct Model;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed]
    pub async fn get_model(&self, model_id: u64) -> Model {
        let _ = model_id;
        Model
    }
}

fn main() {}
