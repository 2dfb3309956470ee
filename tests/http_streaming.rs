//! Streamed HTTP responses with their own status, headers and media type (`StreamingResponse`),
//! spoken to over real HTTP on an ephemeral loopback port.

use futures::StreamExt;
use serve_core::__private::EncodedResponse;
use serve_core::http::{
    HttpError, Request, ResponseHead, StatusCode, StreamPart, StreamingResponse,
};
use serve_core::prelude::*;
use serve_test_support::http::{next_chunk, open, send};
use serve_test_support::{Gate, PATIENCE};

/// Streams the words of `?text=`; waits for the gate after the first. Answers `201 Created` with
/// `text/plain; charset=utf-8` and an `x-model` header.
#[deployment]
pub struct Words {
    step: Gate,
}

#[deployment]
impl Words {
    pub fn new(step: Gate) -> Self {
        Self { step }
    }

    pub fn call(
        &self,
        req: Request,
    ) -> StreamingResponse<impl Stream<Item = Result<String, HttpError>> + Send + '_> {
        StreamingResponse::new(try_stream! {
            let text = req.query("text").ok_or_else(|| HttpError::bad_request("no text"))?;
            for (i, word) in text.split(' ').enumerate() {
                if i == 1 {
                    self.step.wait().await;
                }
                yield format!("{word}\n");
            }
        })
        .status(StatusCode::CREATED)
        .media_type("text/plain; charset=utf-8")
        .header("X-Model", "tiny")
    }
}

fn header(response: &hyper::Response<hyper::body::Incoming>, name: &str) -> Option<String> {
    let value = response.headers().get(name)?;
    Some(value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_streaming_response_sets_status_media_type_and_headers() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let step = Gate::new();
    serve
        .run_http_streaming(Words::bind(step.clone()), "/")
        .unwrap();

    let response = tokio::time::timeout(
        PATIENCE,
        open(addr, "GET", "/?text=hola%20dora%20adios", &[], ""),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&response, "x-model").as_deref(), Some("tiny"));
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-cache"),
        "the default it did not override"
    );
    assert!(
        !step.is_open(),
        "the head came with the first item, before the rest"
    );
    let mut body = response.into_body();
    let first = tokio::time::timeout(PATIENCE, next_chunk(&mut body))
        .await
        .unwrap();
    assert_eq!(&first.unwrap().unwrap()[..], b"hola\n");
    step.open();
    let mut rest = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"dora\nadios\n");
    serve.shutdown();
}

#[tokio::test]
async fn a_media_type_of_its_own_is_not_wrapped_as_server_sent_events() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let step = Gate::new();
    step.open();
    serve.run_http_streaming(Words::bind(step), "/").unwrap();
    let reply = send(
        addr,
        "GET",
        "/?text=a%20b",
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.body, "a\nb\n", "the items as they are");
    serve.shutdown();
}

#[tokio::test]
async fn an_error_before_the_first_item_still_gets_its_own_status() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http_streaming(Words::bind(Gate::new()), "/")
        .unwrap();
    // No `text`: the stream fails before its first item, so the 400 beats the 201.
    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!((reply.status, reply.body.as_str()), (400, "no text"));
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    serve.shutdown();
}

/// A `StreamingResponse` that sets nothing, and an async method that decides its status after
/// an await; `?empty` streams no item at all.
#[deployment]
#[derive(Default)]
pub struct Plain;

#[deployment]
impl Plain {
    pub async fn call(
        &self,
        req: Request,
    ) -> StreamingResponse<impl Stream<Item = String> + Send + use<>> {
        tokio::task::yield_now().await;
        let empty = req.query("empty").is_some();
        let items = if empty {
            vec![]
        } else {
            vec!["x".to_owned(), "y".to_owned()]
        };
        let response = StreamingResponse::new(futures::stream::iter(items));
        if empty {
            response
                .status(StatusCode::NO_CONTENT)
                .header("x-empty", "yes")
        } else {
            response
        }
    }
}

