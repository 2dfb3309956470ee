use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    #[multiplexed]
    pub async fn get_model(&self, model_id: String) -> impl Fn(f64) -> f64 + Send + Sync {
        let _ = model_id;
        |x| x
    }
}

fn main() {}
