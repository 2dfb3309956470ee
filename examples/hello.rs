//! The basic `DeploymentHandle` example: the Ray Serve guide's `hello.py`.
//!
//! `LanguageClassifier` receives handles to the two responders through its constructor, reads
//! the JSON body of each HTTP request and forwards the name to one of them with
//! `handle.say_hello.remote(name)`.
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
//! Run it like `serve run hello:language_classifier`: `cargo run --example hello` serves on
//! http://127.0.0.1:8000 until Ctrl-C (`-- --port 9000`, `-- config`, `-- status`, `-- --help`:
//! the binary has the `serve` verbs). Then, in another terminal, `cargo run --example hello_client`
//! prints `Hola Dora`, as does
//! `curl -d '{"language": "spanish", "name": "Dora"}' http://127.0.0.1:8000`.
//!
//! As a cluster (the guide's chapter "Running on many machines"): start a NATS server
//! (`nats-server -a 127.0.0.1 -p 4222`), then the head and two workers, each in its own terminal:
//!
//! ```text
//! cargo run --example hello -- run --cluster nats://127.0.0.1:4222 --min-workers 2
//! cargo run --example hello -- worker --cluster nats://127.0.0.1:4222 --node-name w1
//! cargo run --example hello -- worker --cluster nats://127.0.0.1:4222 --node-name w2
//! ```
//!
//! The head waits for the two workers, places the responders on them and keeps
//! `LanguageClassifier` (the ingress) next to its HTTP proxy on port 8000: the same `curl` prints
//! `Hola Dora`, and `cargo run --example hello -- status` shows each replica's `node`.

use serde::Deserialize;
use serve_core::http::{HttpError, Request, StatusCode};
use serve_core::prelude::*;

/// The request body.
#[derive(Debug, Deserialize)]
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

    pub async fn call(&self, http_request: Request) -> Result<String, HttpError> {
        // A body that is not JSON is a 400, JSON without `language`/`name` a 422.
        let Greeting { language, name } = http_request.json()?;
        let response: DeploymentResponse<String> = match language.as_str() {
            "spanish" => self.spanish_responder.say_hello.remote(name),
            "french" => self.french_responder.say_hello.remote(name),
            _ => return Ok("Please try again.".to_string()),
        };
        response
            .await
            .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
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

fn main() -> std::process::ExitCode {
    let spanish_responder = SpanishResponder::bind();
    let french_responder = FrenchResponder::bind();
    let language_classifier = LanguageClassifier::bind(spanish_responder, french_responder);
    serve_core::main(language_classifier)
}
