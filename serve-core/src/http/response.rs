//! What an ingress deployment returns, and how it becomes an HTTP response.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An HTTP status code (a serde value, so it can be returned from a deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 200
    pub const OK: StatusCode = StatusCode(200);
    /// 201
    pub const CREATED: StatusCode = StatusCode(201);
    /// 204
    pub const NO_CONTENT: StatusCode = StatusCode(204);
    /// 400
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 401
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    /// 403
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    /// 404
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// 405
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    /// 408
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    /// 413
    pub const PAYLOAD_TOO_LARGE: StatusCode = StatusCode(413);
    /// 422
    pub const UNPROCESSABLE_ENTITY: StatusCode = StatusCode(422);
    /// 500
    pub const INTERNAL_SERVER_ERROR: StatusCode = StatusCode(500);
    /// 503
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    /// 504: a call the ingress made downstream timed out (its own `.timeout(..)` ran out).
    pub const GATEWAY_TIMEOUT: StatusCode = StatusCode(504);

    /// A status code from its number; `None` outside `100..=999`.
    pub const fn from_u16(code: u16) -> Option<StatusCode> {
        if code >= 100 && code <= 999 {
            Some(StatusCode(code))
        } else {
            None
        }
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A complete HTTP response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into())
    }

    /// An `application/json` response; a value that fails to serialize gives a 500.
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Self::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Server Error: the response is not JSON-serialisable: {e}"),
            ),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub(crate) fn into_parts(self) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
        (self.status, self.headers, self.body)
    }
}

/// An error with an HTTP status, for ingress methods to return: `Err(HttpError::bad_request(..))`
/// (or `?` on [`Request::json`](super::Request::json)) answers with that status and the message as
/// a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422 Unprocessable Entity: well-formed, but not what the endpoint takes.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

impl IntoHttpResponse for HttpError {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::text(self.status, self.message)
    }
}

/// A JSON body: `Json(value)` answers `200` with `application/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json<T>(pub T);

/// Converts what an ingress method returns into the HTTP response.
///
/// Implemented for `String` (`text/plain`), `Vec<u8>` (`application/octet-stream`), [`Json<T>`],
/// [`HttpResponse`], [`HttpError`], `()` (an empty 200), [`StatusCode`] (an empty body),
/// `(StatusCode, B)` (another status), and `Result<B, HttpError>` / `Result<B, E>` for any `B`
/// here. A method that returns `Result<T, E>`
/// with a user error `E` answers 500 with a short message, unless `E` is an [`HttpError`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be turned into an HTTP response",
    note = "return a `String`, `Json<T>`, `Vec<u8>`, `HttpResponse`, `(StatusCode, body)` or a `Result` of one of them"
)]
pub trait IntoHttpResponse {
    /// The response.
    fn into_http_response(self) -> HttpResponse;
}

impl IntoHttpResponse for HttpResponse {
    fn into_http_response(self) -> HttpResponse {
        self
    }
}

impl IntoHttpResponse for String {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::text(StatusCode::OK, self)
    }
}

impl IntoHttpResponse for &'static str {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::text(StatusCode::OK, self)
    }
}

impl IntoHttpResponse for Vec<u8> {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::new(StatusCode::OK)
            .with_header("content-type", "application/octet-stream")
            .with_body(self)
    }
}

impl IntoHttpResponse for StatusCode {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::new(self)
    }
}

impl IntoHttpResponse for () {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::new(StatusCode::OK)
    }
}

impl<T: Serialize> IntoHttpResponse for Json<T> {
    fn into_http_response(self) -> HttpResponse {
        HttpResponse::json(StatusCode::OK, &self.0)
    }
}

impl<B: IntoHttpResponse> IntoHttpResponse for (StatusCode, B) {
    fn into_http_response(self) -> HttpResponse {
        let mut response = self.1.into_http_response();
        response.status = self.0;
        response
    }
}

impl<B: IntoHttpResponse, E: IntoHttpResponse> IntoHttpResponse for Result<B, E> {
    fn into_http_response(self) -> HttpResponse {
        match self {
            Ok(b) => b.into_http_response(),
            Err(e) => e.into_http_response(),
        }
    }
}

/// One item of a streaming ingress method, as bytes on the wire.
///
/// `String` and `Vec<u8>` go out as they are; [`Json<T>`] as one JSON document per line
/// (newline-delimited JSON). With Server-Sent Events each item is one event's data.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be streamed over HTTP",
    note = "a streaming ingress method yields `String`, `Vec<u8>` or `Json<T>` items"
)]
pub trait IntoChunk {
    /// The item's bytes.
    fn into_chunk(self) -> Vec<u8>;
}

impl IntoChunk for String {
    fn into_chunk(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl IntoChunk for Vec<u8> {
    fn into_chunk(self) -> Vec<u8> {
        self
    }
}

impl<T: Serialize> IntoChunk for Json<T> {
    fn into_chunk(self) -> Vec<u8> {
        let mut line = serde_json::to_vec(&self.0).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_set_status_type_and_body() {
        let r = String::from("Hola Dora").into_http_response();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body(), b"Hola Dora");
        assert_eq!(r.headers()[0].1, "text/plain; charset=utf-8");

        let r = Json(vec![1, 2]).into_http_response();
        assert_eq!(r.body(), b"[1,2]");
        assert_eq!(r.headers()[0].1, "application/json");

        let r = (StatusCode::CREATED, Json("x")).into_http_response();
        assert_eq!(r.status(), StatusCode::CREATED);

        let r = StatusCode::NO_CONTENT.into_http_response();
        assert_eq!((r.status(), r.body()), (StatusCode::NO_CONTENT, &b""[..]));

        let r: Result<String, HttpError> = Err(HttpError::unprocessable("no name"));
        let r = r.into_http_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body(), b"no name");
    }

    #[test]
    fn json_chunks_are_lines() {
        assert_eq!(
            Json(serde_json::json!({"a": 1})).into_chunk(),
            b"{\"a\":1}\n"
        );
    }
}
