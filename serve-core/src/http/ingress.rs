//! Runtime support of `#[ingress]`: routing a [`Request`] to a route handler, extracting its
//! arguments, and turning what it returns into an [`HttpResponse`].
//!
//! The macro generates the ingress's `call(&self, request: Request) -> HttpResponse`. A request
//! flows through it like this:
//!
//! 1. [`RouteTable::dispatch`] splits [`Request::route_path`] (the path below the application's
//!    route prefix) into percent-decoded segments and matches them against the routes: the
//!    matching route with the request's method wins (a literal segment beats a `{param}` at the
//!    first position where two matching routes differ). A path no route matches is 404, except
//!    `/openapi.json`, which serves the [`OpenApi`] document; a path that matches only routes of
//!    other methods is 405 with an `allow` header.
//! 2. The generated match arm of the route extracts each argument: a path parameter
//!    ([`PathParams::get`]), a query parameter ([`QueryParams::required`] / [`optional`]), the
//!    JSON body ([`json_body`]) or the whole request. Values are parsed with `FromStr` when the
//!    type has it, else with serde ([`ParamType`]). Every failure is collected; [`reject`] answers
//!    with all of them (422, or 400 for a body that is not JSON).
//! 3. The handler runs (a sync one through [`run_sync`], so it neither blocks the async workers
//!    nor is refused blocking waits), and its value becomes the response ([`Responder`]): anything
//!    [`IntoHttpResponse`], or a `Result` whose error is not a response, which is a 500 with the
//!    error's message, unless a downstream call's [`ServeError`](crate::ServeError) in it says
//!    otherwise (503 for back pressure or a stopping instance, 504 for a per-call timeout).
//!
//! Everything here is for the generated code (`serve_core::__private`), not public API.
//!
//! [`optional`]: QueryParams::optional

use std::borrow::Cow;
use std::fmt::Display;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

use super::request::Request;
use super::response::{HttpError, HttpResponse, IntoHttpResponse, Json, StatusCode};
use crate::error::BoxError;

/// The path below an application's route prefix that serves the OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// One segment of a route's path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this (percent-decoded) text.
    Literal(&'static str),
    /// `{name}`: matches any non-empty segment; its value is a path parameter.
    Param,
}

/// A route: a method and a path pattern, and the id the generated `call` matches on.
#[derive(Debug)]
pub struct Route {
    id: usize,
    method: &'static str,
    segments: &'static [Segment],
}

impl Route {
    /// `method` is upper-case (`"GET"`); `segments` is the path below the route prefix (`/` is
    /// no segment at all).
    pub const fn new(id: usize, method: &'static str, segments: &'static [Segment]) -> Self {
        Self {
            id,
            method,
            segments,
        }
    }

    /// The decoded values of the route's parameters, if `path` matches the pattern.
    fn matches(&self, path: &[Cow<'_, str>]) -> Option<Vec<String>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (pattern, segment) in self.segments.iter().zip(path) {
            match pattern {
                Segment::Literal(text) if text == segment => {}
                Segment::Param if !segment.is_empty() => params.push(segment.to_string()),
                _ => return None,
            }
        }
        Some(params)
    }

    /// Orders two routes that match the same path: a literal segment is more specific than a
    /// parameter, compared left to right.
    fn more_specific_than(&self, other: &Route) -> bool {
        let literal = |s: &Segment| matches!(s, Segment::Literal(_));
        let mine = self.segments.iter().map(literal);
        let theirs = other.segments.iter().map(literal);
        mine.gt(theirs)
    }
}

/// The outcome of matching a request against the routes.
#[derive(Debug)]
pub enum Dispatch {
    /// Run the route with this id; its path parameters in the order of the pattern.
    Route(usize, PathParams),
    /// Answered without a handler: 404, 405, or the OpenAPI document.
    Response(HttpResponse),
}

/// The routes of one `#[ingress]` impl block and its OpenAPI document (a `static` in the
/// generated `call`).
#[derive(Debug)]
pub struct RouteTable {
    routes: &'static [Route],
    openapi: OpenApi,
}

impl RouteTable {
    /// The table of `routes`, documented by `openapi`.
    pub const fn new(routes: &'static [Route], openapi: OpenApi) -> Self {
        Self { routes, openapi }
    }

