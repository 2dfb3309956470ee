//! Arguments of handle calls and tasks: a value, or a response / object ref that resolves to one.
//!
//! Every generated stub takes each argument as `impl IntoArg<T>`, so the compiler accepts exactly
//! `T`, `DeploymentResponse<T>` (chaining without awaiting), `ObjectRef<T>` (and references to
//! them, which share the request). A streaming generator, a response of another type, or a response
//! nested in a container is not an `IntoArg<T>` and does not compile: a generator goes into a
//! parameter declared as a stream, [`ArgStream<T>`](crate::ArgStream), which the stub takes as
//! `impl IntoArgStream<T>` ([`arg_stream`](super::arg_stream)).
//!
//! A call whose arguments are all plain values is dispatched at once. Otherwise the runtime first
//! waits for the upstream requests; if one failed, the downstream method never runs and its caller
//! gets an [`ErrorKind::Upstream`](crate::ErrorKind::Upstream) error whose source names the
//! upstream deployment.

use std::future::Future;
use std::future::poll_fn;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::response::{Consumer, DeploymentResponse, ObjectRef};
use crate::error::ServeError;

/// One argument of a handle call: the value itself, or a pending request that produces it.
pub struct Arg<T>(ArgInner<T>);

enum ArgInner<T> {
    Value(T),
    Pending(Consumer<T>),
}

impl<T> Arg<T> {
    /// Whether it is a value now: a response that already succeeded becomes its value (a sync
    /// method that ran in place answered before `.remote()` returned).
    #[inline]
    fn is_value(&mut self) -> bool {
        if let ArgInner::Pending(consumer) = &self.0 {
            match consumer.try_take_ok() {
                Some(v) => self.0 = ArgInner::Value(v),
                None => return false,
            }
        }
        true
    }

    async fn resolve(self) -> Result<T, ServeError> {
        match self.0 {
            ArgInner::Value(v) => Ok(v),
            ArgInner::Pending(consumer) => poll_fn(|cx| consumer.poll_take(cx))
                .await
                .map_err(ServeError::upstream),
        }
    }
}

/// Converts a stub argument into an [`Arg<T>`]: implemented for `T`, `DeploymentResponse<T>`,
/// `ObjectRef<T>`, references to those two, and `&str` for `String`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed where this call expects a `{T}`",
    label = "expected `{T}`, a `DeploymentResponse<{T}>` or an `ObjectRef<{T}>`",
    note = "a handle call takes each argument as its value, a `DeploymentResponse` of it (chaining), or an `ObjectRef` of it",
    note = "a streaming `DeploymentResponseGenerator` is a stream, not a value: to pass it into another call, declare that method's parameter as `ArgStream<{T}>` (a stream argument), or collect its items first"
)]
pub trait IntoArg<T> {
    /// Converts `self` into the argument.
    fn into_arg(self) -> Arg<T>;
}

impl<T> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg(ArgInner::Value(self))
    }
}

impl IntoArg<String> for &str {
    fn into_arg(self) -> Arg<String> {
        Arg(ArgInner::Value(self.to_owned()))
    }
}

impl<T> IntoArg<T> for DeploymentResponse<T> {
    fn into_arg(self) -> Arg<T> {
        Arg(ArgInner::Pending(self.into_consumer()))
    }
}

impl<T: Clone> IntoArg<T> for &DeploymentResponse<T> {
    fn into_arg(self) -> Arg<T> {
        self.clone().into_arg()
    }
}

impl<T> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg(ArgInner::Pending(self.into_consumer()))
    }
}

impl<T: Clone> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        self.clone().into_arg()
    }
}

/// The argument tuple of one call: `(Arg<A>, Arg<B>, ..)`.
#[doc(hidden)]
pub trait ArgList: Send + 'static {
    /// The resolved values: `(A, B, ..)`.
    type Values: Send + 'static;

    /// The values, if every argument is a plain value (the common, fast path); `self` otherwise.
    fn ready(self) -> Result<Self::Values, Self>
    where
        Self: Sized;

    /// Waits for every pending argument; the first failure wins.
    fn resolve(self) -> impl Future<Output = Result<Self::Values, ServeError>> + Send;
}

macro_rules! arg_list {
    ($($name:ident : $ty:ident),*) => {
        impl<$($ty: Send + 'static),*> ArgList for ($(Arg<$ty>,)*) {
            type Values = ($($ty,)*);

            #[allow(clippy::unused_unit)]
            fn ready(self) -> Result<Self::Values, Self> {
                #[allow(unused_mut)]
                let ($(mut $name,)*) = self;
                if true $(&& $name.is_value())* {
                    Ok(($(match $name.0 { ArgInner::Value(v) => v, ArgInner::Pending(_) => unreachable!() },)*))
                } else {
                    Err(($($name,)*))
                }
            }

            #[allow(clippy::unused_unit)]
            async fn resolve(self) -> Result<Self::Values, ServeError> {
                let ($($name,)*) = self;
                Ok(($($name.resolve().await?,)*))
            }
        }
    };
}

arg_list!();
arg_list!(a: A);
arg_list!(a: A, b: B);
arg_list!(a: A, b: B, c: C);
arg_list!(a: A, b: B, c: C, d: D);
arg_list!(a: A, b: B, c: C, d: D, e: E);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H, i: I);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H, i: I, j: J);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H, i: I, j: J, k: K);
arg_list!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H, i: I, j: J, k: K, l: L);

/// What every argument and return value of a deployment method or task must be: it moves between
/// replicas in-process today and will be serialised when replicas run in other processes.
#[doc(hidden)]
pub fn assert_arg<T: Serialize + DeserializeOwned + Send + 'static>() {}
