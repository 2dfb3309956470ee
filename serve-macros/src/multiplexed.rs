//! `#[multiplexed(max_num_models_per_replica = N)]` on a loader method of a `#[deployment]` (or
//! `#[ingress]`) impl block: Ray's `@serve.multiplexed`.
//!
//! The loader is taken out of the user's impl block before the endpoints are read (it is not an
//! endpoint), and emitted in an impl block of its own: the user's method, renamed
//! `__serve_load_{name}` and hidden, and in its place a method of the same name and visibility
//! that returns the replica's cached model, loading it with the user's method when it is not
//! cached. One loader per deployment: a request carries one model id, and routing follows it.
//!
//! ```ignore
//! #[multiplexed(max_num_models_per_replica = 2)]
//! pub async fn get_model(&self, model_id: String) -> Result<Model, LoadError> { .. }
//! ```
//! becomes
//! ```ignore
//! impl Svc {
//!     pub async fn get_model(&self, model_id: impl AsRef<str>) -> Result<Arc<Model>, ServeError> {
//!         P::multiplexed_async("get_model", 2usize, AsRef::<str>::as_ref(&model_id),
//!             |__serve_id: String| async move {
//!                 let __serve_loaded = Self::__serve_load_get_model(self, __serve_id).await;
//!                 P::fallible(__serve_loaded)
//!             },
//!         ).await
//!     }
//!     #[doc(hidden)]
//!     async fn __serve_load_get_model(&self, model_id: String) -> Result<Model, LoadError> { .. }
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, LitInt, Pat, ReturnType, Token, Type};

use crate::util::{Errors, contains_impl_trait, first_type_arg, last_segment, peel, plain_name};

/// Ray's default.
const DEFAULT_MAX_MODELS: u64 = 3;

pub(crate) const NOT_A_METHOD: &str = "a `#[multiplexed]` loader is a method of the deployment: `async fn get_model(&self, model_id: String) -> Model`";
pub(crate) const MUT_SELF: &str =
    "a `#[multiplexed]` loader takes `&self`, not `&mut self`: concurrent requests call it at once";
pub(crate) const SELF_BY_VALUE: &str = "a `#[multiplexed]` loader takes `&self`";
pub(crate) const ONE_ARGUMENT: &str =
    "a `#[multiplexed]` loader takes one argument after `&self`, the model id: `model_id: String`";
pub(crate) const ID_TYPE: &str = "the model id is a `String`: `model_id: String`";
pub(crate) const GENERIC: &str =
    "a `#[multiplexed]` loader cannot be generic: it returns one model type";
pub(crate) const NO_MODEL: &str =
    "a `#[multiplexed]` loader returns the model it loaded: `-> Model` or `-> Result<Model, E>`";
pub(crate) const IMPL_RETURN: &str = "a `#[multiplexed]` loader returns the model as a named type (`-> Model` or `-> Result<Model, E>`), not `impl Trait`: it is cached and shared";
pub(crate) const SECOND_LOADER: &str = "a deployment has one `#[multiplexed]` loader: a request carries one model id, and routing follows it";
pub(crate) const OUTSIDE: &str = "`#[multiplexed]` goes on a loader method inside a `#[deployment]` (or `#[ingress]`) impl block";

/// The options of one loader.
struct Options {
    max_models: u64,
}

/// Whether `attr` is `#[multiplexed]` (bare or under a path starting with `serve_core`).
fn is_multiplexed(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments
        .last()
        .is_some_and(|s| s.ident == "multiplexed")
        && (path.segments.len() == 1
            || path
                .segments
                .first()
                .is_some_and(|s| s.ident == "serve_core"))
}

