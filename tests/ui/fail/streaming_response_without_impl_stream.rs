use serve_core::futures::stream::BoxStream;
use serve_core::http::{Request, StreamingResponse};
use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Tokens;

#[deployment]
impl Tokens {
    pub fn call(&self, _req: Request) -> StreamingResponse<BoxStream<'static, String>> {
        StreamingResponse::new(Box::pin(serve_core::futures::stream::empty()))
    }
}

fn main() {}
