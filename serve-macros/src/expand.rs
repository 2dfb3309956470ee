//! The `#[deployment]` expansion: the user's item, unchanged, then what could be generated, then
//! every error. Emitting the original item even on error keeps IDEs and later diagnostics useful.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::util::Errors;
use crate::{batch, codegen, multiplexed, parse};

/// `#[deployment(args)]` on `input` (a struct or its inherent impl block).
pub(crate) fn deployment(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let error = e.to_compile_error();
            return quote!(#input #error);
        }
    };
    let mut errors = Errors::default();
    // The impl block without its `#[multiplexed]` loader and `#[batch]` attributes, and the
    // loader's own block, if there is one.
    let mut rewritten = None;
    let generated = match &item {
        Item::Struct(s) => {
            let model = parse::deployment_struct(args, s, &mut errors);
            let config = codegen::config_impl(&model);
            // The assertion would only repeat what the errors already say.
            let assertion = errors.is_empty().then(|| codegen::struct_assertion(&model));
            quote!(#config #assertion)
        }
        Item::Impl(i) => {
            let mut i = i.clone();
            let loaders = multiplexed::extract(&mut i, &mut errors);
            let generated = parse::deployment_impl(args, &i, &mut errors)
                .map(|model| codegen::deployment_impl(&model))
                .unwrap_or_default();
            // `#[batch]` is `#[deployment]`'s to consume (the parser has read it): the emitted
            // impl goes without it.
            let batched = i.items.iter().any(
                |it| matches!(it, syn::ImplItem::Fn(f) if f.attrs.iter().any(batch::is_batch)),
            );
            if batched {
                batch::strip(&mut i);
            }
            if batched || !loaders.is_empty() {
                rewritten = Some(quote!(#i #loaders));
            }
            generated
        }
        other => {
            errors.push(parse::not_a_deployment(other));
            TokenStream::new()
        }
    };
    let errors = errors.into_error().map(|e| e.to_compile_error());
    let user = rewritten.unwrap_or(input);
    quote!(#user #generated #errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{GENERIC_DEPLOYMENT, MUT_SELF, NOT_A_DEPLOYMENT, REFERENCE_ARG};
    use crate::testing::{compile_errors, file, impls_of, method_of, str_of, struct_named};

    #[test]
    fn an_impl_with_errors_is_emitted_unchanged_with_the_good_stubs_and_all_errors() {
        let user_impl = quote! {
            impl Svc {
                fn bad(&mut self, name: &str) {}
                fn good(&self) -> u8 { 0 }
            }
        };
        let out = file(deployment(TokenStream::new(), user_impl.clone()));
        let Item::Impl(first) = &out.items[0] else {
            panic!("the user's impl comes first")
        };
        assert_eq!(str_of(first), str_of(&user_impl));
        assert_eq!(compile_errors(&out), [MUT_SELF, REFERENCE_ARG]);
        assert!(method_of(&out, "SvcGoodStub", "remote").is_some());
        assert!(struct_named(&out, "SvcBadStub").is_none());
        let handle = struct_named(&out, "SvcHandle").unwrap();
        assert_eq!(handle.fields.len(), 2, "`good` and the router");
    }

    #[test]
    fn a_struct_with_errors_keeps_the_struct_and_a_default_config() {
        let user_struct = quote!(
            pub struct Svc<T> {
                t: T,
            }
        );
        let out = file(deployment(quote!(num_replicas = 0), user_struct.clone()));
        assert_eq!(str_of(&out.items[0]), str_of(&user_struct));
        assert_eq!(
            compile_errors(&out),
            [
                "`num_replicas` must be at least 1, not 0",
                GENERIC_DEPLOYMENT
            ]
        );
        let config = impls_of(&out, "Svc");
        assert_eq!(config.len(), 1);
        assert!(str_of(config[0]).contains("DeploymentConfig::new(\"Svc\")}"));
        assert!(
            !out.items.iter().any(|i| matches!(i, Item::Const(_))),
            "no type assertion on top of the errors"
        );
    }

    #[test]
    fn a_valid_struct_gets_its_config_and_assertion() {
        let out = file(deployment(
            TokenStream::new(),
            quote!(
                struct Svc;
            ),
        ));
        assert_eq!(compile_errors(&out), Vec::<String>::new());
        let assertion = out.items.iter().find_map(|i| match i {
            Item::Const(c) => Some(str_of(&c.expr)),
            _ => None,
        });
        assert!(
            assertion
                .unwrap()
                .contains("assert_deployment_type::<Svc>();")
        );
    }

    #[test]
    fn other_items_are_rejected_and_emitted_unchanged() {
        for item in [
            quote!(
                enum Color {
                    Red,
                }
            ),
            quote!(union U { a: u8 }),
            quote!(
                fn f() {}
            ),
            quote!(
                trait T {}
            ),
        ] {
            let out = file(deployment(TokenStream::new(), item.clone()));
            assert_eq!(out.items.len(), 2, "the item and its error");
            assert_eq!(str_of(&out.items[0]), str_of(&item));
            assert_eq!(compile_errors(&out), [NOT_A_DEPLOYMENT]);
        }
    }
}
