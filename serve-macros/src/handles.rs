//! Deployment handles in constructor parameters: which shapes `bind` wires, and the type `bind`
//! takes for each (the same shape with `Application<D>` for each `DeploymentHandle<D>`).
//!
//! The shapes are recognised by name, as everything else here is: `DeploymentHandle<D>`, and
//! `Vec`, `Option`, `HashMap`/`BTreeMap` (handles as values), arrays and tuples holding them, nested.
//! serve-core's `Bindable` does the work at run time; its `Bound` type is what this writes, so a
//! mismatch (a user type named `Vec`) is a type error at the parameter.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

use crate::util::{last_segment, peel};

/// A handle inside a type that is not a shape `bind` wires (span: that type).
pub(crate) const UNSUPPORTED_CONTAINER: &str = "`bind` cannot wire a `DeploymentHandle` inside this type: \
     a constructor takes handles on their own or inside `Vec`, `Option`, `HashMap`, `BTreeMap`, \
     arrays and tuples of them";
/// A map whose key holds a handle (span: the key type).
pub(crate) const HANDLE_AS_KEY: &str =
    "a `DeploymentHandle` cannot be a map's key: `bind` wires handles that are a map's values";
/// A tuple that mixes handles and other values (span: the element without handles).
pub(crate) const MIXED_TUPLE: &str = "a tuple that holds deployment handles holds only handles \
     (or `Vec`s, `Option`s, maps and arrays of them): take this value as a parameter of its own";

/// `Some(bound)` when `ty` holds deployment handles in a shape `bind` wires: `bound` is the type
/// `bind` takes (`Vec<DeploymentHandle<M>>` -> `Vec<::serve_core::__private::Application<M>>`).
/// `None` when `ty` holds no handle. An error when it holds one where `bind` cannot wire it.
pub(crate) fn bound_type(ty: &Type) -> syn::Result<Option<Type>> {
    if !mentions_handle(ty) {
        return Ok(None);
    }
    rewrite(ty).map(Some)
}

/// Whether the tokens of `ty` name `DeploymentHandle` anywhere.
fn mentions_handle(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => i == "DeploymentHandle",
            TokenTree::Group(g) => scan(g.stream()),
            _ => false,
        })
    }
    scan(ty.to_token_stream())
}

/// `ty` (which mentions a handle) with `Application` for each handle.
fn rewrite(ty: &Type) -> syn::Result<Type> {
    match peel(ty) {
        Type::Array(array) => {
            let mut out = array.clone();
            *out.elem = rewrite(&array.elem)?;
            Ok(Type::Array(out))
        }
        Type::Tuple(tuple) => {
            let mut out = tuple.clone();
            for elem in out.elems.iter_mut() {
                if !mentions_handle(elem) {
                    return Err(syn::Error::new_spanned(elem, MIXED_TUPLE));
                }
                *elem = rewrite(elem)?;
            }
            Ok(Type::Tuple(out))
        }
        Type::Path(_) => rewrite_path(ty),
        _ => Err(syn::Error::new_spanned(ty, UNSUPPORTED_CONTAINER)),
    }
}

fn rewrite_path(ty: &Type) -> syn::Result<Type> {
    let unsupported = || syn::Error::new_spanned(ty, UNSUPPORTED_CONTAINER);
    let segment = last_segment(ty).ok_or_else(unsupported)?;
    let name = segment.ident.to_string();
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return Err(unsupported());
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match (name.as_str(), types.as_slice()) {
        ("DeploymentHandle", [d]) => {
            let p = crate::util::private();
            Ok(syn::parse_quote!(#p::Application<#d>))
        }
        // The element: the only type argument (`Vec<T, A>` has an allocator after it).
        ("Vec" | "Option", [elem, ..]) => replace_type_arg(ty, 0, rewrite(elem)?),
        ("HashMap" | "BTreeMap", [key, value, ..]) => {
            if mentions_handle(key) {
                return Err(syn::Error::new_spanned(key, HANDLE_AS_KEY));
            }
            replace_type_arg(ty, 1, rewrite(value)?)
        }
        _ => Err(unsupported()),
    }
}

/// `ty` (a path type) with the `index`th type argument of its last segment replaced by `with`.
fn replace_type_arg(ty: &Type, index: usize, with: Type) -> syn::Result<Type> {
    let mut out = peel(ty).clone();
    if let Type::Path(path) = &mut out
        && let Some(segment) = path.path.segments.last_mut()
        && let PathArguments::AngleBracketed(args) = &mut segment.arguments
        && let Some(arg) = args
            .args
            .iter_mut()
            .filter(|arg| matches!(arg, GenericArgument::Type(_)))
            .nth(index)
    {
        *arg = GenericArgument::Type(with);
        return Ok(out);
    }
    Err(syn::Error::new_spanned(ty, UNSUPPORTED_CONTAINER))
}

/// The tokens of a rewritten type, for tests.
#[cfg(test)]
fn bound_str(ty: TokenStream) -> Result<Option<String>, String> {
    let ty: Type = syn::parse2(ty).unwrap();
    bound_type(&ty)
        .map(|t| t.map(|t| crate::testing::str_of(&t)))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn types_without_handles_are_values() {
        assert_eq!(bound_str(quote!(Vec<u32>)), Ok(None));
        assert_eq!(bound_str(quote!(HashMap<String, Model>)), Ok(None));
    }

    #[test]
    fn handles_become_applications_in_every_supported_shape() {
        let app = "::serve_core::__private::Application";
        let cases = [
            (quote!(DeploymentHandle<M>), format!("{app}<M>")),
            (
                quote!(serve_core::DeploymentHandle<Self>),
                format!("{app}<Self>"),
            ),
            (quote!(Vec<DeploymentHandle<M>>), format!("Vec<{app}<M>>")),
            (
                quote!(std::option::Option<DeploymentHandle<M>>),
                format!("std::option::Option<{app}<M>>"),
            ),
            (
                quote!(HashMap<String, DeploymentHandle<M>>),
                format!("HashMap<String, {app}<M>>"),
            ),
            (
                quote!(BTreeMap<u8, Vec<Option<DeploymentHandle<M>>>>),
                format!("BTreeMap<u8, Vec<Option<{app}<M>>>>"),
            ),
            (quote!([DeploymentHandle<M>; 3]), format!("[{app}<M>; 3]")),
            (
                quote!((DeploymentHandle<A>, Vec<DeploymentHandle<B>>)),
                format!("({app}<A>, Vec<{app}<B>>)"),
            ),
        ];
        for (ty, expected) in cases {
            let got = bound_str(ty.clone()).unwrap().unwrap();
            assert_eq!(got.replace(' ', ""), expected.replace(' ', ""), "{ty}");
        }
    }

    #[test]
    fn handles_where_bind_cannot_wire_them_are_errors() {
        assert_eq!(
            bound_str(quote!(Rc<DeploymentHandle<M>>)),
            Err(UNSUPPORTED_CONTAINER.to_owned())
        );
        assert_eq!(
            bound_str(quote!(Vec<Wrapper<DeploymentHandle<M>>>)),
            Err(UNSUPPORTED_CONTAINER.to_owned())
        );
        assert_eq!(
            bound_str(quote!(HashMap<DeploymentHandle<M>, u8>)),
            Err(HANDLE_AS_KEY.to_owned())
        );
        assert_eq!(
            bound_str(quote!((DeploymentHandle<M>, u32))),
            Err(MIXED_TUPLE.to_owned())
        );
        assert_eq!(
            bound_str(quote!(fn(DeploymentHandle<M>))),
            Err(UNSUPPORTED_CONTAINER.to_owned())
        );
    }
}
