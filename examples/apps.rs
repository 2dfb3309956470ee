//! Several applications in one binary, picked as Ray's `serve run module:app` picks one: Ray's
//! guide builds applications from arguments (`app_builder(args)`) and names them by import path.
//!
//! ```python
//! # File name: apps.py
//! from ray import serve
//!
//! @serve.deployment
//! class Greeter:
//!     def __init__(self, greeting: str):
//!         self.greeting = greeting
//!
//!     def reconfigure(self, user_config: dict):
//!         self.greeting = user_config.get("greeting", self.greeting)
//!
//!     def __call__(self, request) -> str:
//!         return f"{self.greeting} {request.query_params['name']}"
//!
//! @serve.deployment
//! class Echo:
//!     async def __call__(self, request) -> bytes:
//!         return await request.body()
//!
//! def greeter(args: dict):
//!     return Greeter.bind(args.get("greeting", "Hello"))
//!
//! echo = Echo.bind()
//! ```
//!
//! `serve run apps:echo` serves `Echo`; `serve run apps:greeter greeting=Hola` builds `Greeter`
//! from its arguments. Here: `cargo run --example apps -- run echo` (or `run apps:echo`), and a
//! config file whose application says `import_path: apps:greeter` and `args: {greeting: Hola}`
//! serves the greeter (`tests/apps.rs`). `cargo run --example apps -- config` prints both.
//! A config's `user_config: {greeting: Bonjour}` for `Greeter` changes the greeting of the
//! running replicas (`reconfigure`), as `apps deploy` does to a running server
//! (`tests/control_api.rs`).

use std::sync::RwLock;

use serde::Deserialize;
use serve_core::http::Request;
use serve_core::prelude::*;

#[deployment]
pub struct Greeter {
    greeting: RwLock<String>,
}

#[deployment]
impl Greeter {
    pub fn new(greeting: String) -> Self {
        Self {
            greeting: RwLock::new(greeting),
        }
    }

    pub fn call(&self, request: Request) -> String {
        let name = request.query("name").unwrap_or_else(|| "world".into());
        let greeting = self.greeting.read().unwrap_or_else(|e| e.into_inner());
        format!("{greeting} {name}")
    }

    /// A `user_config` with a `greeting` replaces it in the running replica.
    pub fn reconfigure(&self, config: GreeterConfig) {
        if let Some(greeting) = config.greeting {
            *self.greeting.write().unwrap_or_else(|e| e.into_inner()) = greeting;
        }
    }
}

/// The greeter's `user_config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreeterConfig {
    greeting: Option<String>,
}

#[deployment]
#[derive(Default)]
pub struct Echo;

#[deployment]
impl Echo {
    pub async fn call(&self, request: Request) -> Vec<u8> {
        request.body().to_vec()
    }
}

/// The greeter's arguments, from a config file's `args`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreeterArgs {
    #[serde(default = "hello")]
    greeting: String,
}

fn hello() -> String {
    "Hello".into()
}

fn main() -> std::process::ExitCode {
    serve_core::apps()
        .app_with_args("greeter", |args: GreeterArgs| Greeter::bind(args.greeting))
        .app("echo", Echo::bind())
        .main()
}
