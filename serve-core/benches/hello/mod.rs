//! The seed's hello app, a bare axum handler doing the same work, and an HTTP/1.1 client for
//! both: shared by the HTTP load benchmark (`http.rs`) and the instruction counts
//! (`instructions.rs`).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serve_core::http::{HttpError, Request, StatusCode};
use serve_core::prelude::*;
use tokio::runtime::Runtime;

pub const BODY: &str = r#"{"language": "spanish", "name": "Dora"}"#;
pub const EXPECTED: &str = "Hola Dora";

// --- the seed's hello app ---------------------------------------------------------------------

#[derive(Deserialize)]
struct Greeting {
    language: String,
    name: String,
}

#[deployment]
pub struct LanguageClassifier {
    spanish_responder: DeploymentHandle<SpanishResponder>,
    french_responder: DeploymentHandle<FrenchResponder>,
}

#[deployment]
impl LanguageClassifier {
    pub fn new(
        spanish_responder: DeploymentHandle<SpanishResponder>,
        french_responder: DeploymentHandle<FrenchResponder>,
    ) -> Self {
        Self {
            spanish_responder,
            french_responder,
        }
    }

    pub async fn call(&self, http_request: Request) -> Result<String, HttpError> {
        let request: Greeting = http_request.json()?;
        let response = match request.language.as_str() {
            "spanish" => self.spanish_responder.say_hello.remote(request.name),
            "french" => self.french_responder.say_hello.remote(request.name),
            _ => return Ok("Please try again.".into()),
        };
        response
            .await
            .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

#[deployment]
#[derive(Default)]
pub struct SpanishResponder;

#[deployment]
impl SpanishResponder {
    pub fn say_hello(&self, name: String) -> String {
        format!("Hola {name}")
    }
}

#[deployment]
#[derive(Default)]
pub struct FrenchResponder;

#[deployment]
impl FrenchResponder {
    pub fn say_hello(&self, name: String) -> String {
        format!("Bonjour {name}")
    }
}

// --- the bare axum baseline -------------------------------------------------------------------

/// The same work as the hello app, in one handler: parse the JSON, format the greeting.
async fn bare_hello(body: Bytes) -> Result<String, (axum::http::StatusCode, String)> {
    let request: Greeting = serde_json::from_slice(&body)
        .map_err(|e| (axum::http::StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(match request.language.as_str() {
        "spanish" => format!("Hola {}", request.name),
        "french" => format!("Bonjour {}", request.name),
        _ => "Please try again.".into(),
    })
}

/// Starts the bare server on its own multi-threaded runtime (one worker per core, like the serve
/// instance's).
pub fn start_bare() -> (Runtime, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bare-axum")
        .enable_all()
        .build()
        .expect("bare server runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the bare server");
    let addr = listener.local_addr().expect("bare server address");
    let router = axum::Router::new().route("/", axum::routing::post(bare_hello));
    rt.spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (rt, addr)
}

// --- the client ---------------------------------------------------------------------------------

pub type Sender = SendRequest<Full<Bytes>>;

pub async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One `POST /` on the connection; `Ok` only for `200 "Hola Dora"`.
pub async fn hello(sender: &mut Sender, addr: SocketAddr) -> Result<(), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::post("/")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status == hyper::StatusCode::OK && body == EXPECTED.as_bytes() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}
