//! `#[batch(..)]` on a `&self` method of a `#[deployment]` (or `#[ingress]`) impl block: dynamic
//! batching. `#[deployment]` consumes the attribute (it is removed from the emitted impl).
//!
//! The method takes one `Vec<T>` and returns `Vec<R>` or `Result<Vec<R>, E>`, sync or `async`.
//! Parsing turns its model into the stub's view, one `T` in and one `R` out (so the handle field,
//! `remote`, `__call_encoded` and the type assertions are those of an ordinary unary method), and
//! records the options in [`Batch`]; codegen makes the stub's closure hand its item to the
//! replica's batcher (`serve_core::__private::call_batched`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, ImplItem, ImplItemFn, ItemImpl, LitFloat, LitInt, Meta, ReturnType, Token};

use crate::model::{Kind, Method};
use crate::rules;
use crate::util::{Errors, first_type_arg, last_segment};

pub(crate) const ON_NEW: &str = "`#[batch]` goes on a `&self` method that takes a `Vec<T>` and returns a `Vec<R>`, not on the constructor";
pub(crate) const ON_HELPER: &str = "`#[batch]` goes on a `&self` method that takes a `Vec<T>` and returns a `Vec<R>`, not on an associated function without `self`";
pub(crate) const ON_CHECK_HEALTH: &str = "`#[batch]` cannot go on `check_health`: the runtime calls it itself, once per replica; batch an endpoint";
pub(crate) const ON_RECONFIGURE: &str = "`#[batch]` cannot go on `reconfigure`: the runtime calls it itself, once per replica; change a batched method's settings from it with `serve_core::batching(Self::method)`";
pub(crate) const ON_ROUTE: &str = "`#[batch]` cannot go on a route handler: batch an endpoint (a method without a route attribute, or another deployment's) and call it from the handler";
pub(crate) const TWICE: &str = "a method takes one `#[batch]`: put all of its options in it";
pub(crate) const BAD_PARAMS: &str = "a `#[batch]` method takes exactly one argument, `Vec<T>`: the items of a batch (its stub takes one `T` per call)";
pub(crate) const BAD_RETURN: &str =
    "a `#[batch]` method returns `Vec<R>` or `Result<Vec<R>, E>`: one result per item, in order";
pub(crate) const STREAMING: &str = "streaming batches are not supported: a `#[batch]` method returns `Vec<R>` or `Result<Vec<R>, E>` (one result per item, in order)";

const KEYS: [&str; 3] = [
    "max_batch_size",
    "batch_wait_timeout_s",
    "max_concurrent_batches",
];

/// The options of a `#[batch(..)]` method, validated (Ray's defaults for those not given).
pub(crate) struct Batch {
    pub(crate) max_batch_size: u64,
    pub(crate) batch_wait_timeout_s: f64,
    pub(crate) max_concurrent_batches: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_batch_size: 10,
            batch_wait_timeout_s: 0.01,
            max_concurrent_batches: 1,
        }
    }
}

/// Whether `attr` is `#[batch]` (bare or under a path starting with `serve_core`).
pub(crate) fn is_batch(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments.last().is_some_and(|s| s.ident == "batch")
        && (path.segments.len() == 1
            || path
                .segments
                .first()
                .is_some_and(|s| s.ident == "serve_core"))
}

/// Removes every `#[batch]` from the methods of `item` (the emitted user impl).
pub(crate) fn strip(item: &mut ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(f) = impl_item {
            f.attrs.retain(|a| !is_batch(a));
        }
    }
}

/// The error for a `#[batch]` where none may go (`message` says why), if `f` has one.
pub(crate) fn misplaced(f: &ImplItemFn, message: &str) -> Option<syn::Error> {
    let attr = f.attrs.iter().find(|a| is_batch(a))?;
    Some(syn::Error::new_spanned(attr, message))
}

/// An endpoint with its `#[batch]` applied, if it has one: the model becomes the stub's view
/// (one `T` in, one `R` out) and carries the options.
pub(crate) fn apply(mut method: Method, f: &ImplItemFn) -> syn::Result<Method> {
    let attrs: Vec<&Attribute> = f.attrs.iter().filter(|a| is_batch(a)).collect();
    let Some((first, others)) = attrs.split_first() else {
        return Ok(method);
    };
    let mut errors = Errors::default();
    for other in others {
        errors.push(syn::Error::new_spanned(other, TWICE));
    }
    let options = errors.take(options(first));
    // The one argument: `Vec<T>`.
    match method.args.as_mut_slice() {
        [arg] => match vec_item(&arg.ty) {
            Some(item) => arg.ty = item,
            None => errors.push(syn::Error::new_spanned(&arg.ty, BAD_PARAMS)),
        },
        _ => errors.push(syn::Error::new_spanned(&f.sig.inputs, BAD_PARAMS)),
    }
    // The result: `Vec<R>` (or `Result<Vec<R>, E>`), not a stream.
    let ret: TokenStream = match &f.sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => f.sig.ident.to_token_stream(),
    };
    if method.output.kind == Kind::Streaming {
        errors.push(syn::Error::new_spanned(&ret, STREAMING));
    } else {
        match method.output.value_ty.as_ref().and_then(vec_item) {
            Some(item) => method.output.value_ty = Some(item),
            None => errors.push(syn::Error::new_spanned(&ret, BAD_RETURN)),
        }
    }
    method.batch = Some(errors.finish(options.flatten())?.unwrap_or_default());
    Ok(method)
}

