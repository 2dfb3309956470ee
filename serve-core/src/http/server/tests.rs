use super::*;
use crate::error::BoxError;

#[test]
fn prefixes_match_whole_segments() {
    assert!(matches("/", "/anything"));
    assert!(matches("/api", "/api"));
    assert!(matches("/api", "/api/users/1"));
    assert!(!matches("/api", "/apix"));
    assert_eq!(normalize_prefix("/api/").unwrap(), "/api");
    assert_eq!(normalize_prefix("/").unwrap(), "/");
    assert!(normalize_prefix("api").is_err());
}

#[derive(Debug)]
struct ModelFailed(ServeError);
impl std::fmt::Display for ModelFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the model failed")
    }
}
impl StdError for ModelFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

fn answer(response: HttpResponse) -> (u16, String) {
    let body = String::from_utf8_lossy(response.body()).into_owned();
    (response.status().as_u16(), body)
}

/// What a plain ingress's `call` fails with when it returned `err`.
fn returned(err: BoxError) -> ServeError {
    let name: std::sync::Arc<str> = "Relay".into();
    ServeError::user(err).at(&name, "call")
}

#[test]
fn the_ingress_requests_own_failures_keep_their_statuses() {
    let timed_out = Deadline::after(Duration::from_millis(50)).error();
    assert_eq!(
        answer(error_response(&timed_out)),
        (
            408,
            "Request Timeout: timed out: no result within 50ms; the request was cancelled".into()
        )
    );
    let full = ServeError::back_pressure(1);
    assert_eq!(
        answer(error_response(&full)),
        (503, "Request dropped due to backpressure".into())
    );
    assert_eq!(answer(error_response(&ServeError::cancelled())).0, 503);
    assert_eq!(answer(error_response(&ServeError::shut_down())).0, 503);
}

#[test]
fn downstream_failures_passed_on_answer_by_their_kind() {
    let full = || ServeError::back_pressure(1);
    let slow = || Deadline::after(Duration::from_millis(50)).error();
    for err in [
        returned(Box::new(full())),
        returned(Box::new(ModelFailed(full()))),
        returned(Box::new(ModelFailed(ServeError::upstream(full())))),
    ] {
        assert_eq!(
            answer(error_response(&err)),
            (503, "Request dropped due to backpressure".into()),
            "{err}"
        );
        assert_eq!(answer(handler_error_response(err.source().unwrap())).0, 503);
    }
    let err = returned(Box::new(slow()));
    assert_eq!(
        answer(error_response(&err)),
        (
            504,
            "Gateway Timeout: Relay.call failed: timed out: no result within 50ms; the request \
             was cancelled"
                .into()
        )
    );
    assert_eq!(answer(handler_error_response(&slow())).0, 504);
    let err = returned(Box::new(ModelFailed(ServeError::shut_down())));
    assert_eq!(answer(error_response(&err)).0, 503);

    // A cancelled downstream call is a 503, through a plain ingress and as a route handler's
    // own error alike.
    let err = returned(Box::new(ServeError::cancelled()));
    assert_eq!(answer(error_response(&err)).0, 503);
    assert_eq!(
        answer(handler_error_response(&ServeError::cancelled())).0,
        503
    );
    // An `HttpError` anywhere in the chain wins; anything else is a 500.
    let err = returned(Box::new(HttpError::not_found("no user 7")));
    assert_eq!(answer(error_response(&err)), (404, "no user 7".into()));
    let err = returned(Box::new(ModelFailed(ServeError::new(ErrorKind::Runtime))));
    assert_eq!(
        answer(error_response(&err)),
        (
            500,
            "Internal Server Error: Relay.call failed: the model failed".into()
        )
    );
}

#[test]
fn sse_events_carry_one_data_line_per_line() {
    assert_eq!(sse_event(None, b"a\nb\n"), b"data: a\ndata: b\n\n");
    assert_eq!(
        sse_event(Some("error"), b"boom"),
        b"event: error\ndata: boom\n\n"
    );
}
