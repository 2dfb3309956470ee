//! Stream arguments: a parameter of type `ArgStream<T>` (recognised by its last path segment,
//! with one type argument) takes a stream of `T`. Its stub parameter is `impl IntoArgStream<T>`
//! (another call's generator, or any `Stream<Item = T> + Send + 'static`) instead of
//! `impl IntoArg<ArgStream<T>>`, and the item type `T` is what must be a serde type. Nothing else
//! differs: `ArgStream<T>` is serde itself (it encodes as a descriptor of the stream, which the
//! request plane lends to the serving node), so the argument tuple's encoder and decoder are
//! picked as for any other method.
//!
//! Where a stream cannot be taken, the macro says so: a constructor builds replicas once and
//! takes values; a task takes values; a synchronous unary method could only block its thread
//! waiting for the items.

use syn::{GenericArgument, PathArguments, Type};

use crate::model::{Arg, Asyncness, Kind, Output};
use crate::util::last_segment;

pub(crate) const IN_CONSTRUCTOR: &str = "a constructor takes values, not streams: an `ArgStream` parameter belongs on a method (`async fn` or a streaming method), which takes one stream per call";
pub(crate) const IN_TASK: &str = "`#[remote]` tasks take values, not streams: an `ArgStream` parameter belongs on a deployment method (`async fn` or a streaming method)";
pub(crate) const IN_SYNC_METHOD: &str = "a synchronous method cannot take an `ArgStream`: it would block its thread waiting for the items; make it an `async fn`, or return a stream (`impl Stream<Item = T>`) that reads it";

/// `T` of `ArgStream<T>`.
pub(crate) fn item(ty: &Type) -> Option<Type> {
    let seg = last_segment(ty).filter(|s| s.ident == "ArgStream")?;
    match &seg.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `args` where no stream argument is allowed: each one is an error with `message` on its type.
pub(crate) fn reject(args: Vec<Arg>, message: &str) -> syn::Result<Vec<Arg>> {
    let mut errors = crate::util::Errors::default();
    for arg in args.iter().filter(|a| a.stream.is_some()) {
        errors.push(syn::Error::new_spanned(&arg.ty, message));
    }
    errors.finish(args)
}

/// A method may take a stream if it awaits (`async fn`) or returns a stream (driven by a task).
pub(crate) fn check_method(args: &[Arg], output: &Output, asyncness: Asyncness) -> syn::Result<()> {
    if asyncness == Asyncness::Async || output.kind == Kind::Streaming {
        return Ok(());
    }
    let mut errors = crate::util::Errors::default();
    for arg in args.iter().filter(|a| a.stream.is_some()) {
        errors.push(syn::Error::new_spanned(&arg.ty, IN_SYNC_METHOD));
    }
    errors.finish(())
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn arg_stream_is_recognised_by_its_last_segment_with_one_type() {
        let ty: Type = syn::parse2(quote!(serve_core::ArgStream<Vec<u8>>)).unwrap();
        let item = item(&ty).unwrap();
        assert_eq!(quote!(#item).to_string(), quote!(Vec<u8>).to_string());
        for not in [
            quote!(ArgStream),
            quote!(Stream<u8>),
            quote!(ArgStream<u8, u16>),
        ] {
            let ty: Type = syn::parse2(not).unwrap();
            assert!(super::item(&ty).is_none());
        }
    }
}
