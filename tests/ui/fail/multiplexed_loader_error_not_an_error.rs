use serve_core::prelude::*;

pub struct Model;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed]
    pub async fn get_model(&self, model_id: String) -> Result<Model, u32> {
        let _ = model_id;
        Ok(Model)
    }
}

fn main() {}
