use serve_core::http::{Request, StreamingResponse};
use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Numbers;

#[deployment]
impl Numbers {
    pub fn call(&self, _req: Request) -> StreamingResponse<impl Stream<Item = u32> + Send + use<>> {
        StreamingResponse::new(serve_core::futures::stream::iter([1, 2, 3]))
    }
}

fn main() {
    let serve = Serve::start().unwrap();
    let _ = serve.run_http_streaming(Numbers::bind(), "/");
}