/// `T` of a `Vec<T>` (recognised by its last segment, one type argument).
fn vec_item(ty: &syn::Type) -> Option<syn::Type> {
    let seg = last_segment(ty).filter(|s| s.ident == "Vec")?;
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) if a.args.len() == 1 => first_type_arg(seg).cloned(),
        _ => None,
    }
}

/// The options of `#[batch]`, `#[batch()]` or `#[batch(key = value, ..)]`.
fn options(attr: &Attribute) -> syn::Result<Option<Batch>> {
    match &attr.meta {
        Meta::Path(_) => Ok(Some(Batch::default())),
        Meta::List(list) => (|input: ParseStream| parse_options(input)).parse2(list.tokens.clone()),
        Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "`#[batch]` takes its options in parentheses: `#[batch(max_batch_size = 8)]`",
        )),
    }
}

mod kw {
    syn::custom_keyword!(max_batch_size);
    syn::custom_keyword!(batch_wait_timeout_s);
    syn::custom_keyword!(max_concurrent_batches);
}

/// `key = value, ..`: syntax errors stop the parse; value errors are all collected.
fn parse_options(input: ParseStream) -> syn::Result<Option<Batch>> {
    let mut batch = Batch::default();
    let mut errors = Errors::default();
    let mut seen: Vec<&str> = Vec::new();
    while !input.is_empty() {
        let lookahead = input.lookahead1();
        let (key, span) = if lookahead.peek(kw::max_batch_size) {
            (KEYS[0], input.parse::<kw::max_batch_size>()?.span)
        } else if lookahead.peek(kw::batch_wait_timeout_s) {
            (KEYS[1], input.parse::<kw::batch_wait_timeout_s>()?.span)
        } else if lookahead.peek(kw::max_concurrent_batches) {
            (KEYS[2], input.parse::<kw::max_concurrent_batches>()?.span)
        } else {
            return Err(lookahead.error());
        };
        if !input.peek(Token![=]) {
            let example = if key == "batch_wait_timeout_s" {
                "0.01"
            } else {
                "8"
            };
            return Err(syn::Error::new(
                span,
                format!("`{key}` needs a value: `{key} = {example}`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = value(input, key)?;
        if seen.contains(&key) {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` may only be specified once"),
            ));
        }
        seen.push(key);
        match value {
            Ok(v) => match key {
                "max_batch_size" => batch.max_batch_size = v as u64,
                "max_concurrent_batches" => batch.max_concurrent_batches = v as u64,
                _ => batch.batch_wait_timeout_s = v,
            },
            Err(e) => errors.push(e),
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    errors.finish(Some(batch))
}

/// One value, optionally negated: a whole number for the counts, any number for the wait. The
/// outer error is a syntax error; the inner one, a value its rule rejects.
fn value(input: ParseStream, key: &str) -> syn::Result<syn::Result<f64>> {
    let minus: Option<Token![-]> = input.parse()?;
    let lookahead = input.lookahead1();
    let count = key != "batch_wait_timeout_s";
    let (value, span, lit): (f64, Span, TokenStream) = if lookahead.peek(LitInt) {
        let lit: LitInt = input.parse()?;
        (lit.base10_parse()?, lit.span(), lit.into_token_stream())
    } else if !count && lookahead.peek(LitFloat) {
        let lit: LitFloat = input.parse()?;
        (lit.base10_parse()?, lit.span(), lit.into_token_stream())
    } else {
        return Err(lookahead.error());
    };
    let _ = span;
    let negative = minus.is_some() && value != 0.0;
    let shown = if negative {
        format!("-{}", lit)
    } else {
        lit.to_string()
    };
    let verdict = if count {
        if negative {
            Err(format!(
                "`{key}` must be at least 1, not {}",
                shown.replace('_', "")
            ))
        } else {
            rules::count(key, key, value as u64)
        }
    } else {
        let value = if negative { -value } else { value };
        rules::number(key, key, value)
    };
    let all = quote!(#minus #lit);
    Ok(match verdict {
        Ok(()) if negative => Ok(-value),
        Ok(()) => Ok(value),
        Err(message) => Err(syn::Error::new_spanned(all, message)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::messages;
    use syn::parse_quote;

    fn parse(attr: Attribute) -> Result<Batch, Vec<String>> {
        options(&attr)
            .map(Option::unwrap_or_default)
            .map_err(messages)
    }

    #[test]
    fn defaults_are_rays() {
        for attr in [parse_quote!(#[batch]), parse_quote!(#[batch()])] {
            let b = parse(attr).unwrap();
            assert_eq!(
                (
                    b.max_batch_size,
                    b.batch_wait_timeout_s,
                    b.max_concurrent_batches
                ),
                (10, 0.01, 1)
            );
        }
    }

    #[test]
    fn options_are_read_in_any_order() {
        let b = parse(parse_quote!(#[batch(batch_wait_timeout_s = 0, max_concurrent_batches = 2, max_batch_size = 8,)])).unwrap();
        assert_eq!(
            (
                b.max_batch_size,
                b.batch_wait_timeout_s,
                b.max_concurrent_batches
            ),
            (8, 0.0, 2)
        );
        let b = parse(parse_quote!(#[serve_core::batch(batch_wait_timeout_s = 1e-3)])).unwrap();
        assert_eq!(b.batch_wait_timeout_s, 0.001);
    }

    #[test]
    fn each_bad_value_has_its_message() {
        let cases: [(Attribute, &str); 6] = [
            (
                parse_quote!(#[batch(max_batch_size = 0)]),
                "`max_batch_size` must be at least 1, not 0",
            ),
            (
                parse_quote!(#[batch(max_batch_size = -3)]),
                "`max_batch_size` must be at least 1, not -3",
            ),
            (
                parse_quote!(#[batch(max_concurrent_batches = 0)]),
                "`max_concurrent_batches` must be at least 1, not 0",
            ),
            (
                parse_quote!(#[batch(batch_wait_timeout_s = -0.5)]),
                "`batch_wait_timeout_s` must be a number of at least 0, not -0.5",
            ),
            (
                parse_quote!(#[batch(max_batch_size = 2.5)]),
                "expected integer literal",
            ),
            (
                parse_quote!(#[batch(max_batch_size = 8, max_batch_size = 9)]),
                "`max_batch_size` may only be specified once",
            ),
        ];
        for (attr, message) in cases {
            assert_eq!(parse(attr).err().unwrap(), [message]);
        }
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let e = parse(parse_quote!(#[batch(max_size = 8)])).err().unwrap();
        assert_eq!(
            e,
            ["expected one of: `max_batch_size`, `batch_wait_timeout_s`, `max_concurrent_batches`"]
        );
        let e = parse(parse_quote!(#[batch(max_batch_size)])).err().unwrap();
        assert_eq!(e, ["`max_batch_size` needs a value: `max_batch_size = 8`"]);
    }

    #[test]
    fn the_impl_is_emitted_without_batch_and_the_stub_takes_one_item() {
        use crate::testing::{compile_errors, file, method_of, str_of};
        let out = file(crate::expand::deployment(
            TokenStream::new(),
            quote! {
                impl Svc {
                    #[batch(max_batch_size = 8)]
                    #[doc = "Doubles."]
                    pub async fn double(&self, xs: Vec<u8>) -> Result<Vec<u16>, E> { todo!() }
                }
            },
        ));
        assert_eq!(compile_errors(&out), Vec::<String>::new());
        assert_eq!(
            str_of(&out.items[0]),
            "implSvc{#[doc=\"Doubles.\"]pubasyncfndouble(&self,xs:Vec<u8>)->Result<Vec<u16>,E>{todo!()}}"
        );
        let remote = method_of(&out, "SvcDoubleStub", "remote").unwrap();
        assert_eq!(
            str_of(&remote.sig),
            "fnremote(&self,xs:impl::serve_core::__private::IntoArg<u8>)->::serve_core::__private::DeploymentResponse<u16>"
        );
        let body = str_of(&remote.block);
        assert!(
            body.contains("call_batched(Svc::double,&Svc::__serve_batch_double,"),
            "{body}"
        );
        assert!(str_of(&out).contains(
            "const__serve_batch_double:::serve_core::__private::BatchSpec=::serve_core::__private::BatchSpec::new(\"double\",8,0.01,1);"
        ));
    }

    #[test]
    fn batch_attributes_are_recognised_bare_or_under_serve_core() {
        assert!(is_batch(&parse_quote!(#[batch])));
        assert!(is_batch(
            &parse_quote!(#[serve_core::batch(max_batch_size = 2)])
        ));
        assert!(is_batch(&parse_quote!(#[serve_core::prelude::batch])));
        assert!(!is_batch(&parse_quote!(#[other::batch])));
        assert!(!is_batch(&parse_quote!(#[batched])));
    }
}
