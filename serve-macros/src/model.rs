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
    /// `DeploymentHandle<D>`: `bind` takes an `Application<D>` (the `D` is stored here).
    Handle(Box<Type>),
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
}

/// A by-value argument, named by the user or `arg{i}` when its pattern is not a plain ident.
pub(crate) struct Arg {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}
