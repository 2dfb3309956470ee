use super::*;
use serde::Deserialize;

const USER: &[Segment] = &[Segment::Literal("users"), Segment::Param];
const ME: &[Segment] = &[Segment::Literal("users"), Segment::Literal("me")];
const USERS: &[Segment] = &[Segment::Literal("users")];
static TABLE: RouteTable = RouteTable::new(
    &[
        Route::new(0, "GET", USER),
        Route::new(1, "DELETE", USER),
        Route::new(2, "GET", ME),
        Route::new(3, "POST", USERS),
        Route::new(4, "GET", &[]),
    ],
    OpenApi::new(
        "Users",
        "1.0.0",
        "The \"users\" API.",
        &[
            Operation::new("/users/{id}", "get", r#"{"operationId":"get_user"}"#),
            Operation::new("/users", "post", r#"{"operationId":"create"}"#),
            Operation::new("/users/{id}", "delete", r#"{"operationId":"delete"}"#),
        ],
    ),
);

fn dispatch(method: &str, uri: &str) -> Result<(usize, Vec<String>), HttpResponse> {
    match TABLE.dispatch(&Request::new(method, uri)) {
        Dispatch::Route(id, params) => Ok((id, params.0)),
        Dispatch::Response(r) => Err(r),
    }
}

fn header<'r>(r: &'r HttpResponse, name: &str) -> Option<&'r str> {
    r.headers()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn paths_match_segment_by_segment_with_decoded_parameters() {
    assert_eq!(dispatch("GET", "/users/42"), Ok((0, vec!["42".into()])));
    assert_eq!(dispatch("GET", "/users/42/"), Ok((0, vec!["42".into()])));
    assert_eq!(
        dispatch("GET", "/users/dora%20the%2Fexplorer"),
        Ok((0, vec!["dora the/explorer".into()])),
        "decoded after splitting: %2F stays in its segment"
    );
    assert_eq!(dispatch("DELETE", "/users/7"), Ok((1, vec!["7".into()])));
    assert_eq!(dispatch("POST", "/users"), Ok((3, vec![])));
    assert_eq!(dispatch("GET", "/"), Ok((4, vec![])));
    assert_eq!(dispatch("GET", "/?q=1"), Ok((4, vec![])));
}

#[test]
fn a_literal_segment_beats_a_parameter() {
    assert_eq!(dispatch("GET", "/users/me"), Ok((2, vec![])));
    assert_eq!(dispatch("GET", "/users/mee"), Ok((0, vec!["mee".into()])));
}

#[test]
fn matching_is_relative_to_the_route_prefix() {
    let req = Request::new("GET", "/api/users/1").with_root_path("/api");
    assert!(matches!(TABLE.dispatch(&req), Dispatch::Route(0, _)));
}

#[test]
fn unknown_paths_are_404_and_other_methods_405_with_allow() {
    for uri in ["/nope", "/users/1/2", "/users//"] {
        let r = dispatch("GET", uri).unwrap_err();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
    }
    let r = dispatch("PUT", "/users/1").unwrap_err();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, "allow"), Some("DELETE, GET"));
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        body.contains("`/users/1` accepts DELETE, GET, not PUT"),
        "{body}"
    );

    let r = dispatch("GET", "/users").unwrap_err();
    assert_eq!(header(&r, "allow"), Some("POST"));
}

#[test]
fn openapi_json_is_served_with_get_only() {
    let r = dispatch("GET", "/openapi.json").unwrap_err();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "openapi": "3.0.3",
            "info": {"title": "Users", "version": "1.0.0", "description": "The \"users\" API."},
            "paths": {
                "/users/{id}": {
                    "get": {"operationId": "get_user"},
                    "delete": {"operationId": "delete"}
                },
                "/users": {"post": {"operationId": "create"}}
            }
        })
    );
    let keys: Vec<_> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2);

    let r = dispatch("POST", "/openapi.json").unwrap_err();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, "allow"), Some("GET"));

    let req = Request::new("GET", "/api/openapi.json").with_root_path("/api");
    let Dispatch::Response(r) = TABLE.dispatch(&req) else {
        panic!()
    };
    let doc: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(doc["servers"], serde_json::json!([{"url": "/api"}]));
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Order {
    Asc,
    Desc,
}

