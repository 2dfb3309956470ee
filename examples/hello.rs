//! The basic `DeploymentHandle` example: the Ray Serve guide's `hello.py`.
//!
//! `LanguageClassifier` receives handles to the two responders through its constructor and
//! forwards each request to one of them with `handle.say_hello.remote(name)`. HTTP ingress comes
//! later; until then the request body is a serde struct that `main` sends through the handle.
//!
//! ```python
//! # File name: hello.py
//! from ray import serve
//! from ray.serve.handle import DeploymentHandle
//!
//!
//! @serve.deployment
//! class LanguageClassifer:
//!     def __init__(
//!         self, spanish_responder: DeploymentHandle, french_responder: DeploymentHandle
//!     ):
//!         self.spanish_responder = spanish_responder
//!         self.french_responder = french_responder
//!
//!     async def __call__(self, http_request):
//!         request = await http_request.json()
//!         language, name = request["language"], request["name"]
//!
//!         if language == "spanish":
//!             response = self.spanish_responder.say_hello.remote(name)
//!         elif language == "french":
//!             response = self.french_responder.say_hello.remote(name)
//!         else:
//!             return "Please try again."
//!
//!         return await response
//!
//!
//! @serve.deployment
//! class SpanishResponder:
//!     def say_hello(self, name: str):
//!         return f"Hola {name}"
//!
//!
//! @serve.deployment
//! class FrenchResponder:
//!     def say_hello(self, name: str):
//!         return f"Bonjour {name}"
//!
//!
//! spanish_responder = SpanishResponder.bind()
//! french_responder = FrenchResponder.bind()
//! language_classifier = LanguageClassifer.bind(spanish_responder, french_responder)
//! ```
//!
//! The guide's scaling note: with 75% Spanish and 25% French traffic, give `SpanishResponder` 3
//! replicas and `FrenchResponder` 1. Here that is `#[deployment(num_replicas = 3)]` on the struct.
//!
//! Run it with `cargo run --example hello`; it prints `Hola Dora`, `Bonjour Dora` and
//! `Please try again.`.

use serde::{Deserialize, Serialize};
use serve_core::prelude::*;

/// The request body (the Python reads it from the HTTP request's JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Greeting {
    pub language: String,
    pub name: String,
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

    pub async fn call(&self, request: Greeting) -> Result<String, ServeError> {
        let Greeting { language, name } = request;
        let response: DeploymentResponse<String> = match language.as_str() {
            "spanish" => self.spanish_responder.say_hello.remote(name),
            "french" => self.french_responder.say_hello.remote(name),
            _ => return Ok("Please try again.".to_string()),
        };
        response.await
    }

    /// How many replicas serve each responder (the deployments' `num_replicas`).
    pub fn replicas(&self) -> (usize, usize) {
        (
            self.spanish_responder.num_replicas(),
            self.french_responder.num_replicas(),
        )
    }
}

/// The hot path (75% of the traffic in the guide's note): three replicas.
#[deployment(num_replicas = 3)]
#[derive(Default)]
pub struct SpanishResponder;

#[deployment]
impl SpanishResponder {
    pub fn say_hello(&self, name: String) -> String {
        format!("Hola {name}")
    }
}

#[deployment(num_replicas = 1)]
#[derive(Default)]
pub struct FrenchResponder;

#[deployment]
impl FrenchResponder {
    pub fn say_hello(&self, name: String) -> String {
        format!("Bonjour {name}")
    }
}

fn request(language: &str, name: &str) -> Greeting {
    Greeting {
        language: language.to_string(),
        name: name.to_string(),
    }
}

fn main() -> Result<(), ServeError> {
    let spanish_responder = SpanishResponder::bind();
    let french_responder = FrenchResponder::bind();
    let language_classifier = LanguageClassifier::bind(spanish_responder, french_responder);

    let handle: DeploymentHandle<LanguageClassifier> = serve_core::run(language_classifier)?;

    let cases = [
        (request("spanish", "Dora"), "Hola Dora"),
        (request("french", "Dora"), "Bonjour Dora"),
        (request("german", "Dora"), "Please try again."),
    ];
    // Send all three at once (each `.remote(..)` dispatches immediately), then collect the answers.
    let responses: Vec<_> = cases
        .iter()
        .map(|(body, _)| handle.remote(body.clone()))
        .collect();
    for ((body, expected), response) in cases.iter().zip(responses) {
        let greeting = response.result()?;
        assert_eq!(greeting, *expected, "{body:?}");
        println!("{greeting}");
    }

    assert_eq!(handle.replicas.remote().result()?, (3, 1));

    serve_core::shutdown();
    Ok(())
}