/// Takes the `#[multiplexed]` loaders out of `item` and returns the impl block that replaces
/// them (empty when there is none). Errors go to `errors`; a loader with errors is emitted as
/// written (without the attribute), so the rest of the code still compiles against it.
pub(crate) fn extract(item: &mut ItemImpl, errors: &mut Errors) -> TokenStream {
    let mut loaders = Vec::new();
    let mut kept = Vec::with_capacity(item.items.len());
    for impl_item in std::mem::take(&mut item.items) {
        match impl_item {
            ImplItem::Fn(mut f) if f.attrs.iter().any(is_multiplexed) => {
                let attrs: Vec<Attribute> = f
                    .attrs
                    .iter()
                    .filter(|a| is_multiplexed(a))
                    .cloned()
                    .collect();
                f.attrs.retain(|a| !is_multiplexed(a));
                loaders.push((attrs, f));
            }
            other => kept.push(other),
        }
    }
    item.items = kept;
    if loaders.is_empty() {
        return TokenStream::new();
    }
    let mut first: Option<String> = None;
    let mut out = TokenStream::new();
    for (attrs, f) in loaders {
        let mut checks = Errors::default();
        for extra in &attrs[1..] {
            checks.push(syn::Error::new_spanned(
                extra,
                "`#[multiplexed]` may only be given once",
            ));
        }
        let options = checks.take(options(&attrs[0]));
        let loader = checks.take(loader(&f));
        if first.is_some() {
            checks.push(syn::Error::new_spanned(&f.sig.ident, SECOND_LOADER));
        }
        first.get_or_insert_with(|| plain_name(&f.sig.ident));
        match (options, loader, checks.into_error()) {
            (Some(options), Some(loader), None) => out.extend(generate(&f, &loader, &options)),
            (_, _, error) => {
                errors.extend(error);
                out.extend(quote!(#f));
            }
        }
    }
    let (self_ty, (impl_generics, _, where_clause)) =
        (&item.self_ty, item.generics.split_for_impl());
    quote! {
        impl #impl_generics #self_ty #where_clause {
            #out
        }
    }
}

/// `max_num_models_per_replica = N`, or nothing (Ray's default, 3).
fn options(attr: &Attribute) -> syn::Result<Options> {
    mod kw {
        syn::custom_keyword!(max_num_models_per_replica);
    }
    let mut max_models: Option<u64> = None;
    let parse = |input: ParseStream<'_>| -> syn::Result<()> {
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if !lookahead.peek(kw::max_num_models_per_replica) {
                return Err(lookahead.error());
            }
            let key: kw::max_num_models_per_replica = input.parse()?;
            if max_models.is_some() {
                return Err(syn::Error::new_spanned(
                    key,
                    "`max_num_models_per_replica` may only be specified once",
                ));
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    key,
                    "`max_num_models_per_replica` needs a value: `max_num_models_per_replica = 2`",
                ));
            }
            input.parse::<Token![=]>()?;
            if input.peek(Token![-]) {
                let minus: Token![-] = input.parse()?;
                let lit: LitInt = input.parse()?;
                return Err(syn::Error::new_spanned(
                    quote!(#minus #lit),
                    format!(
                        "`max_num_models_per_replica` must be at least 1, not -{}",
                        lit.base10_digits()
                    ),
                ));
            }
            let lit: LitInt = input.parse()?;
            let value: u64 = lit.base10_parse()?;
            if value == 0 {
                return Err(syn::Error::new_spanned(
                    lit,
                    "`max_num_models_per_replica` must be at least 1, not 0",
                ));
            }
            max_models = Some(value);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    match &attr.meta {
        syn::Meta::Path(_) => {}
        syn::Meta::List(list) => parse.parse2(list.tokens.clone())?,
        syn::Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                "`#[multiplexed]` takes its options in parentheses: `#[multiplexed(max_num_models_per_replica = 2)]`",
            ));
        }
    }
    Ok(Options {
        max_models: max_models.unwrap_or(DEFAULT_MAX_MODELS),
    })
}

/// A valid loader's parts.
struct Loader {
    /// The name of the id parameter (`model_id` when the pattern is not a plain ident).
    id_name: syn::Ident,
    /// The model type `M`.
    model: Type,
    fallible: bool,
}