/// Resolves the parser as the generated code does, on a concrete type.
macro_rules! parser {
    ($ty:ty) => {{
        #[allow(unused_imports)]
        use super::{ParseFallback as _, ParseViaFromStr as _, ParseViaSerde as _};
        (&&&ParamType::<$ty>::NEW).__serve_parser()
    }};
}

#[test]
fn parameters_parse_with_from_str_else_serde() {
    assert_eq!(parser!(u64)("42"), Ok(42));
    assert_eq!(
        parser!(u64)("x"),
        Err("invalid digit found in string".into())
    );
    assert_eq!(parser!(String)("a b"), Ok("a b".to_owned()));
    assert_eq!(parser!(bool)("true"), Ok(true));
    assert_eq!(parser!(Order)("desc"), Ok(Order::Desc));
    let err = parser!(Order)("sideways").unwrap_err();
    assert!(err.contains("unknown variant `sideways`"), "{err}");
    assert_eq!(parser!(Option<u8>)("7"), Ok(Some(7)));
    let err = parser!(Option<u8>)("300").unwrap_err();
    assert!(err.contains("`300`"), "{err}");
}

#[test]
fn query_and_path_errors_name_the_parameter() {
    let q = QueryParams::new(&Request::new("GET", "/?page=two&flag"));
    let err = q.required("page", parser!(u32)).unwrap_err();
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err.message(),
        "invalid query parameter `page`: invalid digit found in string"
    );
    assert_eq!(
        q.required("limit", parser!(u32)).unwrap_err().message(),
        "missing query parameter `limit`"
    );
    assert_eq!(q.optional("limit", parser!(u32)), Ok(None));
    assert_eq!(q.optional("flag", parser!(String)), Ok(Some(String::new())));

    let p = PathParams(vec!["x".into()]);
    assert_eq!(
        p.get(0, "id", parser!(u64)).unwrap_err().message(),
        "invalid path parameter `id`: invalid digit found in string"
    );
}

#[test]
fn rejections_carry_every_reason_and_the_smallest_status() {
    let r = reject([
        Some(HttpError::unprocessable("a")),
        None,
        Some(HttpError::bad_request("b")),
    ]);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.body(), b"a; b");
}

#[derive(Debug)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}
impl std::error::Error for Boom {}

macro_rules! respond {
    ($value:expr) => {{
        #[allow(unused_imports)]
        use super::{RespondAsIs as _, RespondFallback as _, RespondServerError as _};
        let value = $value;
        (&&&Responder(&value)).__serve_kind().respond(value)
    }};
}

#[test]
fn results_keep_http_errors_and_other_errors_are_500() {
    let r = respond!(String::from("hi"));
    assert_eq!((r.status(), r.body()), (StatusCode::OK, &b"hi"[..]));

    let value: Result<String, HttpError> = Err(HttpError::not_found("no user 7"));
    let r = respond!(value);
    assert_eq!(
        (r.status(), r.body()),
        (StatusCode::NOT_FOUND, &b"no user 7"[..])
    );

    let value: Result<Json<u8>, Boom> = Err(Boom);
    let r = respond!(value);
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body(), b"Internal Server Error: boom");

    let value: std::io::Result<Json<u8>> = Ok(Json(1));
    assert_eq!(respond!(value).body(), b"1");

    let value: Result<(StatusCode, String), BoxError> = Err(HttpError::bad_request("no").into());
    assert_eq!(respond!(value).status(), StatusCode::BAD_REQUEST);
}