#[tokio::test]
async fn what_a_streaming_response_does_not_set_keeps_the_defaults() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http_streaming(Plain::bind(), "/").unwrap();

    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(reply.body, "xy");

    let reply = send(addr, "GET", "/", &[("accept", "text/event-stream")], "").await;
    assert_eq!(reply.content_type.as_deref(), Some("text/event-stream"));
    assert_eq!(reply.body, "data: x\n\ndata: y\n\n");

    let response = open(addr, "GET", "/?empty", &[], "").await;
    assert_eq!(
        response.status(),
        204,
        "a stream without items keeps its head"
    );
    assert_eq!(header(&response, "x-empty").as_deref(), Some("yes"));
    serve.shutdown();
}

#[tokio::test]
async fn an_invalid_header_fails_the_request_with_500_naming_it() {
    #[deployment]
    #[derive(Default)]
    pub struct BadHeader;

    #[deployment]
    impl BadHeader {
        pub fn call(
            &self,
            _req: Request,
        ) -> StreamingResponse<impl Stream<Item = String> + Send + use<>> {
            StreamingResponse::new(futures::stream::iter(["x".to_owned()]))
                .header("bad header", "v")
        }
    }

    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http_streaming(BadHeader::bind(), "/").unwrap();
    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("header name `bad header`"),
        "{}",
        reply.body
    );
    serve.shutdown();
}

#[test]
fn a_handle_caller_gets_the_head_then_the_items() {
    let serve = Serve::start().unwrap();
    let step = Gate::new();
    step.open();
    let handle = serve.run(Words::bind(step)).unwrap();
    let parts: Vec<StreamPart<String>> = handle
        .remote(Request::new("GET", "/?text=a%20b"))
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let head = parts[0].head().expect("the head first");
    assert_eq!(head.status(), StatusCode::CREATED);
    assert_eq!(head.header("x-model"), Some("tiny"));
    let items: Vec<String> = parts
        .into_iter()
        .filter_map(StreamPart::into_item)
        .collect();
    assert_eq!(items, ["a\n", "b\n"]);
    serve.shutdown();
}

/// In cluster mode the ingress replica may be in another process: its items cross encoded, by
/// `call_encoded`. The head is the first of them, so it crosses the same way.
#[test]
fn the_head_crosses_encoded_as_the_first_item() {
    let serve = Serve::start().unwrap();
    let step = Gate::new();
    step.open();
    let handle = serve.run(Words::bind(step)).unwrap();
    let args = postcard::to_stdvec(&(Request::new("GET", "/?text=a"),)).unwrap();
    let EncodedResponse::Stream(items) = handle.call_encoded("call", &args).unwrap() else {
        panic!("a streaming method answers with a stream");
    };
    let items: Vec<Vec<u8>> =
        futures::executor::block_on(items.map(Result::unwrap).collect::<Vec<_>>());
    let parts: Vec<StreamPart<String>> = items
        .iter()
        .map(|bytes| postcard::from_bytes(bytes).unwrap())
        .collect();
    let head: &ResponseHead = parts[0].head().expect("the head first");
    assert_eq!(head.status(), StatusCode::CREATED);
    assert_eq!(head.media_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.header("x-model"), Some("tiny"));
    assert_eq!(parts[1], StreamPart::Item("a\n".to_owned()));
    serve.shutdown();
}

/// Passes `StreamPart`s on by hand, with a head after its first item.
#[deployment]
#[derive(Default)]
pub struct LateHead;

#[deployment]
impl LateHead {
    pub fn call(&self, _req: Request) -> impl Stream<Item = StreamPart<String>> + Send + use<> {
        futures::stream::iter([
            StreamPart::Item("a".to_owned()),
            StreamPart::Head(ResponseHead::default()),
            StreamPart::Item("b".to_owned()),
        ])
    }
}

#[tokio::test]
async fn a_head_after_the_first_item_ends_the_stream_with_an_error() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http_streaming(LateHead::bind(), "/").unwrap();
    let reply = send(addr, "GET", "/", &[("accept", "text/event-stream")], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        "data: a\n\nevent: error\ndata: runtime error: a streamed response's head came after its first item: \
         the status and headers are sent with the first item and cannot change after it\n\n"
    );
    serve.shutdown();
}
