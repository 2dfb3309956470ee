//! The HTTP request timeout (`Serve::set_http_request_timeout`) on streaming ingresses, next to a
//! unary one, over real HTTP on an ephemeral loopback port.
//!
//! The timeout is wall-clock time on the serve instance's own runtime, so these tests cannot pause
//! it; they only rely on a replica starting (or sending a first item) well within it, and wait for
//! every other event on a signal.

use std::time::{Duration, Instant};

use serve_core::http::Request;
use serve_core::prelude::*;
use serve_test_support::http::{next_chunk, open, send};
use serve_test_support::{Gate, OpenOnDrop, PATIENCE, named};

const SSE: (&str, &str) = ("accept", "text/event-stream");

/// A unary ingress that never answers.
#[deployment]
#[derive(Default)]
pub struct Stuck;

#[deployment]
impl Stuck {
    pub async fn call(&self, _req: Request) -> String {
        std::future::pending().await
    }
}

/// A streaming ingress that yields `?first=..` (if given) and then waits forever. `entered` opens
/// when its stream starts, `dropped` when the stream is dropped (the producer was stopped).
#[deployment]
pub struct Trickle {
    entered: Gate,
    dropped: Gate,
}

#[deployment]
impl Trickle {
    pub fn new(entered: Gate, dropped: Gate) -> Self {
        Self { entered, dropped }
    }

    pub fn call(&self, req: Request) -> impl Stream<Item = String> + Send + use<> {
        let (entered, dropped) = (self.entered.clone(), self.dropped.clone());
        let first = req.query("first");
        stream! {
            let _guard = OpenOnDrop(dropped);
            entered.open();
            if let Some(first) = first {
                yield format!("{first}\n");
            }
            std::future::pending::<()>().await;
        }
    }
}

/// A streaming ingress that never pauses: an item whenever the consumer takes one.
#[deployment]
pub struct Firehose {
    dropped: Gate,
}

#[deployment]
impl Firehose {
    pub fn new(dropped: Gate) -> Self {
        Self { dropped }
    }

    pub fn call(&self, _req: Request) -> impl Stream<Item = String> + Send + use<> {
        let dropped = self.dropped.clone();
        stream! {
            let _guard = OpenOnDrop(dropped);
            loop {
                yield "x\n".to_string();
            }
        }
    }
}

fn start(timeout: Duration) -> (Serve, std::net::SocketAddr) {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.set_http_request_timeout(Some(timeout)).unwrap();
    (serve, addr)
}

#[tokio::test]
async fn a_stream_without_a_first_item_is_408_with_the_unary_body_and_is_stopped() {
    let timeout = Duration::from_millis(200);
    let (serve, addr) = start(timeout);
    let (entered, dropped) = (Gate::new(), Gate::new());
    serve
        .run_http(Stuck::bind(), named("unary").route_prefix("/unary"))
        .unwrap();
    serve
        .run_http_streaming(
            Trickle::bind(entered.clone(), dropped.clone()),
            named("stream").route_prefix("/stream"),
        )
        .unwrap();

    let unary = send(addr, "GET", "/unary", &[], "").await;
    assert_eq!(unary.status, 408, "{}", unary.body);

    let started = Instant::now();
    let request = tokio::spawn(send(addr, "GET", "/stream", &[], ""));
    entered.expect_open("the stream started").await;
    let reply = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("answered once the timeout ran out")
        .unwrap();
    assert!(started.elapsed() >= timeout, "not before the timeout");
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert_eq!(reply.body, unary.body, "the same body as a unary call's");
    assert_eq!(
        reply.body,
        "Request Timeout: timed out: no result within 200ms; the request was cancelled"
    );
    dropped
        .expect_open("the producer was stopped when the request timed out")
        .await;

    let reply = send(addr, "GET", "/stream", &[SSE], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (408, unary.body.as_str()),
        "Server-Sent Events too: no event was sent yet"
    );
    serve.shutdown();
}

#[tokio::test]
async fn a_chunked_stream_past_the_timeout_is_cut_off_and_its_producer_stopped() {
    let timeout = Duration::from_millis(500);
    let (serve, addr) = start(timeout);
    let (entered, dropped) = (Gate::new(), Gate::new());
    serve
        .run_http_streaming(Trickle::bind(entered, dropped.clone()), "/")
        .unwrap();

    let started = Instant::now();
    let response = open(addr, "GET", "/?first=hola", &[], "").await;
    assert_eq!(
        response.status(),
        200,
        "the head went out with the first item"
    );
    let mut body = response.into_body();
    let first = tokio::time::timeout(PATIENCE, next_chunk(&mut body))
        .await
        .expect("the first item arrives");
    assert_eq!(&first.unwrap().unwrap()[..], b"hola\n");
    let end = tokio::time::timeout(PATIENCE, next_chunk(&mut body))
        .await
        .expect("the body ends instead of hanging");
    assert!(
        matches!(end, Some(Err(_))),
        "a broken body, not a clean end: {end:?}"
    );
    assert!(started.elapsed() >= timeout, "not before the timeout");
    dropped
        .expect_open("the producer was stopped when the request timed out")
        .await;
    serve.shutdown();
}

#[tokio::test]
async fn server_sent_events_past_the_timeout_end_with_an_error_event() {
    let timeout = Duration::from_millis(500);
    let (serve, addr) = start(timeout);
    let (entered, dropped) = (Gate::new(), Gate::new());
    serve
        .run_http_streaming(Trickle::bind(entered, dropped.clone()), "/")
        .unwrap();

    let started = Instant::now();
    let reply = tokio::time::timeout(PATIENCE, send(addr, "GET", "/?first=hola", &[SSE], ""))
        .await
        .expect("the stream ends instead of hanging");
    assert!(started.elapsed() >= timeout, "not before the timeout");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        "data: hola\n\nevent: error\ndata: timed out: no result within 500ms; the request was \
         cancelled\n\n"
    );
    dropped
        .expect_open("the producer was stopped when the request timed out")
        .await;
    serve.shutdown();
}

#[tokio::test]
async fn a_stream_that_never_pauses_is_cut_off_at_the_timeout_too() {
    let timeout = Duration::from_millis(200);
    let (serve, addr) = start(timeout);
    let dropped = Gate::new();
    serve
        .run_http_streaming(Firehose::bind(dropped.clone()), "/")
        .unwrap();

    let response = open(addr, "GET", "/", &[], "").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let read_to_the_end = async {
        let mut received = 0;
        loop {
            match next_chunk(&mut body).await {
                Some(Ok(chunk)) => received += chunk.len(),
                end => return (received, end),
            }
        }
    };
    let (received, end) = tokio::time::timeout(PATIENCE, read_to_the_end)
        .await
        .expect("the body ends although the producer always has an item ready");
    assert!(received > 0);
    assert!(
        matches!(end, Some(Err(_))),
        "a broken body, not a clean end: {end:?}"
    );
    dropped
        .expect_open("the producer was stopped when the request timed out")
        .await;
    serve.shutdown();
}
