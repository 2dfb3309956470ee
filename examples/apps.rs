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

use serde::Deserialize;
use serve_core::http::Request;
use serve_core::prelude::*;

#[deployment]
pub struct Greeter {
    greeting: String,
}

#[deployment]
impl Greeter {
    pub fn new(greeting: String) -> Self {
        Self { greeting }
    }

    pub fn call(&self, request: Request) -> String {
        let name = request.query("name").unwrap_or_else(|| "world".into());
        format!("{} {name}", self.greeting)
    }
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
