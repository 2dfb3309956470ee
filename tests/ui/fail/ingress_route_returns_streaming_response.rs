use serve_core::http::StreamingResponse;
use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/tokens")]
    pub fn tokens(&self) -> StreamingResponse<impl Stream<Item = String> + Send + use<>> {
        StreamingResponse::new(serve_core::futures::stream::iter(["a".to_owned()]))
    }
}

fn main() {}