    /// Finds the route for `req`, or the response when there is none.
    pub fn dispatch(&self, req: &Request) -> Dispatch {
        let path = split_path(req.route_path());
        let mut best: Option<(&Route, Vec<String>)> = None;
        let mut allowed: Vec<&'static str> = Vec::new();
        for route in self.routes {
            let Some(params) = route.matches(&path) else {
                continue;
            };
            if route.method != req.method() {
                allowed.push(route.method);
            } else if best
                .as_ref()
                .is_none_or(|(b, _)| route.more_specific_than(b))
            {
                best = Some((route, params));
            }
        }
        if let Some((route, params)) = best {
            return Dispatch::Route(route.id, PathParams(params));
        }
        let is_openapi = path.len() == 1 && path[0] == OPENAPI_PATH[1..];
        if is_openapi && allowed.is_empty() {
            if req.method() == "GET" {
                let document = self.openapi.document(req.root_path());
                return Dispatch::Response(
                    HttpResponse::new(StatusCode::OK)
                        .with_header("content-type", "application/json")
                        .with_body(document),
                );
            }
            allowed.push("GET");
        }
        if allowed.is_empty() {
            return Dispatch::Response(HttpResponse::text(
                StatusCode::NOT_FOUND,
                format!("Not Found: no route matches `{}`", req.route_path()),
            ));
        }
        allowed.sort_unstable();
        allowed.dedup();
        let allow = allowed.join(", ");
        Dispatch::Response(
            HttpResponse::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "Method Not Allowed: `{}` accepts {allow}, not {}",
                    req.route_path(),
                    req.method()
                ),
            )
            .with_header("allow", allow),
        )
    }
}

/// `/users/42/` -> `["users", "42"]`, each segment percent-decoded (after splitting, so an
/// encoded `%2F` stays inside its segment). One trailing slash is ignored; `/` is no segment.
fn split_path(path: &str) -> Vec<Cow<'_, str>> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Vec::new();
    }
    path.split('/')
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
        .collect()
}

/// The path parameters of the matched route, decoded, in the order of the pattern.
#[derive(Debug, Default)]
pub struct PathParams(Vec<String>);

impl PathParams {
    /// Parameter `index` (named `name` in the pattern), parsed: 422 naming it if that fails.
    pub fn get<T>(&self, index: usize, name: &str, parse: Parser<T>) -> Result<T, HttpError> {
        let raw = self.0.get(index).map_or("", String::as_str);
        parse(raw)
            .map_err(|e| HttpError::unprocessable(format!("invalid path parameter `{name}`: {e}")))
    }
}

/// The request's query parameters, decoded once for all of a handler's arguments.
#[derive(Debug)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The query string of `req`, decoded.
    pub fn new(req: &Request) -> Self {
        Self(req.query_pairs())
    }

    /// The first value of `name`, parsed; missing or unparsable: 422 naming it.
    pub fn required<T>(&self, name: &str, parse: Parser<T>) -> Result<T, HttpError> {
        match self.optional(name, parse)? {
            Some(value) => Ok(value),
            None => Err(HttpError::unprocessable(format!(
                "missing query parameter `{name}`"
            ))),
        }
    }

    /// The first value of `name`, parsed, or `None` when absent; unparsable: 422 naming it.
    pub fn optional<T>(&self, name: &str, parse: Parser<T>) -> Result<Option<T>, HttpError> {
        let Some((_, raw)) = self.0.iter().find(|(k, _)| k == name) else {
            return Ok(None);
        };
        parse(raw)
            .map(Some)
            .map_err(|e| HttpError::unprocessable(format!("invalid query parameter `{name}`: {e}")))
    }
}

/// The request body as JSON (`Request::json`: 400 if it is not JSON, 422 naming the field that
/// does not fit `T`).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<Json<T>, HttpError> {
    req.json().map(Json)
}

/// The response for the arguments that could not be extracted: every reason, one per line-ish
/// (`; `-separated), with the smallest status among them (400 for a body that is not JSON wins
/// over 422).
pub fn reject<const N: usize>(errors: [Option<HttpError>; N]) -> HttpResponse {
    let errors: Vec<HttpError> = errors.into_iter().flatten().collect();
    let status = errors
        .iter()
        .map(HttpError::status)
        .min_by_key(|s| s.as_u16())
        .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let message: Vec<&str> = errors.iter().map(HttpError::message).collect();
    HttpResponse::text(status, message.join("; "))
}

/// The arm for a route id the table does not have (cannot happen: ids come from the table).
pub fn unknown_route() -> HttpResponse {
    HttpResponse::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error: unknown route",
    )
}

