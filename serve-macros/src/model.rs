//! The narrow model the parser produces and the generator reads.
//!
//! It holds only what code generation needs, already validated: codegen never re-inspects the
//! user's syntax tree and never fails.

use proc_macro2::Ident;
use syn::{Attribute, Generics, Path, Type, Visibility};

use crate::options::DeploymentOptions;
use crate::util::plain_name;

/// `#[deployment(...)]` on a struct.
pub(crate) struct DeploymentStruct {
    pub(crate) ident: Ident,
    /// Empty for a valid deployment; kept so the error path can still emit a well-formed impl.
    pub(crate) generics: Generics,
    pub(crate) options: DeploymentOptions,
}

/// `#[deployment]` on the struct's inherent `impl` block.
pub(crate) struct DeploymentImpl {
    /// The type as written after `impl` (`Ingress`, `crate::Ingress`), without generic arguments.
    pub(crate) self_ty: Path,
    /// Its last segment: the base of the generated names (`IngressHandle`).
    pub(crate) ident: Ident,
    pub(crate) constructor: Constructor,
    /// The endpoints that passed validation, in source order.
    pub(crate) methods: Vec<Method>,
    /// `check_health(&self)`, if the deployment has one.
    pub(crate) check_health: Option<Hook>,
    /// `reconfigure(&self, cfg: T)`, if the deployment has one.
    pub(crate) reconfigure: Option<Hook>,
}

/// A lifecycle method the runtime calls itself (`check_health`, `reconfigure`): not an endpoint.
pub(crate) struct Hook {
    pub(crate) ident: Ident,
    pub(crate) asyncness: Asyncness,
    /// Returns `Result<(), E>` rather than nothing.
    pub(crate) fallible: bool,
    /// `reconfigure`'s argument type (deserialized from the deployment's `user_config`).
    pub(crate) arg: Option<Type>,
}

/// How replicas are built.
pub(crate) enum Constructor {
    /// No `new`: replicas come from `Default::default()`.
    Default,
    /// A valid `new`.
    New(NewFn),
    /// A `new` that was reported as an error, or a user-defined `bind` (also reported): no `bind`
    /// is generated.
    Invalid,
}

/// The constructor `new`.
pub(crate) struct NewFn {
    pub(crate) asyncness: Asyncness,
    /// Returns `Result<Self, E>` rather than `Self`.
    pub(crate) fallible: bool,
    pub(crate) params: Vec<CtorParam>,
}

/// One constructor parameter, which `bind` takes in its place.
pub(crate) struct CtorParam {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    pub(crate) kind: CtorParamKind,
}

pub(crate) enum CtorParamKind {
    /// A type that holds deployment handles (`DeploymentHandle<D>`, `Vec<DeploymentHandle<D>>`,
    /// ..): `bind` takes the type stored here, the same shape with `Application<D>` for each
    /// handle, and serve-core's `Bindable` wires it.
    Handles(Box<Type>),
    /// Any other value: `bind` takes it as is and clones it for each replica.
    Value,
}

/// A `&self` method: one field on the handle, one stub type.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) asyncness: Asyncness,
    pub(crate) output: Output,
    pub(crate) args: Vec<Arg>,
    /// `#[batch(..)]`'s options: then `args` is the one `T` of its `Vec<T>` and `output` the `R`
    /// of its `Vec<R>` (the stub's view).
    pub(crate) batch: Option<crate::batch::Batch>,
}

impl Method {
    /// The endpoint's name as the router knows it (`r#type` is `"type"`).
    pub(crate) fn name(&self) -> String {
        plain_name(&self.ident)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asyncness {
    Sync,
    Async,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One request, one response.
    Unary,
    /// One request, a stream of items (`impl Stream<Item = T>`).
    Streaming,
}

/// What a method or task produces.
pub(crate) struct Output {
    pub(crate) kind: Kind,
    /// `Result<T, E>` (or a stream of them) rather than `T`.
    pub(crate) fallible: bool,
    /// `T`: the response value or stream item; `None` is `()` (no return type written).
    pub(crate) value_ty: Option<Type>,
    /// `StreamingResponse<impl Stream<Item = T>>`: a stream whose items reach callers as
    /// `StreamPart<T>` (`value_ty`), the response head first.
    pub(crate) streaming_response: bool,
}

/// A by-value argument, named by the user or `arg{i}` when its pattern is not a plain ident.
pub(crate) struct Arg {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    /// `T` of an `ArgStream<T>` parameter (a stream argument): the stub takes
    /// `impl IntoArgStream<T>` for it (see `stream_arg`).
    pub(crate) stream: Option<Type>,
}

/// `#[ingress]` on a deployment's impl block: the deployment part plus the routes.
pub(crate) struct IngressImpl {
    /// The non-route methods as under `#[deployment]`, plus the generated `call` (when `routing`).
    pub(crate) deployment: DeploymentImpl,
    /// The valid routes, in source order; a route's id is its index here.
    pub(crate) routes: Vec<Route>,
    /// Whether the routing `call` is generated: not when the user wrote a `call` (reported).
    pub(crate) routing: bool,
    /// The impl block's doc comment: the OpenAPI document's description.
    pub(crate) description: String,
}

/// A method with a route attribute: a route handler.
pub(crate) struct Route {
    pub(crate) method: HttpMethod,
    pub(crate) path: RoutePath,
    pub(crate) handler: Ident,
    pub(crate) asyncness: Asyncness,
    pub(crate) args: Vec<RouteArg>,
    /// Where a return type that is no response is reported: the return type, or the name.
    pub(crate) output_span: proc_macro2::Span,
    pub(crate) cfgs: Vec<Attribute>,
    /// The OpenAPI operation's texts (from the doc comment and the attribute's options).
    pub(crate) summary: String,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    pub(crate) deprecated: bool,
}

impl Route {
    /// The handler's name as the user means it (`r#type` is `type`): the OpenAPI operationId.
    pub(crate) fn name(&self) -> String {
        plain_name(&self.handler)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

impl HttpMethod {
    pub(crate) const ALL: [HttpMethod; 5] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Delete,
        HttpMethod::Patch,
    ];

    /// The attribute's name: `get`, `post`, ...; also the OpenAPI key.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
            HttpMethod::Delete => "delete",
            HttpMethod::Patch => "patch",
        }
    }

    /// As it appears in a request: `GET`, `POST`, ...
    pub(crate) fn upper(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
        }
    }

    pub(crate) fn from_attribute(name: &str) -> Option<HttpMethod> {
        HttpMethod::ALL.into_iter().find(|m| m.attribute() == name)
    }
}

/// A validated route path: `template` as written (one trailing `/` removed), and its segments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoutePath {
    pub(crate) template: String,
    pub(crate) segments: Vec<PathSegment>,
}

impl RoutePath {
    /// The names of the `{params}`, in order.
    pub(crate) fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            PathSegment::Param(name) => Some(name.as_str()),
            PathSegment::Literal(_) => None,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Literal(String),
    Param(String),
}

/// One argument of a route handler (after `&self`), in order.
pub(crate) struct RouteArg {
    /// The type as written.
    pub(crate) ty: Type,
    pub(crate) source: ArgSource,
}

/// Where a route handler's argument comes from.
pub(crate) enum ArgSource {
    /// `{name}` in the path: the `index`-th parameter of the pattern.
    Path { name: String, index: usize },
    /// `?name=..`; `optional` is `T` of an `Option<T>` argument (absent is `None`).
    Query {
        name: String,
        optional: Option<Type>,
    },
    /// `Json<T>`: the body; `T` is stored.
    Body(Type),
    /// `Request`: the whole request.
    Request,
}