/// Checks the loader's signature.
fn loader(f: &ImplItemFn) -> syn::Result<Loader> {
    let mut checks = Errors::default();
    let sig = &f.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        checks.push(syn::Error::new_spanned(&sig.generics, GENERIC));
    }
    match sig.receiver() {
        None => checks.push(syn::Error::new_spanned(&sig.ident, NOT_A_METHOD)),
        Some(receiver) => match peel(&receiver.ty) {
            Type::Reference(r) if r.mutability.is_some() => {
                checks.push(syn::Error::new_spanned(receiver, MUT_SELF))
            }
            Type::Reference(_) => {}
            _ => checks.push(syn::Error::new_spanned(receiver, SELF_BY_VALUE)),
        },
    }
    let typed: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut id_name = format_ident!("model_id");
    match typed.as_slice() {
        [id] => {
            if let Pat::Ident(p) = &*id.pat {
                id_name = p.ident.clone();
            }
            let is_string =
                last_segment(&id.ty).is_some_and(|s| s.ident == "String" && s.arguments.is_none());
            if !is_string {
                checks.push(syn::Error::new_spanned(&id.ty, ID_TYPE));
            }
        }
        [] => checks.push(syn::Error::new(sig.paren_token.span.join(), ONE_ARGUMENT)),
        [_, extra @ ..] => {
            let extra: Vec<_> = extra.iter().collect();
            checks.push(syn::Error::new_spanned(quote!(#(#extra),*), ONE_ARGUMENT))
        }
    }
    let (model, fallible) = match &sig.output {
        ReturnType::Default => {
            checks.push(syn::Error::new_spanned(&sig.ident, NO_MODEL));
            (Type::Verbatim(TokenStream::new()), false)
        }
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => {
            checks.push(syn::Error::new_spanned(ty, IMPL_RETURN));
            (Type::Verbatim(TokenStream::new()), false)
        }
        ReturnType::Type(_, ty) => match peel(ty) {
            Type::Tuple(t) if t.elems.is_empty() => {
                checks.push(syn::Error::new_spanned(ty, NO_MODEL));
                (Type::Verbatim(TokenStream::new()), false)
            }
            _ => match last_segment(ty)
                .filter(|s| s.ident == "Result")
                .map(first_type_arg)
            {
                Some(Some(ok)) => (ok.clone(), true),
                Some(None) => {
                    checks.push(syn::Error::new_spanned(
                        ty,
                        "cannot tell the model type of this `Result`: write `Result<Model, E>`",
                    ));
                    (Type::Verbatim(TokenStream::new()), false)
                }
                None => ((**ty).clone(), false),
            },
        },
    };
    checks.finish(Loader {
        id_name,
        model,
        fallible,
    })
}

/// The accessor in the loader's place, and the loader itself, renamed and hidden.
fn generate(f: &ImplItemFn, loader: &Loader, options: &Options) -> TokenStream {
    let p = quote!(::serve_core::__private);
    let name = &f.sig.ident;
    let loader_name = plain_name(name);
    let inner = format_ident!("__serve_load_{}", loader_name, span = name.span());
    let (vis, id, model) = (&f.vis, &loader.id_name, &loader.model);
    let max = proc_macro2::Literal::usize_suffixed(options.max_models as usize);
    // At the return type: an error type that is no error is reported there.
    let output_span = match &f.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => name.span(),
    };
    let wrap = if loader.fallible {
        quote!(#p::fallible)
    } else {
        quote!(#p::infallible)
    };
    let wrapped = quote_spanned!(output_span=> #wrap(__serve_loaded));
    let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let cfgs: Vec<_> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let about = format!(
        "The model `{id}` from this replica's cache of at most {max} models (`#[multiplexed]`), \
         loaded with `{loader_name}`'s body if it is not cached: once, however many requests ask \
         for it at once; the least recently used model is evicted first when it does not fit. A \
         failed load caches nothing and fails with the loader's error."
    );
    let separator = f
        .attrs
        .iter()
        .any(|a| a.path().is_ident("doc"))
        .then(|| quote!(#[doc = ""]));
    let id_ref = quote!(::core::convert::AsRef::<::core::primitive::str>::as_ref(&#id));
    let model_span = model.span();
    let result = quote_spanned! {model_span=>
        ::core::result::Result<#p::Arc<#model>, #p::ServeError>
    };
    let accessor = match f.sig.asyncness {
        Some(_) => quote! {
            #vis async fn #name(
                &self,
                #id: impl ::core::convert::AsRef<::core::primitive::str>,
            ) -> #result {
                #p::multiplexed_async(#loader_name, #max, #id_ref,
                    |__serve_id: ::std::string::String| async move {
                        let __serve_loaded = Self::#inner(self, __serve_id).await;
                        #wrapped
                    },
                ).await
            }
        },
        None => quote! {
            #vis fn #name(
                &self,
                #id: impl ::core::convert::AsRef<::core::primitive::str>,
            ) -> #result {
                #p::multiplexed_sync(#loader_name, #max, #id_ref,
                    |__serve_id: ::std::string::String| {
                        let __serve_loaded = Self::#inner(self, __serve_id);
                        #wrapped
                    },
                )
            }
        },
    };
    let mut hidden = f.clone();
    hidden.sig.ident = inner;
    hidden.vis = syn::Visibility::Inherited;
    hidden.attrs.retain(|a| !a.path().is_ident("doc"));
    quote! {
        #(#docs)*
        #separator
        #[doc = #about]
        #(#cfgs)*
        #accessor

        #[doc(hidden)]
        #hidden
    }
}

/// A `#[multiplexed]` that no `#[deployment]` consumed: the item, unchanged, and an error.
pub(crate) fn outside(item: TokenStream) -> TokenStream {
    let error = syn::Error::new(Span::call_site(), OUTSIDE).to_compile_error();
    quote!(#item #error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::str_of;

    fn run(item: TokenStream) -> (String, String, Vec<String>) {
        let mut imp: ItemImpl = syn::parse2(item).unwrap();
        let mut errors = Errors::default();
        let generated = extract(&mut imp, &mut errors);
        let messages = errors
            .into_error()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default();
        (
            str_of(&imp),
            generated.to_string().replace(' ', ""),
            messages,
        )
    }

    #[test]
    fn a_loader_leaves_the_impl_and_becomes_an_accessor_and_a_hidden_loader() {
        let (user, generated, errors) = run(quote! {
            impl Svc {
                #[multiplexed(max_num_models_per_replica = 2)]
                pub async fn get_model(&self, model_id: String) -> Result<Model, E> { load(model_id) }
                pub fn call(&self) {}
            }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(user, "implSvc{pubfncall(&self){}}");
        assert!(generated.contains("pubasyncfnget_model(&self,model_id:impl::core::convert::AsRef<::core::primitive::str>,)->::core::result::Result<::serve_core::__private::Arc<Model>,::serve_core::__private::ServeError>"), "{generated}");
        assert!(generated.contains("multiplexed_async(\"get_model\",2usize,"));
        assert!(generated.contains("let__serve_loaded=Self::__serve_load_get_model(self,__serve_id).await;::serve_core::__private::fallible(__serve_loaded)"));
        assert!(generated.contains("#[doc(hidden)]asyncfn__serve_load_get_model(&self,model_id:String)->Result<Model,E>{load(model_id)}"));
    }

    #[test]
    fn a_sync_loader_without_options_gets_a_sync_accessor_and_rays_default() {
        let (_, generated, errors) = run(quote! {
            impl Svc {
                #[multiplexed]
                fn get_model(&self, id: String) -> Model { Model }
            }
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert!(generated.contains("fnget_model(&self,id:impl"));
        assert!(generated.contains("multiplexed_sync(\"get_model\",3usize,"));
        assert!(generated.contains("let__serve_loaded=Self::__serve_load_get_model(self,__serve_id);::serve_core::__private::infallible(__serve_loaded)"));
    }

    #[test]
    fn bad_loaders_are_reported_and_kept_as_written() {
        let (_, generated, errors) = run(quote! {
            impl Svc {
                #[multiplexed(max_num_models_per_replica = 0)]
                async fn a(&mut self, id: String, extra: u8) {}
                #[multiplexed(max_models = 2)]
                async fn b(&self, id: &str) -> Model { Model }
            }
        });
        assert_eq!(
            errors,
            [
                "`max_num_models_per_replica` must be at least 1, not 0",
                MUT_SELF,
                ONE_ARGUMENT,
                NO_MODEL,
                "expected `max_num_models_per_replica`",
                ID_TYPE,
                SECOND_LOADER,
            ]
        );
        assert!(generated.contains("asyncfna(&mutself,id:String,extra:u8){}"));
    }
}
