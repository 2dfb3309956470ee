use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    #[batch]
    pub fn one_value(&self, xs: Vec<u8>) -> u8 {
        xs[0]
    }

    #[batch]
    pub fn nothing(&self, xs: Vec<u8>) {
        drop(xs)
    }

    #[batch]
    pub async fn result_of_one(&self, xs: Vec<u8>) -> Result<u8, String> {
        Ok(xs[0])
    }

    #[batch]
    pub fn stream(&self, xs: Vec<u8>) -> impl Stream<Item = Vec<u8>> + Send + 'static {
        futures::stream::iter([xs])
    }
}

fn main() {}