/// Runs a synchronous route handler from the async `call`.
///
/// On a multi-threaded runtime (a serve instance's) it runs in `block_in_place`: the worker's
/// other tasks move to another thread while it runs, and blocking waits (`.result()` on a
/// downstream handle call) are allowed, as for a sync `#[deployment]` method. Elsewhere (a
/// current-thread runtime, no runtime) it runs in place.
pub fn run_sync<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| crate::util::blocking::allow_blocking(f))
    } else {
        f()
    }
}

// --- parsing path and query parameters: `FromStr`, else serde -------------------------------------

/// Parses a parameter's raw (decoded) text; the error is a short reason.
pub type Parser<T> = fn(&str) -> Result<T, String>;

/// Picks how a parameter type is parsed, by autoref specialization on a concrete type:
/// `(&&&ParamType::<T>::NEW).__serve_parser()` resolves to [`ParseViaFromStr`] when `T: FromStr`,
/// else to [`ParseViaSerde`] when `T: Deserialize`, else to [`ParseFallback`], whose bound fails
/// with a message that says what to do.
pub struct ParamType<T>(PhantomData<fn() -> T>);

impl<T> ParamType<T> {
    /// The marker value.
    pub const NEW: Self = ParamType(PhantomData);
}

/// `T: FromStr` (preferred: `u64`, `String`, `IpAddr`, ...).
pub trait ParseViaFromStr {
    /// The parameter type.
    type Value;
    /// The parser.
    fn __serve_parser(&self) -> Parser<Self::Value>;
}

impl<T> ParseViaFromStr for &&ParamType<T>
where
    T: FromStr,
    T::Err: Display,
{
    type Value = T;
    fn __serve_parser(&self) -> Parser<T> {
        |raw| raw.parse::<T>().map_err(|e| e.to_string())
    }
}

/// `T: Deserialize` (a unit-variant enum, a newtype, an `Option`, ...).
pub trait ParseViaSerde {
    /// The parameter type.
    type Value;
    /// The parser.
    fn __serve_parser(&self) -> Parser<Self::Value>;
}

impl<T: DeserializeOwned> ParseViaSerde for &ParamType<T> {
    type Value = T;
    fn __serve_parser(&self) -> Parser<T> {
        |raw| T::deserialize(ParamDeserializer(raw)).map_err(|e| e.to_string())
    }
}

/// Neither: reported through `PathOrQueryParameter`.
pub trait ParseFallback {
    /// The parameter type.
    type Value;
    /// Fails to compile, with a note saying what the type needs.
    fn __serve_parser(&self) -> Parser<Self::Value>
    where
        Self::Value: PathOrQueryParameter;
}

impl<T> ParseFallback for ParamType<T> {
    type Value = T;
    fn __serve_parser(&self) -> Parser<T>
    where
        T: PathOrQueryParameter,
    {
        |_| Err(String::new())
    }
}

/// Not implemented for anything: its bound is what a route argument of a type that is neither
/// `FromStr` nor `Deserialize` fails on.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a path or query parameter",
    label = "neither `FromStr` nor `serde::Deserialize`",
    note = "a route handler's argument is parsed from the text of a path segment or query value: implement `FromStr` or derive `Deserialize` for it, or take it from the body as `Json<{Self}>`"
)]
pub trait PathOrQueryParameter {}

/// A serde deserializer over one parameter's text: numbers and booleans are parsed from it,
/// strings and enum variant names are the text itself.
struct ParamDeserializer<'a>(&'a str);

macro_rules! parse_as {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0.parse::<$ty>() {
                Ok(value) => visitor.$visit(value),
                Err(e) => Err(serde::de::Error::custom(format_args!("`{}`: {e}", self.0))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ParamDeserializer<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0)
    }

    parse_as! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
        deserialize_char => visit_char: char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let text: serde::de::value::StrDeserializer<'_, Self::Error> = self.0.into_deserializer();
        text.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

// --- responses ------------------------------------------------------------------------------------

/// Wraps a handler's return value to pick, by autoref specialization,
/// `(&&&Responder(&value)).__serve_kind().respond(value)`: [`RespondAsIs`] when the value is
/// [`IntoHttpResponse`] (a `Result<_, HttpError>` keeps the error's status), else
/// [`RespondServerError`] for a `Result<T, E>` whose `E` is any error (500), else
/// [`RespondFallback`], whose `respond` fails to compile with `IntoHttpResponse`'s note.
pub struct Responder<'a, R>(pub &'a R);

/// How the value becomes the response: as it is.
pub struct AsIs;

impl AsIs {
    /// The value's response.
    pub fn respond<R: IntoHttpResponse>(self, value: R) -> HttpResponse {
        value.into_http_response()
    }
}

/// How the value becomes the response: `Ok` as it is, `Err` as a 500.
pub struct ServerErrorOnErr;

