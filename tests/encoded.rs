//! Calls by method name with encoded arguments (`DeploymentHandle::call_encoded`): how a replica
//! will serve a caller in another process. Every kind of method, errors, and cancellation.

use futures::StreamExt;
use futures::executor::block_on;
use serve_core::__private::EncodedResponse;
use serve_core::prelude::*;
use serve_test_support::Gate;

#[deployment]
pub struct Calculator {
    release: Gate,
}

#[deployment]
impl Calculator {
    pub fn new(release: Gate) -> Self {
        Self { release }
    }

    pub fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }

    pub async fn greet(&self, name: String) -> String {
        format!("Hola {name}")
    }

    pub fn count(&self, limit: u32) -> impl Stream<Item = u32> + Send + use<> {
        futures::stream::iter(0..limit)
    }

    pub fn checked_sqrt(&self, x: f64) -> Result<f64, String> {
        if x < 0.0 {
            Err(format!("no square root of {x}"))
        } else {
            Ok(x.sqrt())
        }
    }

    pub async fn wait(&self) -> u8 {
        self.release.wait().await;
        1
    }
}

fn unary(response: Result<EncodedResponse, ServeError>) -> Result<Vec<u8>, ServeError> {
    match response? {
        EncodedResponse::Unary(result) => block_on(result),
        EncodedResponse::Stream(_) => panic!("a unary method answered with a stream"),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    postcard::from_bytes(bytes).unwrap()
}

#[test]
fn sync_async_and_streaming_methods_answer_by_name() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Calculator::bind(Gate::new())).unwrap();

    let sum = unary(handle.call_encoded("add", &encode(&(2i32, 3i32)))).unwrap();
    assert_eq!(decode::<i32>(&sum), 5);

    let greeting = unary(handle.call_encoded("greet", &encode(&("Dora",)))).unwrap();
    assert_eq!(decode::<String>(&greeting), "Hola Dora");

    let EncodedResponse::Stream(items) = handle.call_encoded("count", &encode(&(5u32,))).unwrap()
    else {
        panic!("a streaming method answers with a stream");
    };
    let items: Vec<u32> = block_on(items.collect::<Vec<_>>())
        .into_iter()
        .map(|item| decode(&item.unwrap()))
        .collect();
    assert_eq!(items, [0, 1, 2, 3, 4]);
    serve.shutdown();
}

#[test]
fn a_user_error_an_unknown_method_and_malformed_arguments_are_errors() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Calculator::bind(Gate::new())).unwrap();

    let root = unary(handle.call_encoded("checked_sqrt", &encode(&(16.0f64,)))).unwrap();
    assert_eq!(decode::<f64>(&root), 4.0);
    let err = unary(handle.call_encoded("checked_sqrt", &encode(&(-1.0f64,)))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(
        err.to_string(),
        "Calculator.checked_sqrt failed: no square root of -1"
    );

    let err = unary(handle.call_encoded("divide", &encode(&(1i32, 0i32)))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Wire);
    assert_eq!(
        err.to_string(),
        "Calculator could not cross to another process: the deployment has no method `divide`"
    );

    // Two bytes where `add` takes two i32s and a string where it takes numbers.
    for args in [vec![4u8], encode(&("two", "three"))] {
        let err = unary(handle.call_encoded("add", &args)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Wire, "{err}");
        assert!(
            err.to_string().contains("cannot decode a `(i32, i32)`"),
            "{err}"
        );
    }
    serve.shutdown();
}

#[test]
fn cancelling_an_encoded_call_cancels_the_request() {
    let serve = Serve::start().unwrap();
    let release = Gate::new();
    let handle = serve.run(Calculator::bind(release.clone())).unwrap();
    let EncodedResponse::Unary(waiting) = handle.call_encoded("wait", &encode(&())).unwrap() else {
        panic!("a unary method answers with a result");
    };
    waiting.cancel();
    let err = block_on(waiting).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    release.open();
    serve.shutdown();
}
