//! Procedural macros of `serve-core`: `#[deployment]` (with `#[batch]` on its methods),
//! `#[ingress]` with its route attributes, and `#[remote]`.
//!
//! Use them through `serve-core`, which re-exports them; the generated code names only
//! `::serve_core::__private` items. This crate holds the entry points; the work happens on
//! `proc_macro2` tokens in its modules: `options` and `parse` build the `model`, `codegen` turns
//! it into tokens, `ingress` adds the routes on top of them, `remote` handles tasks. The exact
//! expansion is specified in `EXPANSION.md`.

use proc_macro::TokenStream;

use crate::model::HttpMethod;

mod batch;
mod codegen;
mod expand;
mod handles;
mod ingress;
mod model;
mod multiplexed;
mod options;
mod parse;
mod remote;
mod stream_arg;
// The rules of deployment options, shared with serve-core, which keeps them: this crate cannot
// depend on serve-core (serve-core depends on it, to re-export the macros), so it compiles the
// same file. That file is std-only and names nothing through `crate::` or `super::` for this
// reason. Not every rule is a compile-time one (`-1` as unlimited is a config file's): some go
// unused here.
#[path = "../../serve-core/src/config/rules.rs"]
#[allow(dead_code)]
mod rules;
mod util;

#[cfg(test)]
mod testing;

