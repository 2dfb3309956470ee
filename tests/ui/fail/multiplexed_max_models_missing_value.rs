use serve_core::prelude::*;

pub struct Model;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed(max_num_models_per_replica)]
    pub async fn get_model(&self, model_id: String) -> Model {
        let _ = model_id;
        Model
    }
}

fn main() {}
