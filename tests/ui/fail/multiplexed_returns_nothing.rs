use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed]
    pub async fn get_model(&self, model_id: String) {
        let _ = model_id;
    }
}

fn main() {}