/// Turns a struct into a deployment, and its inherent `impl` block into typed handle stubs.
///
/// On the struct, the options (all optional) set the deployment's defaults: `name = "..."`,
/// `num_replicas = N`, `max_ongoing_requests = N`, `max_queued_requests = N`,
/// `autoscaling(min_replicas = N, max_replicas = N, initial_replicas = N, target_ongoing_requests = X,
/// upscale_delay_s = X, downscale_delay_s = X, downscale_to_zero_delay_s = X, look_back_period_s = X,
/// metrics_interval_s = X, upscaling_factor = X, downscaling_factor = X)`, `health_check_period_s = X`,
/// `health_check_timeout_s = X`, `graceful_shutdown_timeout_s = X`, `num_cpus = X`, `num_gpus = X`
/// and `resources(name = X, ..)` (see `EXPANSION.md` for the rules and defaults):
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
/// A constructor parameter that holds handles in a `Vec`, `Option`, `HashMap`/`BTreeMap` (as
/// values), array or tuple, nested or not, is bound with the same shape of applications:
/// `new(models: Vec<DeploymentHandle<Model>>)` gives `bind(models: Vec<Application<Model>>)`
/// (serve-core's `Bindable` wires it). A handle anywhere else the macro can see (`Arc<..>`,
/// `Rc<..>`, a generic struct of yours, a map's key, a tuple beside a plain value) is an error on
/// that type.
///
/// Endpoints are `&self` methods, sync or `async`, returning `T`, `Result<T, E>` or
/// `impl Stream<Item = T>` (a `.remote(..)` of the latter returns a `DeploymentResponseGenerator`).
///
/// A parameter of type `ArgStream<T>` takes a stream (streams into streams): its stub parameter
/// is `impl IntoArgStream<T>`, which accepts another call's `DeploymentResponseGenerator<T>` or
/// any `Stream<Item = T> + Send + 'static`, and the method reads it as a stream of
/// `Result<T, ServeError>`. Such a method must be `async fn` or return a stream; `new` and
/// `#[remote]` tasks cannot take one:
///
/// ```ignore
/// pub fn predict(&self, tokens: ArgStream<u32>) -> impl Stream<Item = Result<u32, ServeError>> + Send + '_
/// // the stub:
/// pub fn remote(&self, tokens: impl IntoArgStream<u32>) -> DeploymentResponseGenerator<u32>
/// // so stages compose: detok.detokenize.remote(model.predict.remote(tok.tokenize.remote(text)))
/// ```
///
/// A streaming HTTP ingress may return `StreamingResponse<impl Stream<Item = T>>` to set its
/// status, headers and media type: it streams `StreamPart<T>`s, the head first.
/// Mistakes (`&mut self`, borrowed arguments, generic methods, ...) are reported on the offending
/// token, all at once; the valid methods still get their stubs.
///
/// **Dynamic batching**: `#[batch(max_batch_size = N, batch_wait_timeout_s = S,
/// max_concurrent_batches = M)]` (each optional; Ray's defaults 10, 0.01, 1) on an endpoint taking
/// one `Vec<T>` and returning `Vec<R>` or `Result<Vec<R>, E>`. `#[deployment]` consumes the
/// attribute. The stub takes one `T` and returns a `DeploymentResponse<R>`; on the replica, the
/// call's closure hands its item to the replica's batcher for the method and awaits its own
/// result (abridged):
///
/// ```ignore
/// #[batch(max_batch_size = 8)]
/// pub fn predict(&self, xs: Vec<f32>) -> Vec<f32> { .. }
/// // expands (besides the usual handle field and stub struct) to:
/// impl Model { const __serve_batch_predict: BatchSpec = BatchSpec::new("predict", 8, 0.01, 1); }
/// impl ModelPredictStub {
///     pub fn remote(&self, xs: impl IntoArg<f32>) -> DeploymentResponse<f32> {
///         // an ordinary unary call (routing, slots, queue, cancellation, cluster mode unchanged)
///         RequestRouter::call_async(.., "predict", (xs,), |this, (xs,)| async move {
///             call_batched(Model::predict, &Model::__serve_batch_predict,
///                          BatchFn::Sync(|this, items| Model::predict(this, items)), this, xs).await
///         }, ..)
///     }
/// }
/// impl Deployment for Model { fn __batches() -> &'static [BatchSpec] { /* the specs */ } }
/// // and `bind`'s constructor declares `Model::predict` on the replica before `new` runs
/// ```
///
/// A batch never grows past the deployment's `max_ongoing_requests` (each waiting call holds a
/// slot; the default is 5): set it to at least `max_batch_size` (a warning is logged at deploy
/// otherwise). Change the batch size and wait at run time with
/// `serve_core::batching(Self::predict)?.set_max_batch_size(n)` (e.g. from `reconfigure`).
/// Streaming batches are not supported (a compile error). See the guide's batching chapter.
///
/// A method marked [`#[multiplexed(max_num_models_per_replica = N)]`](macro@multiplexed) is the
/// deployment's model loader, not an endpoint: it is taken out of the impl block and replaced by a
/// method of the same name returning the replica's cached model (`Result<Arc<M>, ServeError>`).
/// The handle's stubs call through a `CallTarget` (the router and the handle's options), so
/// `handle.options().multiplexed_model_id(id)` sends each call for model `id`.
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

