//! [`Request`]: an HTTP request as the ingress deployment receives it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::response::HttpError;

/// An HTTP request, as the HTTP proxy hands it to the ingress deployment's `call`.
///
/// It is a plain serde value (it crosses the deployment boundary like any argument): method,
/// path, query string, headers and the whole body. Header names are lower-case.
///
/// ```
/// use serve_core::http::Request;
///
/// let req = Request::new("POST", "/classify?lang=es&verbose")
///     .with_header("Content-Type", "application/json")
///     .with_body(r#"{"language": "spanish", "name": "Dora"}"#);
/// assert_eq!(req.path(), "/classify");
/// assert_eq!(req.query("lang").as_deref(), Some("es"));
/// assert_eq!(req.header("content-type"), Some("application/json"));
/// let body: serde_json::Value = req.json().unwrap();
/// assert_eq!(body["name"], "Dora");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    method: String,
    path: String,
    /// The route prefix of the application that received the request (`""` for `/`).
    root_path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with no headers and an empty body; `uri` is a path with an optional `?query`.
    pub fn new(method: impl Into<String>, uri: &str) -> Self {
        let (path, query) = match uri.split_once('?') {
            Some((path, query)) => (path, query),
            None => (uri, ""),
        };
        Self {
            method: method.into().to_ascii_uppercase(),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            root_path: String::new(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A request as the proxy builds it: the method as `http` spells it (upper-case), a path that
    /// starts with `/`, header names already lower-case (as `http` stores them).
    pub(crate) fn from_proxy(
        method: &str,
        path: &str,
        query: &str,
        root_path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            root_path: root_path.trim_end_matches('/').to_owned(),
            query: query.to_owned(),
            headers,
            body,
        }
    }

    /// Adds a header (the name is stored lower-case).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn with_json<T: Serialize>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.with_header("content-type", "application/json")
            .with_body(body)
    }

    /// The method, upper-case (`GET`, `POST`, ..).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, starting with `/` (the full path, including the application's route prefix).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the route prefix the request was received under (the proxy does this).
    pub fn with_root_path(mut self, root_path: &str) -> Self {
        self.root_path = root_path.trim_end_matches('/').to_owned();
        self
    }

    /// The route prefix of the application that received the request: `""` for an application at
    /// `/`, `"/api"` for one at `/api`.
    pub fn root_path(&self) -> &str {
        &self.root_path
    }

    /// The path below the application's route prefix, starting with `/`: what an application's
    /// own routes match against (for `/api/users/1` under `/api`, `/users/1`).
    pub fn route_path(&self) -> &str {
        match self.path.strip_prefix(self.root_path.as_str()) {
            Some("") => "/",
            Some(rest) if rest.starts_with('/') => rest,
            _ => &self.path,
        }
    }

    /// The raw query string, without the `?` (empty when there is none).
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// The first value of query parameter `name`, percent-decoded (`Some("")` for a bare `?flag`).
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Every query parameter, percent-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.query).unwrap_or_default()
    }

    /// Deserializes the query string into `T` (e.g. a struct with a field per parameter); a
    /// mismatch is a 422 error naming the parameter.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|e| HttpError::unprocessable(format!("invalid query string: {e}")))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, names lower-case, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body's bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text; a 400 error if it is not.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| HttpError::bad_request(format!("request body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`.
    ///
    /// A body that is not JSON at all is a 400 error; JSON that does not match `T` (a missing
    /// field, a wrong type) is a 422 error that names the problem, as FastAPI does. Return the
    /// error from `call` (`req.json::<Greeting>()?` in a method returning `Result<_, HttpError>`)
    /// and the proxy answers with that status.
    ///
    /// A 422 names where in the body the problem is, as in ``invalid request body: at
    /// `items[0].age`: invalid type: string "x", expected u32 at line 1 column 22`` (no location
    /// for a problem with the whole body, such as a missing top-level field).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        use serde_json::error::Category;
        // The fast path: a body that parses needs no path tracking.
        if let Ok(value) = serde_json::from_slice(&self.body) {
            return Ok(value);
        }
        // Parse again, tracking where in the document it fails, for the error message.
        let mut body = serde_json::Deserializer::from_slice(&self.body);
        let (path, e) = match serde_path_to_error::deserialize::<_, T>(&mut body) {
            // Trailing characters after the value are malformed JSON, as with `from_slice`.
            Ok(value) => match body.end() {
                Ok(()) => return Ok(value),
                Err(e) => (String::new(), e),
            },
            Err(e) => (e.path().to_string(), e.into_inner()),
        };
        Err(match e.classify() {
            Category::Data if path.is_empty() || path == "." => {
                HttpError::unprocessable(format!("invalid request body: {e}"))
            }
            Category::Data => {
                HttpError::unprocessable(format!("invalid request body: at `{path}`: {e}"))
            }
            Category::Syntax | Category::Eof | Category::Io => {
                HttpError::bad_request(format!("malformed JSON body: {e}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::StatusCode;

    #[derive(Debug, Deserialize)]
    struct Greeting {
        #[allow(dead_code)]
        language: String,
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn bad_json_is_400_and_json_of_the_wrong_shape_is_422() {
        let req = Request::new("POST", "/").with_body("{not json");
        let err = req.json::<Greeting>().unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.message().contains("malformed JSON"), "{err}");

        let req = Request::new("POST", "/").with_body(r#"{"language": "spanish"}"#);
        let err = req.json::<Greeting>().unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message().contains("missing field `name`"), "{err}");

        let req = Request::new("POST", "/").with_body(r#"{"language": "spanish", "name": 7}"#);
        let err = req.json::<Greeting>().unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.message()
                .starts_with("invalid request body: at `name`: invalid type: integer `7`"),
            "{err}"
        );

        let req = Request::new("POST", "/").with_body(r#"{"language": "es", "name": "D"} x"#);
        let err = req.json::<Greeting>().unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
    }

    #[test]
    fn route_path_is_relative_to_the_route_prefix() {
        let req = Request::new("GET", "/api/users/1").with_root_path("/api");
        assert_eq!(req.route_path(), "/users/1");
        assert_eq!(
            Request::new("GET", "/api")
                .with_root_path("/api")
                .route_path(),
            "/"
        );
        assert_eq!(
            Request::new("GET", "/x").with_root_path("/").route_path(),
            "/x"
        );
    }

    #[test]
    fn query_parameters_are_decoded() {
        let req = Request::new("get", "/search?q=hola%20dora&page=2&flag");
        assert_eq!(req.method(), "GET");
        assert_eq!(req.query("q").as_deref(), Some("hola dora"));
        assert_eq!(req.query("flag").as_deref(), Some(""));
        assert_eq!(req.query("missing"), None);

        #[derive(Debug, Deserialize)]
        struct Page {
            page: u32,
        }
        assert_eq!(req.query_as::<Page>().unwrap().page, 2);
        let err = Request::new("GET", "/?page=two")
            .query_as::<Page>()
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
