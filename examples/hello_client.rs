//! The guide's `hello_client.py`: posts `{"language": "spanish", "name": "Dora"}` to the hello
//! application (start it with `cargo run --example hello`) and prints the answer, `Hola Dora`.
//!
//! ```python
//! # File name: hello_client.py
//! import requests
//!
//! response = requests.post(
//!     "http://localhost:8000", json={"language": "spanish", "name": "Dora"}
//! )
//! greeting = response.text
//! print(greeting)
//! ```
//!
//! `cargo run --example hello_client -- http://127.0.0.1:9000/` posts elsewhere.

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url: hyper::Uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8000/".into())
        .parse()?;
    let authority = url
        .authority()
        .ok_or("the URL needs a host and port")?
        .clone();

    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);

    let body = serde_json::json!({"language": "spanish", "name": "Dora"}).to_string();
    let request = hyper::Request::post(url.path())
        .header("host", authority.as_str())
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let greeting = response.into_body().collect().await?.to_bytes();
    let greeting = String::from_utf8_lossy(&greeting);
    println!("{greeting}");
    if !status.is_success() {
        return Err(format!("the server answered {status}").into());
    }
    Ok(())
}
