use serve_core::prelude::*;

pub struct Model;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed(max_num_models_per_replica = 2)]
    pub async fn get_model(&self) -> Model {
        Model
    }
}

fn main() {}