impl ServerErrorOnErr {
    /// The value's response.
    pub fn respond<T: IntoHttpResponse, E: Into<BoxError>>(
        self,
        value: Result<T, E>,
    ) -> HttpResponse {
        match value {
            Ok(value) => value.into_http_response(),
            Err(e) => server_error(e.into()),
        }
    }
}

/// The value is [`IntoHttpResponse`].
pub trait RespondAsIs {
    /// The conversion.
    fn __serve_kind(&self) -> AsIs {
        AsIs
    }
}

impl<R: IntoHttpResponse> RespondAsIs for &&Responder<'_, R> {}

/// The value is a `Result` whose error is an error, not a response.
pub trait RespondServerError {
    /// The conversion.
    fn __serve_kind(&self) -> ServerErrorOnErr {
        ServerErrorOnErr
    }
}

impl<T: IntoHttpResponse, E: Into<BoxError>> RespondServerError for &Responder<'_, Result<T, E>> {}

/// Anything else: `respond` then reports that it is not [`IntoHttpResponse`].
pub trait RespondFallback {
    /// The conversion.
    fn __serve_kind(&self) -> AsIs {
        AsIs
    }
}

impl<R> RespondFallback for Responder<'_, R> {}

/// The response to a route handler's error that is not an [`HttpError`]: 500 with its message.
/// An `HttpError` inside it keeps its status, and a downstream call's
/// [`ServeError`](crate::ServeError) in it (passed on with `?`, or kept as the source of the
/// handler's own error) answers by its kind: 503 for back pressure or a stopping instance, 504 for
/// a `.timeout(..)` that ran out (see
/// [`handler_error_response`](super::server::handler_error_response)).
fn server_error(e: BoxError) -> HttpResponse {
    super::server::handler_error_response(&*e)
}

// --- the OpenAPI document -------------------------------------------------------------------------

/// One operation of the document: its path template, lower-case method, and the Operation
/// Object as JSON text (built by the macro at compile time).
#[derive(Debug)]
pub struct Operation {
    path: &'static str,
    method: &'static str,
    json: &'static str,
}

impl Operation {
    /// An operation.
    pub const fn new(path: &'static str, method: &'static str, json: &'static str) -> Self {
        Self { path, method, json }
    }
}

/// The OpenAPI 3.0 document of an ingress: `info` and the operations grouped by path. The
/// operations are JSON text from compile time; joining them happens once, on first use. An
/// application under a route prefix gets a `servers` entry with that prefix, since the paths are
/// relative to it.
#[derive(Debug)]
pub struct OpenApi {
    title: &'static str,
    version: &'static str,
    description: &'static str,
    operations: &'static [Operation],
    at_root: OnceLock<String>,
}

impl OpenApi {
    /// A document; an empty `description` is left out.
    pub const fn new(
        title: &'static str,
        version: &'static str,
        description: &'static str,
        operations: &'static [Operation],
    ) -> Self {
        Self {
            title,
            version,
            description,
            operations,
            at_root: OnceLock::new(),
        }
    }

    /// The document for an application whose route prefix is `root_path` (`""` at `/`).
    pub fn document(&self, root_path: &str) -> String {
        if root_path.is_empty() {
            self.at_root.get_or_init(|| self.render("")).clone()
        } else {
            self.render(root_path)
        }
    }

    fn render(&self, root_path: &str) -> String {
        let string = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::with_capacity(256 + self.operations.len() * 256);
        out.push_str(r#"{"openapi":"3.0.3","info":{"title":"#);
        out.push_str(&string(self.title));
        out.push_str(r#","version":"#);
        out.push_str(&string(self.version));
        if !self.description.is_empty() {
            out.push_str(r#","description":"#);
            out.push_str(&string(self.description));
        }
        out.push('}');
        if !root_path.is_empty() {
            out.push_str(r#","servers":[{"url":"#);
            out.push_str(&string(root_path));
            out.push_str("}]");
        }
        out.push_str(r#","paths":{"#);
        let mut paths: Vec<&str> = Vec::new();
        for op in self.operations {
            if !paths.contains(&op.path) {
                paths.push(op.path);
            }
        }
        for (i, path) in paths.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&string(path));
            out.push_str(":{");
            let ops = self.operations.iter().filter(|op| op.path == *path);
            for (j, op) in ops.enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(&string(op.method));
                out.push(':');
                out.push_str(op.json);
            }
            out.push('}');
        }
        out.push_str("}}");
        out
    }
}

#[cfg(test)]
mod tests;
