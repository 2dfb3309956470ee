//! The verbs that talk to a running instance over HTTP: `status` (its proxy's `/-/status`), and
//! `deploy`, `delete` and `shutdown` (its control API; see `control.rs`).

use std::path::Path;

use http_body_util::{BodyExt, Full};

use super::control::TOKEN_ENV;
use crate::config::ConfigFile;
use crate::error::{ErrorKind, ServeError};

/// Where a verb finds the control API, and the token it sends.
#[derive(clap::Args, Debug)]
pub(crate) struct AdminClientArgs {
    /// The running instance's control API [default: Ray's dashboard address].
    #[arg(long, default_value = "http://127.0.0.1:8265")]
    address: String,
    /// The control API's token [default: `SERVE_ADMIN_TOKEN`].
    #[arg(long)]
    admin_token: Option<String>,
}

impl AdminClientArgs {
    fn token(&self) -> Option<String> {
        self.admin_token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|t| !t.is_empty())
    }

    /// Sends one request to the control API; its body when it succeeded, else an error with
    /// what the instance answered.
    fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Result<String, ServeError> {
        let token = self.token();
        let (status, body) = block_on(send(&self.address, method, path, token.as_deref(), body))?;
        let body = String::from_utf8_lossy(&body).trim_end().to_owned();
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(runtime_error(format!(
                "{} answered {status}: {body}",
                self.address
            )))
        }
    }
}

/// `deploy FILE`: sends the config file to the control API (`PUT /api/serve/applications/`) and
/// prints what was done to each application. The file is checked here first, so its mistakes
/// name its lines.
pub(crate) fn deploy(config: &Path, admin: &AdminClientArgs) -> Result<(), ServeError> {
    let file = ConfigFile::load(config)?;
    let json = serde_json::to_vec(&file.config)
        .map_err(|e| runtime_error(format!("cannot send the config: {e}")))?;
    let answer = admin.call("PUT", "/api/serve/applications/", json)?;
    println!("{answer}");
    Ok(())
}

/// `delete NAME`: deletes one application (`DELETE /api/serve/applications/NAME`).
pub(crate) fn delete(name: &str, admin: &AdminClientArgs) -> Result<(), ServeError> {
    let path = format!("/api/serve/applications/{}", encode_segment(name));
    admin.call("DELETE", &path, Vec::new())?;
    println!("deleted application `{name}`");
    Ok(())
}

/// `shutdown`: asks the process to drain its requests and exit (`POST /api/serve/shutdown`).
pub(crate) fn shutdown(admin: &AdminClientArgs) -> Result<(), ServeError> {
    let answer = admin.call("POST", "/api/serve/shutdown", Vec::new())?;
    println!("{answer}");
    Ok(())
}

/// `status`: the instance's `/-/status` (on its HTTP proxy), as JSON.
pub(crate) fn fetch_status(address: &str) -> Result<Vec<u8>, ServeError> {
    let (status, body) = block_on(send(address, "GET", "/-/status", None, Vec::new()))?;
    if status != 200 {
        return Err(runtime_error(format!(
            "{address} answered {status}: {}",
            String::from_utf8_lossy(&body).trim_end()
        )));
    }
    Ok(body)
}

/// A path segment with what a URL path cannot hold percent-encoded.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn runtime_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(message)
}

fn block_on<T>(future: impl Future<Output = Result<T, ServeError>>) -> Result<T, ServeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime_error(format!("cannot start a runtime: {e}")))?
        .block_on(future)
}

/// One HTTP/1.1 request to `address` (`http://HOST:PORT`): the status and the body.
async fn send(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), ServeError> {
    let authority = address
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let unreachable =
        |e: &dyn std::fmt::Display| runtime_error(format!("cannot reach {address}: {e}"));
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority);
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| unreachable(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(&e))?;
    Ok((status, body.to_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn application_names_are_encoded_as_one_path_segment() {
        assert_eq!(super::encode_segment("hello"), "hello");
        assert_eq!(super::encode_segment("a b/c"), "a%20b%2Fc");
    }
}