/// Turns a deployment's impl block into an HTTP API: methods with a route attribute
/// (`#[get("/path")]`, `#[post]`, `#[put]`, `#[delete]`, `#[patch]`) handle the requests of their
/// route, with typed arguments taken from the request. Use it instead of `#[deployment]` on the
/// impl block; the struct keeps `#[deployment(..)]`.
///
/// ```ignore
/// #[deployment]
/// #[derive(Default)]
/// pub struct Users { /* .. */ }
///
/// /// The users API (the OpenAPI document's description).
/// #[ingress]
/// impl Users {
///     /// Reads a user (the operation's summary).
///     #[get("/users/{id}")]
///     pub async fn get_user(&self, id: u64, verbose: Option<bool>) -> Result<Json<User>, HttpError> { .. }
///     #[post("/users", tags = ["users"])]
///     pub fn create(&self, body: Json<NewUser>) -> (StatusCode, Json<User>) { .. }
///     #[get("/health")]
///     pub fn health(&self) -> String { .. }
///     // No route attribute: an ordinary endpoint, as under `#[deployment]`.
///     pub fn count(&self) -> usize { .. }
/// }
///
/// serve.run_http(Users::bind(), "/api")?;   // GET /api/users/7?verbose=true
/// ```
///
/// **Arguments** (after `&self`): one named like a `{param}` of the path is that path parameter;
/// a `Json<T>` is the JSON body (at most one); a `Request` is the whole request (at most one);
/// any other is the query parameter of its name (`Option<T>`: optional). Path and query values are
/// percent-decoded and parsed with `FromStr`, or with serde when the type has no `FromStr` (a
/// unit-variant enum). Failures answer 422 naming the parameter or the body's field (a body that
/// is not JSON: 400); every failing argument is listed.
///
/// **Return value**: anything `IntoHttpResponse` (`String`, `Json<T>`, `HttpResponse`,
/// `(StatusCode, body)`, `Result<_, HttpError>` keeping the error's status), or a `Result<_, E>`
/// with any other error `E`, which answers 500 with the error's message. A panic is a 500 too,
/// and the replica keeps serving.
///
/// **Routing**: paths are matched against `Request::route_path()` (below the application's route
/// prefix) segment by segment; a literal segment beats a parameter; one trailing `/` is ignored.
/// An unknown path is 404; a path whose routes have other methods is 405 with an `allow` header.
/// `GET /openapi.json` (below the prefix) serves an OpenAPI 3.0 document of the routes: the
/// operationId is the method's name, the doc comment's first paragraph its summary and the rest
/// its description; route options `tags = [..]`, `summary = ".."`, `deprecated = true` add to it.
///
/// It expands to the user's impl without the route attributes, `#[deployment]`'s expansion for
/// the methods without a route (route handlers are not handle endpoints), and (abridged):
///
/// ```ignore
/// impl Users {
///     /// Routes an HTTP request to its route handler (generated by `#[ingress]`).
///     pub async fn call(&self, request: Request) -> HttpResponse {
///         static ROUTES: RouteTable = /* the routes and their OpenAPI operations, as constants */;
///         match ROUTES.dispatch(&request) {      // 404 / 405 / openapi.json answered here
///             (0, path) => match (path.get(0, "id", /* u64 parser */), query.optional("verbose", ..)) {
///                 (Ok(id), Ok(verbose)) => respond(Self::get_user(self, id, verbose).await),
///                 (id, verbose) => reject([id.err(), verbose.err()]),   // 422 with every reason
///             },
///             /* one arm per route; a sync handler runs through `block_in_place` */
///         }
///     }
/// }
/// ```
///
/// `call` is the deployment's endpoint like any other (`handle.call.remote(request)`, and
/// `CallOne<Request>` so `serve.run_http(Users::bind(), "/")` serves it); a method of your own
/// named `call` is therefore an error. Route mistakes are compile errors on the offending token:
/// duplicate routes, a `{param}` without its argument, malformed paths, unknown route options,
/// two route attributes on one method, two `Json<T>` arguments, and the `#[deployment]` method
/// checks (`&mut self`, generics, ...).
#[proc_macro_attribute]
pub fn ingress(args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::expand(args.into(), item.into()).into()
}

/// Dynamic batching on a method of a `#[deployment]` (or `#[ingress]`) impl block:
/// `#[batch(max_batch_size = 8, batch_wait_timeout_s = 0.01, max_concurrent_batches = 1)]`
/// (each option optional; Ray's defaults 10, 0.01 s, 1). `#[deployment]` consumes it; anywhere
/// else it is an error. See the guide's batching chapter and [`macro@deployment`].
#[proc_macro_attribute]
pub fn batch(_args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[batch]` must be on a method inside a `#[deployment]` (or `#[ingress]`) impl block",
    )
    .to_compile_error();
    quote::quote!(#item #error).into()
}

/// `#[get("/path")]`: a route of an `#[ingress]` impl block (see [`macro@ingress`]). `#[ingress]`
/// consumes it; anywhere else it is an error.
#[proc_macro_attribute]
pub fn get(_args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::route_outside_ingress(HttpMethod::Get, item.into()).into()
}

