//! The `#[ingress]` expansion: the user's impl with its route attributes removed, then
//! `#[deployment]`'s expansion for the endpoints (the generated routing `call` among them), then
//! the routing `call`, then every error.
//!
//! `parse` builds the model (routes and the deployment part), `openapi` writes each route's
//! OpenAPI operation as JSON text, `codegen` emits the tokens.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Item;

use crate::model::HttpMethod;
use crate::util::Errors;

mod codegen;
mod openapi;
pub(crate) mod parse;

/// `#[ingress(args)]` on `input` (a deployment's inherent impl block).
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let error = e.to_compile_error();
            return quote!(#input #error);
        }
    };
    let mut errors = Errors::default();
    let mut loaders = TokenStream::new();
    let generated = match &mut item {
        Item::Impl(imp) => {
            loaders = crate::multiplexed::extract(imp, &mut errors);
            parse::ingress_impl(args, imp, &mut errors)
                .map(|model| codegen::ingress_impl(&model))
                .unwrap_or_default()
        }
        other => {
            errors.push(syn::Error::new_spanned(
                crate::parse::item_head(other),
                parse::NOT_AN_INGRESS,
            ));
            TokenStream::new()
        }
    };
    if let Item::Impl(imp) = &mut item {
        crate::batch::strip(imp);
    }
    let errors = errors.into_error().map(|e| e.to_compile_error());
    quote!(#item #loaders #generated #errors)
}

/// A route attribute that no `#[ingress]` consumed: the item, unchanged, and an error on the
/// attribute.
pub(crate) fn route_outside_ingress(method: HttpMethod, item: TokenStream) -> TokenStream {
    let message = format!(
        "`#[{}]` must be inside an `#[ingress]` impl block",
        method.attribute()
    );
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#item #error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{compile_errors, file, str_of};

    #[test]
    fn an_impl_with_errors_is_emitted_stripped_with_the_good_routes_and_all_errors() {
        let out = file(expand(
            TokenStream::new(),
            quote! {
                impl Svc {
                    #[get("/a/{id}")]
                    fn bad(&self) {}
                    #[get("/b")]
                    fn good(&self) -> String { String::new() }
                }
            },
        ));
        let Item::Impl(first) = &out.items[0] else {
            panic!("the user's impl comes first")
        };
        assert_eq!(
            str_of(first),
            "implSvc{fnbad(&self){}fngood(&self)->String{String::new()}}"
        );
        assert_eq!(
            compile_errors(&out),
            ["path parameter `{id}` has no argument named `id` in `bad`"]
        );
        let text = str_of(&out);
        assert!(text.contains(
            "Route::new(0usize,\"GET\",&[::serve_core::__private::Segment::Literal(\"b\")])"
        ));
        assert!(!text.contains("Self::bad"));
    }

    #[test]
    fn other_items_are_rejected_and_emitted_unchanged() {
        let item = quote!(
            struct Svc;
        );
        let out = file(expand(TokenStream::new(), item.clone()));
        assert_eq!(str_of(&out.items[0]), str_of(&item));
        assert_eq!(compile_errors(&out), [parse::NOT_AN_INGRESS]);
    }

    #[test]
    fn options_on_the_impl_are_reported_like_under_deployment() {
        let out = file(expand(quote!(num_replicas = 2), quote!(impl Svc {})));
        assert_eq!(compile_errors(&out), [crate::parse::OPTIONS_ON_IMPL]);
    }

    #[test]
    fn a_stray_route_attribute_keeps_the_item_and_says_where_it_belongs() {
        let out = file(route_outside_ingress(
            HttpMethod::Post,
            quote!(
                fn f() {}
            ),
        ));
        assert_eq!(str_of(&out.items[0]), "fnf(){}");
        assert_eq!(
            compile_errors(&out),
            ["`#[post]` must be inside an `#[ingress]` impl block"]
        );
    }
}
