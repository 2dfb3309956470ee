//! Procedural macros of `serve-core`: `#[deployment]` and `#[remote]`.
//!
//! Use them through `serve-core`, which re-exports them; the generated code names only
//! `::serve_core::__private` items. This crate holds the entry points; the work happens on
//! `proc_macro2` tokens in its modules: `options` and `parse` build the `model`, `codegen` turns
//! it into tokens, `remote` handles tasks. The exact expansion is specified in `EXPANSION.md`.

use proc_macro::TokenStream;

mod codegen;
mod expand;
mod model;
mod options;
mod parse;
mod remote;
mod util;

#[cfg(test)]
mod testing;

/// Turns a struct into a deployment, and its inherent `impl` block into typed handle stubs.
///
/// On the struct, the options `name = "..."`, `num_replicas = N` and `max_ongoing_requests = N`
/// (all optional) set the deployment's defaults:
///
/// ```ignore
/// #[deployment(num_replicas = 2)]
/// pub struct Adder { increment: i32 }
///
/// #[deployment]
/// impl Adder {
///     pub fn new(increment: i32) -> Self { Adder { increment } }
///     pub fn call(&self, x: i32) -> i32 { x + self.increment }
/// }
/// ```
///
/// expands to the user's items, unchanged, plus (abridged):
///
/// ```ignore
/// impl DeploymentDefaults for Adder { /* name "Adder", 2 replicas */ }
///
/// pub struct AdderHandle { pub call: AdderCallStub, /* router */ }
/// impl Deployment for Adder { type Handle = AdderHandle; }
///
/// pub struct AdderCallStub { /* router */ }
/// impl AdderCallStub {
///     pub fn remote(&self, x: impl IntoArg<i32>) -> DeploymentResponse<i32> { /* ... */ }
/// }
/// impl AdderHandle {
///     // because a method is named `call`: `handle.remote(x)` is `handle.call.remote(x)`
///     pub fn remote(&self, x: impl IntoArg<i32>) -> DeploymentResponse<i32> { /* ... */ }
/// }
/// impl Adder {
///     // the constructor's arguments; a `DeploymentHandle<D>` argument takes an `Application<D>`
///     pub fn bind(increment: i32) -> Application<Adder> { /* ... */ }
/// }
/// ```
///
/// Endpoints are `&self` methods, sync or `async`, returning `T`, `Result<T, E>` or
/// `impl Stream<Item = T>` (a `.remote(..)` of the latter returns a `DeploymentResponseGenerator`).
/// Mistakes (`&mut self`, borrowed arguments, generic methods, ...) are reported on the offending
/// token, all at once; the valid methods still get their stubs.
#[proc_macro_attribute]
pub fn deployment(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::deployment(args.into(), item.into()).into()
}

/// Turns a free function into a task that runs on the runtime.
///
/// ```ignore
/// #[remote]
/// pub fn say_hi_task(inp: String) -> String { format!("got '{inp}'") }
/// ```
///
/// expands to (abridged):
///
/// ```ignore
/// #[derive(Clone, Copy, Debug)]
/// pub struct say_hi_task;
/// impl say_hi_task {
///     /// Runs the task on the runtime; returns a reference to its result.
///     pub fn remote(&self, inp: impl IntoArg<String>) -> ObjectRef<String> { /* ... */ }
///     /// The original function, callable directly.
///     pub fn call(inp: String) -> String { format!("got '{inp}'") }
/// }
/// ```
///
/// so `say_hi_task.remote("hi")` schedules it and `say_hi_task::call(..)` runs it in place.
/// The function must be sync or `async`, not generic, and take owned arguments; it returns `T` or
/// `Result<T, E>` (streaming tasks are not supported).
#[proc_macro_attribute]
pub fn remote(args: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(args.into(), item.into()).into()
}