/// `#[post("/path")]`: a route of an `#[ingress]` impl block (see [`macro@ingress`]).
/// `#[ingress]` consumes it; anywhere else it is an error.
#[proc_macro_attribute]
pub fn post(_args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::route_outside_ingress(HttpMethod::Post, item.into()).into()
}

/// `#[put("/path")]`: a route of an `#[ingress]` impl block (see [`macro@ingress`]). `#[ingress]`
/// consumes it; anywhere else it is an error.
#[proc_macro_attribute]
pub fn put(_args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::route_outside_ingress(HttpMethod::Put, item.into()).into()
}

/// `#[delete("/path")]`: a route of an `#[ingress]` impl block (see [`macro@ingress`]).
/// `#[ingress]` consumes it; anywhere else it is an error.
#[proc_macro_attribute]
pub fn delete(_args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::route_outside_ingress(HttpMethod::Delete, item.into()).into()
}

/// `#[patch("/path")]`: a route of an `#[ingress]` impl block (see [`macro@ingress`]).
/// `#[ingress]` consumes it; anywhere else it is an error.
#[proc_macro_attribute]
pub fn patch(_args: TokenStream, item: TokenStream) -> TokenStream {
    ingress::route_outside_ingress(HttpMethod::Patch, item.into()).into()
}

/// `#[multiplexed(max_num_models_per_replica = N)]`: marks a deployment's model loader (Ray's
/// `@serve.multiplexed`; `N` defaults to Ray's 3). `#[deployment]` (or `#[ingress]`) on the impl
/// block consumes it; anywhere else it is an error.
///
/// The loader is a `&self` method, sync or `async`, taking the model id (`model_id: String`) and
/// returning the model `M` or `Result<M, E>`. It is not an endpoint. In its place the deployment
/// gets a method of the same name and visibility that takes the id as `impl AsRef<str>` and
/// returns `Result<Arc<M>, ServeError>`: the model from this replica's cache of at most `N`,
/// loaded with the loader's body if it is not cached (once, however many requests ask for it at
/// once); when it does not fit, the least recently used model is evicted (and dropped once no
/// request uses it) before the new one loads. A failed load caches nothing and fails the call
/// with the loader's error. One loader per deployment.
///
/// ```ignore
/// #[deployment]
/// impl Svc {
///     #[multiplexed(max_num_models_per_replica = 2)]
///     pub async fn get_model(&self, model_id: String) -> Result<Model, LoadError> { load(&model_id).await }
///
///     pub async fn call(&self, x: f32) -> Result<f32, ServeError> {
///         let id = serve_core::get_multiplexed_model_id().unwrap_or_default();
///         Ok(self.get_model(id).await?.predict(x))
///     }
/// }
/// ```
///
/// expands (besides the endpoints) to
///
/// ```ignore
/// impl Svc {
///     /// The model `model_id` from this replica's cache of at most 2 models ...
///     pub async fn get_model(&self, model_id: impl AsRef<str>) -> Result<Arc<Model>, ServeError> {
///         P::multiplexed_async("get_model", 2usize, AsRef::<str>::as_ref(&model_id),
///             |__serve_id: String| async move {
///                 let __serve_loaded = Self::__serve_load_get_model(self, __serve_id).await;
///                 P::fallible(__serve_loaded)
///             }).await
///     }
///     #[doc(hidden)]
///     async fn __serve_load_get_model(&self, model_id: String) -> Result<Model, LoadError> {
///         load(&model_id).await
///     }
/// }
/// ```
///
/// A sync loader gets a sync accessor (`P::multiplexed_sync`), for sync methods. Callers pick the
/// model per call with `handle.options().multiplexed_model_id("customer-42")`, or over HTTP with
/// the header `serve_multiplexed_model_id`; routing prefers replicas that hold it.
#[proc_macro_attribute]
pub fn multiplexed(_args: TokenStream, item: TokenStream) -> TokenStream {
    multiplexed::outside(item.into()).into()
}
