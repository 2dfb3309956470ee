//! From the model to tokens. Cannot fail: everything was validated by the parser.
//!
//! One function per generated item, in the order EXPANSION.md lists them. Runtime items are named
//! only through `::serve_core::__private` and std items only through `::core` / `::std`, so the
//! expansion compiles under `#![no_implicit_prelude]`.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::model::{
    Asyncness, Constructor, CtorParam, CtorParamKind, DeploymentImpl, DeploymentStruct, Hook, Kind,
    Method, NewFn, Output,
};
use crate::util::{camel_case, plain_name, private, replace_self};

mod batch;

/// The `DeploymentDefaults` impl of a `#[deployment(...)]` struct: one setter per option given, in
/// the config's field order, then `autoscaling(..)`, then each custom resource.
pub(crate) fn config_impl(model: &DeploymentStruct) -> TokenStream {
    let p = private();
    let ident = &model.ident;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let options = &model.options;
    let name = match &options.name {
        Some(lit) => lit.to_token_stream(),
        None => plain_name(ident).into_token_stream(),
    };
    let setters = options.setters().into_iter().map(|(method, lit)| {
        let method = format_ident!("{method}");
        quote!(.#method(#lit))
    });
    let autoscaling = options.autoscaling.as_ref().map(|a| {
        let setters = a.setters().into_iter().map(|(method, lit)| {
            let method = format_ident!("{method}");
            quote!(.#method(#lit))
        });
        quote!(.autoscaling(
            <#p::AutoscalingConfig as ::core::default::Default>::default() #(#setters)*
        ))
    });
    let resources = options.resources.iter().map(|r| {
        let mut name = Literal::string(&r.name);
        name.set_span(r.name_span);
        let amount = r.amount.literal();
        quote!(.resource(#name, #amount))
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::DeploymentDefaults for #ident #ty_generics #where_clause {
            fn __deployment_config() -> #p::DeploymentConfig {
                #p::DeploymentConfig::new(#name) #(#setters)* #autoscaling #(#resources)*
            }
        }
    }
}

/// Asks the runtime to check the struct, with the error pointing at the struct's name.
pub(crate) fn struct_assertion(model: &DeploymentStruct) -> TokenStream {
    let ident = &model.ident;
    let check = quote_spanned! {ident.span()=>
        ::serve_core::__private::assert_deployment_type::<#ident>();
    };
    quote! {
        const _: () = {
            fn __serve_assert_deployment() { #check }
        };
    }
}

/// Everything generated for a `#[deployment]` impl block (the user's impl is emitted by the caller).
pub(crate) fn deployment_impl(model: &DeploymentImpl) -> TokenStream {
    let g = ImplGen::new(model);
    let stubs = model.methods.iter().map(|m| g.stub(m));
    let items = [
        g.handle_struct(),
        g.handle_clone(),
        g.handle_stubs(),
        g.deployment(),
        stubs.collect(),
        g.shorthand(),
        g.bind(),
        g.assertions(),
        g.batch_specs(),
    ];
    items.into_iter().collect()
}

struct ImplGen<'a> {
    model: &'a DeploymentImpl,
    /// `::serve_core::__private`.
    p: TokenStream,
    /// The deployment type as written after `impl`.
    ty: TokenStream,
    /// The same, as rustdoc link text (`Ingress`, `crate::Ingress`).
    doc_path: String,
    handle: Ident,
}

impl<'a> ImplGen<'a> {
    fn new(model: &'a DeploymentImpl) -> Self {
        let doc_path = model
            .self_ty
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect::<Vec<_>>()
            .join("::");
        let doc_path = match model.self_ty.leading_colon {
            Some(_) => format!("::{doc_path}"),
            None => doc_path,
        };
        ImplGen {
            model,
            p: private(),
            ty: model.self_ty.to_token_stream(),
            doc_path,
            handle: format_ident!("{}Handle", model.ident),
        }
    }

    /// A user type, usable outside the impl block.
    fn user_ty(&self, ty: &Type) -> TokenStream {
        replace_self(ty.to_token_stream(), &self.ty)
    }

    fn value_ty(&self, output: &Output) -> TokenStream {
        match &output.value_ty {
            Some(ty) => self.user_ty(ty),
            None => quote!(()),
        }
    }

    fn stub_ident(&self, m: &Method) -> Ident {
        format_ident!(
            "{}{}Stub",
            self.model.ident,
            camel_case(&m.ident),
            span = m.ident.span()
        )
    }

    fn method_link(&self, m: &Method) -> String {
        format!("[`{}::{}`]", self.doc_path, plain_name(&m.ident))
    }

    /// `DeploymentResponse<T>` or `DeploymentResponseGenerator<T>`.
    fn response_ty(&self, m: &Method) -> TokenStream {
        let p = &self.p;
        let value = self.value_ty(&m.output);
        match m.output.kind {
            Kind::Unary => quote!(#p::DeploymentResponse<#value>),
            Kind::Streaming => quote!(#p::DeploymentResponseGenerator<#value>),
        }
    }

    /// `a: impl IntoArg<A>, b: impl IntoArg<B>`; `s: impl IntoArgStream<T>` for an `ArgStream<T>`.
    fn remote_params(&self, m: &Method) -> TokenStream {
        let p = &self.p;
        let params = m.args.iter().map(|a| match &a.stream {
            Some(item) => {
                let (name, item) = (&a.name, self.user_ty(item));
                quote!(#name: impl #p::IntoArgStream<#item>)
            }
            None => {
                let (name, ty) = (&a.name, self.user_ty(&a.ty));
                quote!(#name: impl #p::IntoArg<#ty>)
            }
        });
        quote!(#(#params),*)
    }

    /// The argument tuple a stub packs: `(IntoArg::into_arg(a), ..)`; a stream argument is made
    /// an `ArgStream` first, then passed as a value.
    fn packed_args(&self, m: &Method) -> TokenStream {
        let p = &self.p;
        let packed = m.args.iter().map(|a| {
            let name = &a.name;
            match a.stream {
                Some(_) => {
                    quote!(#p::IntoArg::into_arg(#p::IntoArgStream::into_arg_stream(#name)))
                }
                None => quote!(#p::IntoArg::into_arg(#name)),
            }
        });
        quote!((#(#packed,)*))
    }

    fn handle_struct(&self) -> TokenStream {
        let (p, ty, handle) = (&self.p, &self.ty, &self.handle);
        let doc = format!(
            "Typed handle of [`{}`]: one field per method, `handle.<method>.remote(..)` calls it.",
            self.doc_path
        );
        let fields = self.model.methods.iter().map(|m| {
            let (vis, ident, cfgs, docs) = (&m.vis, &m.ident, &m.cfgs, &m.docs);
            let stub = self.stub_ident(m);
            let calls = format!("Calls {}.", self.method_link(m));
            let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
            quote! {
                #[doc = #calls]
                #separator
                #(#docs)*
                #(#cfgs)*
                #vis #ident: #stub,
            }
        });
        quote! {
            #[doc = #doc]
            #[allow(non_snake_case)]
            pub struct #handle {
                #(#fields)*
                #[doc(hidden)]
                __serve_router: #p::CallTarget<#ty>,
            }
        }
    }

    fn handle_clone(&self) -> TokenStream {
        let handle = &self.handle;
        let fields = self.model.methods.iter().map(|m| {
            let (ident, cfgs) = (&m.ident, &m.cfgs);
            quote!(#(#cfgs)* #ident: ::core::clone::Clone::clone(&self.#ident),)
        });
        quote! {
            #[automatically_derived]
            impl ::core::clone::Clone for #handle {
                fn clone(&self) -> Self {
                    Self {
                        #(#fields)*
                        __serve_router: ::core::clone::Clone::clone(&self.__serve_router),
                    }
                }
            }
        }
    }

    fn handle_stubs(&self) -> TokenStream {
        let (p, ty, handle) = (&self.p, &self.ty, &self.handle);
        let call_encoded = self.call_encoded();
        let fields = self.model.methods.iter().map(|m| {
            let (ident, cfgs) = (&m.ident, &m.cfgs);
            let stub = self.stub_ident(m);
            quote!(#(#cfgs)* #ident: #stub { __serve_router: ::core::clone::Clone::clone(&router) },)
        });
        quote! {
            #[automatically_derived]
            impl #p::HandleStubs<#ty> for #handle {
                fn __from_target(router: #p::CallTarget<#ty>) -> Self {
                    Self {
                        #(#fields)*
                        __serve_router: router,
                    }
                }
                fn __target(&self) -> &#p::CallTarget<#ty> {
                    &self.__serve_router
                }
                #call_encoded
            }
        }
    }

    /// `__call_encoded`: a call by method name with the argument tuple encoded, made through the
    /// method's own stub, its result or items encoded. Encoders and decoders are picked with
    /// `Wire` (autoref specialization), so a non-serde type gets only `assert_arg`'s error.
    fn call_encoded(&self) -> TokenStream {
        let p = &self.p;
        let arms = self.model.methods.iter().map(|m| {
            let (ident, cfgs, name) = (&m.ident, &m.cfgs, m.name());
            let names: Vec<_> = m.args.iter().map(|a| &a.name).collect();
            let tys: Vec<_> = m.args.iter().map(|a| self.user_ty(&a.ty)).collect();
            let value = self.value_ty(&m.output);
            let response = match m.output.kind {
                Kind::Unary => quote!(unary),
                Kind::Streaming => quote!(stream),
            };
            quote! {
                #(#cfgs)*
                #name => {
                    let (#(#names,)*): (#(#tys,)*) =
                        (&&#p::Wire::<(#(#tys,)*)>::NEW).__serve_decoder()(__serve_args)?;
                    ::core::result::Result::Ok(#p::EncodedResponse::#response(
                        self.#ident.remote(#(#names),*),
                        (&&#p::Wire::<#value>::NEW).__serve_encoder(),
                    ))
                }
            }
        });
        quote! {
            fn __call_encoded(
                &self,
                __serve_method: &str,
                __serve_args: &[u8],
            ) -> ::core::result::Result<#p::EncodedResponse, #p::ServeError> {
                #[allow(unused_imports)]
                use ::serve_core::__private::{WireFallback as _, WireViaSerde as _};
                match __serve_method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(
                        #p::unknown_method(&self.__serve_router, __serve_method),
                    ),
                }
            }
        }
    }

    fn deployment(&self) -> TokenStream {
        let (p, ty, handle) = (&self.p, &self.ty, &self.handle);
        let batches = self.batches_fn();
        let check_health = self.model.check_health.as_ref().map(|hook| {
            let body = self.hook_body(hook, TokenStream::new());
            quote! {
                fn __check_health(this: &#p::Arc<Self>) -> ::core::option::Option<#p::Hook> {
                    let this = ::core::clone::Clone::clone(this);
                    ::core::option::Option::Some(#body)
                }
            }
        });
        let reconfigure = self.model.reconfigure.as_ref().map(|hook| {
            let arg_ty = hook.arg.as_ref().map(|t| self.user_ty(t));
            let decode = quote!(let config: #arg_ty = #p::user_config(config)?;);
            let body = self.hook_body(hook, decode);
            quote! {
                fn __reconfigure(
                    this: &#p::Arc<Self>,
                    config: #p::JsonValue,
                ) -> ::core::option::Option<#p::Hook> {
                    let this = ::core::clone::Clone::clone(this);
                    ::core::option::Option::Some(#body)
                }
            }
        });
        quote! {
            #[automatically_derived]
            impl #p::Deployment for #ty {
                type Handle = #handle;
                #check_health
                #reconfigure
                #batches
            }
        }
    }

    /// The future of a lifecycle hook: decode its argument (`prelude`), call it, convert its result.
    fn hook_body(&self, hook: &Hook, prelude: TokenStream) -> TokenStream {
        let (p, ty, ident) = (&self.p, &self.ty, &hook.ident);
        let wrap = if hook.fallible {
            quote!(#p::fallible)
        } else {
            quote!(#p::infallible)
        };
        let config = hook.arg.as_ref().map(|_| quote!(, config));
        match hook.asyncness {
            Asyncness::Async => quote! {
                #p::hook_async(async move {
                    #prelude
                    #wrap(#ty::#ident(&*this #config).await)
                })
            },
            Asyncness::Sync => quote! {
                #p::hook_sync(move || {
                    #prelude
                    #wrap(#ty::#ident(&*this #config))
                })
            },
        }
    }

    /// The stub type of one method: struct, `Clone`, and `remote`.
    fn stub(&self, m: &Method) -> TokenStream {
        let (p, ty, cfgs, vis) = (&self.p, &self.ty, &m.cfgs, &m.vis);
        let stub = self.stub_ident(m);
        let struct_doc = match m.output.kind {
            Kind::Unary => format!(
                "Stub of {}: `.remote(..)` sends one request.",
                self.method_link(m)
            ),
            Kind::Streaming => format!(
                "Stub of {}: `.remote(..)` sends one request and streams the items back.",
                self.method_link(m)
            ),
        };
        let remote_doc = if m.docs.is_empty() {
            let doc = format!("Calls {} on a replica.", self.method_link(m));
            quote!(#[doc = #doc])
        } else {
            let docs = &m.docs;
            quote!(#(#docs)*)
        };
        let params = self.remote_params(m);
        let response = self.response_ty(m);
        let body = self.stub_call(m);
        quote! {
            #[doc = #struct_doc]
            #(#cfgs)*
            pub struct #stub {
                __serve_router: #p::CallTarget<#ty>,
            }

            #(#cfgs)*
            #[automatically_derived]
            impl ::core::clone::Clone for #stub {
                fn clone(&self) -> Self {
                    Self { __serve_router: ::core::clone::Clone::clone(&self.__serve_router) }
                }
            }

            #(#cfgs)*
            #[automatically_derived]
            impl #stub {
                #remote_doc
                #vis fn remote(&self, #params) -> #response {
                    #body
                }
            }
        }
    }

    /// The router call inside a stub's `remote`.
    fn stub_call(&self, m: &Method) -> TokenStream {
        let (p, ty, ident) = (&self.p, &self.ty, &m.ident);
        let name = m.name();
        let names: Vec<_> = m.args.iter().map(|a| &a.name).collect();
        let tys: Vec<_> = m.args.iter().map(|a| self.user_ty(&a.ty)).collect();
        let packed = self.packed_args(m);
        let unpacked = quote!((#(#names,)*): (#(#tys,)*));
        let wrap = reply(m.output.fallible);
        let router = quote!(&self.__serve_router);
        let value = self.value_ty(&m.output);
        // Used only when the picked replica is in another process. An `ArgStream` is serde: it
        // encodes as a descriptor of the stream, which the request plane lends to the serving node.
        let wire = quote!(#p::CallWire {
            args: (&&#p::Wire::<(#(#tys,)*)>::NEW).__serve_encoder(),
            result: (&&#p::Wire::<#value>::NEW).__serve_decoder(),
        });
        let call = match (m.output.kind, m.asyncness) {
            _ if m.batch.is_some() => self.batched_call(m, packed, wire),
            (Kind::Unary, Asyncness::Sync) => quote! {
                #p::RequestRouter::call_sync(#router, #name, #packed,
                    move |__serve_this: &#ty, #unpacked| #wrap(#ty::#ident(__serve_this #(, #names)*)), #wire)
            },
            (Kind::Unary, Asyncness::Async) => quote! {
                #p::RequestRouter::call_async(#router, #name, #packed,
                    move |__serve_this: #p::Arc<#ty>, #unpacked| async move {
                        #wrap(#ty::#ident(&*__serve_this #(, #names)*).await)
                    }, #wire)
            },
            (Kind::Streaming, asyncness) => {
                let drive = if m.output.fallible {
                    quote!(drive_fallible)
                } else {
                    quote!(drive)
                };
                let wait = (asyncness == Asyncness::Async).then(|| quote!(.await));
                let mut stream = quote!(#ty::#ident(&*__serve_this #(, #names)*) #wait);
                if m.output.streaming_response {
                    // The head, then the items: `StreamPart<T>`s.
                    let parts = if m.output.fallible {
                        quote!(__fallible_parts)
                    } else {
                        quote!(__parts)
                    };
                    stream = quote!(#p::StreamingResponse::#parts(#stream));
                }
                quote! {
                    #p::RequestRouter::call_stream(#router, #name, #packed,
                        move |__serve_this: #p::Arc<#ty>, #unpacked, __serve_sink: #p::StreamSink<#value>| async move {
                            __serve_sink.#drive(#stream).await
                        }, #wire)
                }
            }
        };
        quote! {
            #[allow(unused_imports)]
            use ::serve_core::__private::{WireFallback as _, WireViaSerde as _};
            #call
        }
    }

    /// `handle.remote(..)`, the same as `handle.call.remote(..)`, when a method `call` exists.
    fn shorthand(&self) -> TokenStream {
        let Some(m) = self.model.methods.iter().find(|m| m.name() == "call") else {
            return TokenStream::new();
        };
        let (handle, ident, cfgs, vis) = (&self.handle, &m.ident, &m.cfgs, &m.vis);
        let doc = format!(
            "Calls {}; the same as `handle.call.remote(..)`.",
            self.method_link(m)
        );
        let params = self.remote_params(m);
        let response = self.response_ty(m);
        let names = m.args.iter().map(|a| &a.name);
        let call_one = self.call_one(m);
        quote! {
            #(#cfgs)*
            #[automatically_derived]
            impl #handle {
                #[doc = #doc]
                #vis fn remote(&self, #params) -> #response {
                    self.#ident.remote(#(#names),*)
                }
            }
            #call_one
        }
    }

    /// For a `call` with one argument: `CallOne` (unary) or `CallStream` (streaming), how the
    /// runtime itself (the HTTP proxy) calls an ingress deployment without knowing its type.
    fn call_one(&self, m: &Method) -> TokenStream {
        let [arg] = m.args.as_slice() else {
            return TokenStream::new();
        };
        let (p, handle, ident, cfgs) = (&self.p, &self.handle, &m.ident, &m.cfgs);
        let arg_ty = self.user_ty(&arg.ty);
        let value = self.value_ty(&m.output);
        if m.output.kind == Kind::Streaming {
            return quote! {
                #(#cfgs)*
                #[automatically_derived]
                impl #p::CallStream<#arg_ty> for #handle {
                    type Item = #value;
                    fn __call_stream(&self, arg: #arg_ty) -> #p::DeploymentResponseGenerator<#value> {
                        self.#ident.remote(arg)
                    }
                }
            };
        }
        quote! {
            #(#cfgs)*
            #[automatically_derived]
            impl #p::CallOne<#arg_ty> for #handle {
                type Output = #value;
                fn __call_one(&self, arg: #arg_ty) -> #p::DeploymentResponse<#value> {
                    self.#ident.remote(arg)
                }
            }
        }
    }

    /// `Ty::bind(..)`: the constructor's arguments, with `Application<D>` for each handle.
    fn bind(&self) -> TokenStream {
        let (p, ty) = (&self.p, &self.ty);
        let doc = format!(
            "Binds the constructor's arguments into an `Application` of [`{}`]: deploy it, or pass it \
             to another deployment's `bind` where that deployment's `new` takes a `DeploymentHandle`.",
            self.doc_path
        );
        let declare = self.batch_declarations();
        let default = quote!(#p::infallible(<#ty as ::core::default::Default>::default()));
        // In a block only when there is something to declare.
        let default = if declare.is_empty() {
            default
        } else {
            quote!({ #declare #default })
        };
        let (params, body) = match &self.model.constructor {
            Constructor::Invalid => return TokenStream::new(),
            Constructor::Default => (
                TokenStream::new(),
                quote! {
                    #p::Application::__new([], move |__serve_ctx: &#p::BuildContext| {
                        #p::Constructor::sync(move || #default)
                    })
                },
            ),
            Constructor::New(new) => (self.bind_params(new), self.bind_body(new)),
        };
        quote! {
            #[automatically_derived]
            impl #ty {
                #[doc = #doc]
                pub fn bind(#params) -> #p::Application<#ty> {
                    #body
                }
            }
        }
    }

    fn bind_params(&self, new: &NewFn) -> TokenStream {
        let params = new.params.iter().map(|param| {
            let name = &param.name;
            match &param.kind {
                CtorParamKind::Handles(bound) => {
                    let bound = self.user_ty(bound);
                    quote!(#name: #bound)
                }
                CtorParamKind::Value => {
                    let ty = self.user_ty(&param.ty);
                    quote!(#name: #ty)
                }
            }
        });
        quote!(#(#params),*)
    }

    fn bind_body(&self, new: &NewFn) -> TokenStream {
        let (p, ty) = (&self.p, &self.ty);
        // `<T as Bindable>::f(..);` wholly spanned at the parameter's type (a call of mixed spans
        // is reported at `#[deployment]`): a shape serve-core cannot wire (a `HashMap` key that is
        // not `Ord`, a user type named `Vec`) is reported there.
        let bindable = |param: &CtorParam, method: &str| {
            let user_ty = self.user_ty(&param.ty);
            let method = Ident::new(method, param.ty.span());
            quote_spanned!(param.ty.span()=> <#user_ty as ::serve_core::__private::Bindable>::#method)
        };
        let handles: Vec<&CtorParam> = new
            .params
            .iter()
            .filter(|param| matches!(param.kind, CtorParamKind::Handles(_)))
            .collect();
        let children = if handles.is_empty() {
            quote!([])
        } else {
            let collect = handles.iter().map(|param| {
                let (name, children) = (&param.name, bindable(param, "__children"));
                quote_spanned!(param.ty.span()=> #children(&#name, &mut __serve_children);)
            });
            quote!({
                let mut __serve_children = ::std::vec::Vec::new();
                #(#collect)*
                __serve_children
            })
        };
        let lets = new.params.iter().map(|param| {
            let name = &param.name;
            match param.kind {
                CtorParamKind::Handles(_) => {
                    let handles = bindable(param, "__handles");
                    quote_spanned!(param.ty.span()=> let #name = #handles(&#name, __serve_ctx);)
                }
                CtorParamKind::Value => {
                    // Spanned at the parameter's type: a non-`Clone` value is reported there.
                    let clone = quote_spanned!(param.ty.span()=> ::core::clone::Clone::clone);
                    quote!(let #name = #clone(&#name);)
                }
            }
        });
        let names = new.params.iter().map(|param| &param.name);
        let wrap = reply(new.fallible);
        let declare = self.batch_declarations();
        let construct = match new.asyncness {
            Asyncness::Sync if declare.is_empty() => {
                quote!(#p::Constructor::sync(move || #wrap(#ty::new(#(#names),*))))
            }
            Asyncness::Sync => {
                quote!(#p::Constructor::sync(move || { #declare #wrap(#ty::new(#(#names),*)) }))
            }
            Asyncness::Async => {
                quote!(#p::Constructor::from_async(async move { #declare #wrap(#ty::new(#(#names),*).await) }))
            }
        };
        quote! {
            #p::Application::__new(
                #children,
                move |__serve_ctx: &#p::BuildContext| {
                    #(#lets)*
                    #construct
                })
        }
    }

    /// One `assert_arg` per argument type and value type, each spanned at the user's type.
    fn assertions(&self) -> TokenStream {
        let checks = self.model.methods.iter().flat_map(|m| {
            let cfgs = &m.cfgs;
            let value = m.output.value_ty.iter();
            // A stream argument's items cross, not the stream: its item type is checked.
            let args = m.args.iter().map(|a| a.stream.as_ref().unwrap_or(&a.ty));
            args.chain(value).map(move |ty| {
                let check = assert_arg(ty, &self.user_ty(ty));
                quote!(#(#cfgs)* #check)
            })
        });
        quote! {
            const _: () = {
                fn __serve_assert_types() {
                    #(#checks)*
                }
            };
        }
    }
}

/// `fallible` for a `Result` (its `Err` becomes the caller's error), else `infallible`.
pub(crate) fn reply(fallible: bool) -> TokenStream {
    let p = private();
    if fallible {
        quote!(#p::fallible)
    } else {
        quote!(#p::infallible)
    }
}

/// `assert_arg::<T>();` spanned at `ty`, so an unserializable type's error points at the user's type.
pub(crate) fn assert_arg(ty: &Type, emitted: &TokenStream) -> TokenStream {
    quote_spanned! {ty.span()=>
        ::serve_core::__private::assert_arg::<#emitted>();
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{
        attrs_of, compile_errors, file, impls_of, method_of, str_of, struct_named,
    };
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::{Fields, File, Item};

    fn expand_impl(item: TokenStream) -> File {
        let out = file(crate::expand::deployment(TokenStream::new(), item));
        assert_eq!(compile_errors(&out), Vec::<String>::new());
        out
    }

    fn ingress() -> File {
        expand_impl(quote! {
            impl Ingress {
                pub fn new(adder: DeploymentHandle<Adder>, factor: u32) -> Result<Self, E> { todo!() }
                /// Adds then multiplies.
                pub async fn call(&self, input: i32) -> Result<i32, ServeError> { todo!() }
                fn sync_one(&self, a: String, b: u8) -> String { todo!() }
                pub fn numbers(&self, limit: u32) -> impl Stream<Item = Result<u32, E>> + Send + '_ { todo!() }
                pub async fn later(&self) -> impl Stream<Item = u8> { todo!() }
                pub fn r#type(&self, other: Self) -> Vec<Self> { todo!() }
            }
        })
    }

    /// The body of `Stub::remote`, as text.
    fn remote_body(out: &File, stub: &str) -> String {
        str_of(
            &method_of(out, stub, "remote")
                .unwrap_or_else(|| panic!("{stub}::remote"))
                .block,
        )
    }

    #[test]
    fn the_handle_has_one_field_per_method_with_the_method_visibility() {
        let out = ingress();
        let handle = struct_named(&out, "IngressHandle").unwrap();
        let Fields::Named(fields) = &handle.fields else {
            panic!()
        };
        let fields: Vec<_> = fields
            .named
            .iter()
            .map(|f| {
                format!(
                    "{} {}: {}",
                    str_of(&f.vis),
                    f.ident.as_ref().unwrap(),
                    str_of(&f.ty)
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                "pub call: IngressCallStub",
                " sync_one: IngressSyncOneStub",
                "pub numbers: IngressNumbersStub",
                "pub later: IngressLaterStub",
                "pub r#type: IngressTypeStub",
                " __serve_router: ::serve_core::__private::CallTarget<Ingress>",
            ]
        );
        let deployment = impls_of(&out, "Ingress")
            .into_iter()
            .find(|i| {
                i.trait_
                    .as_ref()
                    .is_some_and(|(_, p, _)| str_of(p).ends_with("Deployment"))
            })
            .expect("impl Deployment for Ingress");
        assert!(str_of(&deployment.items[0]).contains("typeHandle=IngressHandle;"));
    }

    #[test]
    fn stubs_call_the_router_by_kind_and_fallibility() {
        let out = ingress();
        let call = remote_body(&out, "IngressCallStub");
        assert!(call.contains("RequestRouter::call_async(&self.__serve_router,\"call\",(::serve_core::__private::IntoArg::into_arg(input),)"));
        assert!(call.contains(
            "::serve_core::__private::fallible(Ingress::call(&*__serve_this,input).await)"
        ));

        let sync = remote_body(&out, "IngressSyncOneStub");
        assert!(sync.contains("RequestRouter::call_sync("));
        assert!(sync.contains("|__serve_this:&Ingress,(a,b,):(String,u8,)|::serve_core::__private::infallible(Ingress::sync_one(__serve_this,a,b))"));

        let numbers = remote_body(&out, "IngressNumbersStub");
        assert!(numbers.contains("RequestRouter::call_stream("));
        assert!(numbers.contains("__serve_sink:::serve_core::__private::StreamSink<u32>"));
        assert!(
            numbers.contains(
                "__serve_sink.drive_fallible(Ingress::numbers(&*__serve_this,limit)).await"
            )
        );

        let later = remote_body(&out, "IngressLaterStub");

        assert!(later.contains("__serve_sink.drive(Ingress::later(&*__serve_this).await).await"));

        let ty = remote_body(&out, "IngressTypeStub");
        assert!(
            ty.contains("\"type\""),
            "the router knows the method without `r#`"
        );
    }

    #[test]
    fn stub_signatures_take_into_arg_and_return_responses() {
        let out = ingress();
        let sig = |stub| str_of(&method_of(&out, stub, "remote").unwrap().sig);
        assert_eq!(
            sig("IngressCallStub"),
            "fnremote(&self,input:impl::serve_core::__private::IntoArg<i32>)->::serve_core::__private::DeploymentResponse<i32>"
        );
        assert!(sig("IngressNumbersStub").ends_with("DeploymentResponseGenerator<u32>"));
        // `Self` means nothing outside the impl block: it becomes the deployment type.
        assert!(sig("IngressTypeStub").contains(
            "IntoArg<Ingress>)->::serve_core::__private::DeploymentResponse<Vec<Ingress>>"
        ));
        // The stub method has the method's visibility and docs.
        let call = method_of(&out, "IngressCallStub", "remote").unwrap();
        assert_eq!(str_of(&call.vis), "pub");
        assert!(attrs_of(&call.attrs).contains("Addsthenmultiplies."));
        assert_eq!(
            str_of(&method_of(&out, "IngressSyncOneStub", "remote").unwrap().vis),
            ""
        );
    }

    #[test]
    fn the_shorthand_exists_only_for_a_method_named_call() {
        let out = ingress();
        let shorthand = method_of(&out, "IngressHandle", "remote").expect("handle.remote(..)");
        assert_eq!(str_of(&shorthand.block), "{self.call.remote(input)}");

        let out = expand_impl(quote!(impl Svc { fn get(&self) -> u8 { 0 } }));
        assert!(method_of(&out, "SvcHandle", "remote").is_none());
    }

    #[test]
    fn bind_takes_applications_for_handle_parameters() {
        let out = ingress();
        let bind = method_of(&out, "Ingress", "bind").unwrap();
        assert_eq!(
            str_of(&bind.sig),
            "fnbind(adder:::serve_core::__private::Application<Adder>,factor:u32)->::serve_core::__private::Application<Ingress>"
        );
        let body = str_of(&bind.block);
        assert!(
            body.contains("<DeploymentHandle<Adder>as::serve_core::__private::Bindable>::__children(&adder,&mut__serve_children);"),
            "only handles are children"
        );
        assert!(!body.contains("__children(&factor"), "a value is no child");
        assert!(body.contains(
            "letadder=<DeploymentHandle<Adder>as::serve_core::__private::Bindable>::__handles(&adder,__serve_ctx);"
        ));
        assert!(body.contains("letfactor=::core::clone::Clone::clone(&factor);"));
        assert!(body.contains(
            "Constructor::sync(move||::serve_core::__private::fallible(Ingress::new(adder,factor)))"
        ));
    }

    #[test]
    fn bind_takes_the_shape_of_nested_handles() {
        let out = expand_impl(quote! {
            impl Ensemble {
                pub fn new(models: Vec<DeploymentHandle<Model>>, by_name: HashMap<String, DeploymentHandle<Model>>, fallback: Option<DeploymentHandle<Self>>) -> Self { todo!() }
            }
        });
        let bind = method_of(&out, "Ensemble", "bind").unwrap();
        assert_eq!(
            str_of(&bind.sig.inputs),
            "models:Vec<::serve_core::__private::Application<Model>>,\
             by_name:HashMap<String,::serve_core::__private::Application<Model>>,\
             fallback:Option<::serve_core::__private::Application<Ensemble>>"
        );
        let body = str_of(&bind.block);
        for (name, ty) in [
            ("models", "Vec<DeploymentHandle<Model>>"),
            ("by_name", "HashMap<String,DeploymentHandle<Model>>"),
            ("fallback", "Option<DeploymentHandle<Ensemble>>"),
        ] {
            assert!(body.contains(&format!(
                "<{ty}as::serve_core::__private::Bindable>::__children(&{name},&mut__serve_children);"
            )));
            assert!(body.contains(&format!(
                "let{name}=<{ty}as::serve_core::__private::Bindable>::__handles(&{name},__serve_ctx);"
            )));
        }
    }

    #[test]
    fn a_streaming_response_is_driven_head_first() {
        let out = expand_impl(quote! {
            impl Svc {
                pub fn call(&self, req: Request) -> StreamingResponse<impl Stream<Item = Result<String, HttpError>> + Send + use<>> { todo!() }
                pub async fn plain(&self) -> StreamingResponse<impl Stream<Item = String> + Send> { todo!() }
            }
        });
        let call = str_of(&method_of(&out, "SvcCallStub", "remote").unwrap().block);
        assert!(call.contains(
            "__serve_sink.drive_fallible(::serve_core::__private::StreamingResponse::__fallible_parts(Svc::call(&*__serve_this,req))).await"
        ), "{call}");
        let plain = str_of(&method_of(&out, "SvcPlainStub", "remote").unwrap().block);
        assert!(plain.contains(
            "__serve_sink.drive(::serve_core::__private::StreamingResponse::__parts(Svc::plain(&*__serve_this).await)).await"
        ), "{plain}");
        let sig = str_of(&method_of(&out, "SvcCallStub", "remote").unwrap().sig.output);
        assert_eq!(
            sig,
            "->::serve_core::__private::DeploymentResponseGenerator<::serve_core::__private::StreamPart<String>>"
        );
    }

    #[test]
    fn bind_without_new_uses_default_and_async_new_uses_from_async() {
        let out = expand_impl(quote!(impl Svc {}));
        let bind = method_of(&out, "Svc", "bind").unwrap();
        assert_eq!(str_of(&bind.sig.inputs), "");
        assert!(str_of(&bind.block).contains("__new([],"));
        assert!(
            str_of(&bind.block).contains("infallible(<Svcas::core::default::Default>::default())")
        );

        let out = expand_impl(quote!(impl Svc { async fn new() -> Self { todo!() } }));
        let body = str_of(&method_of(&out, "Svc", "bind").unwrap().block);
        assert!(body.contains("Constructor::from_async(asyncmove{::serve_core::__private::infallible(Svc::new().await)})"));
    }

    #[test]
    fn cfg_attributes_follow_the_method_everywhere() {
        let out = expand_impl(quote! {
            impl Svc {
                #[cfg(feature = "extra")]
                fn extra(&self, x: u8) -> u16 { 0 }
            }
        });
        let cfg = "#[cfg(feature=\"extra\")]";
        let handle = struct_named(&out, "SvcHandle").unwrap();

        let field = handle.fields.iter().next().unwrap();
        assert_eq!(
            attrs_of(&field.attrs),
            format!("#[doc=\"Calls[`Svc::extra`].\"]{cfg}")
        );
        assert!(attrs_of(&struct_named(&out, "SvcExtraStub").unwrap().attrs).contains(cfg));
        for stub_impl in impls_of(&out, "SvcExtraStub") {
            assert!(attrs_of(&stub_impl.attrs).contains(cfg));
        }
        for handle_impl in impls_of(&out, "SvcHandle") {
            assert!(
                str_of(handle_impl).contains(&format!("{cfg}extra:")),
                "field init/clone is cfg'd"
            );
        }
        let assertions = out.items.iter().find_map(|i| match i {
            Item::Const(c) => Some(str_of(&c.expr)),
            _ => None,
        });
        assert!(assertions.unwrap().contains(&format!(
            "{cfg}::serve_core::__private::assert_arg::<u8>();{cfg}::serve_core::__private::assert_arg::<u16>();"
        )));
    }

    #[test]
    fn every_argument_and_value_type_is_asserted() {
        let out = ingress();
        let assertions = out
            .items
            .iter()
            .find_map(|i| match i {
                Item::Const(c) => Some(str_of(&c.expr)),
                _ => None,
            })
            .unwrap();
        let asserted: Vec<_> = assertions
            .split("assert_arg::<")
            .skip(1)
            .map(|s| s.split(">();").next().unwrap())
            .collect();
        assert_eq!(
            asserted,
            [
                "i32",
                "i32",
                "String",
                "u8",
                "String",
                "u32",
                "u32",
                "u8",
                "Ingress",
                "Vec<Ingress>"
            ]
        );
    }

    #[test]
    fn a_stream_parameter_takes_into_arg_stream_asserts_its_item_and_crosses_as_serde() {
        let out = expand_impl(quote! {
            impl Svc {
                async fn sum(&self, n: u8, xs: ArgStream<u32>) -> u64 { 0 }
                fn map(&self, xs: serve_core::ArgStream<u32>) -> impl Stream<Item = u32> { todo!() }
            }
        });
        let sum = remote_body(&out, "SvcSumStub");
        assert!(sum.contains("(::serve_core::__private::IntoArg::into_arg(n),::serve_core::__private::IntoArg::into_arg(::serve_core::__private::IntoArgStream::into_arg_stream(xs)),)"), "{sum}");
        assert!(
            sum.contains(
                "args:(&&::serve_core::__private::Wire::<(u8,ArgStream<u32>,)>::NEW).__serve_encoder()"
            ),
            "{sum}"
        );
        let remote = str_of(method_of(&out, "SvcSumStub", "remote").unwrap());
        assert!(remote.contains("n:impl::serve_core::__private::IntoArg<u8>,xs:impl::serve_core::__private::IntoArgStream<u32>"), "{remote}");
        let handle = impls_of(&out, "SvcHandle")
            .into_iter()
            .map(str_of)
            .collect::<String>();
        assert!(handle.contains("\"sum\"=>{let(n,xs,):(u8,ArgStream<u32>,)=(&&::serve_core::__private::Wire::<(u8,ArgStream<u32>,)>::NEW).__serve_decoder()(__serve_args)?;"), "{handle}");
        let assertions = out.items.iter().find_map(|i| match i {
            Item::Const(c) => Some(str_of(&c.expr)),
            _ => None,
        });
        let assertions = assertions.unwrap();
        assert!(!assertions.contains("ArgStream"), "{assertions}");
        assert!(
            assertions
                .contains("assert_arg::<u32>();::serve_core::__private::assert_arg::<u32>();"),
            "{assertions}"
        );
    }

    #[test]
    fn stream_parameters_where_they_cannot_be_taken_are_errors() {
        let errors = compile_errors(&file(crate::expand::deployment(
            TokenStream::new(),
            quote! {
                impl Svc {
                    fn new(xs: ArgStream<u8>) -> Self { todo!() }
                    fn count(&self, xs: ArgStream<u8>) -> usize { 0 }
                    async fn ok(&self, xs: ArgStream<u8>) -> usize { 0 }
                    fn ok_too(&self, xs: ArgStream<u8>) -> impl Stream<Item = u8> { xs }
                }
            },
        )));
        assert_eq!(
            errors,
            [
                crate::stream_arg::IN_CONSTRUCTOR.to_owned(),
                crate::stream_arg::IN_SYNC_METHOD.to_owned()
            ]
        );
    }

    #[test]
    fn struct_config_has_one_setter_per_option_given() {
        let config = |args: TokenStream| {
            let out = file(crate::expand::deployment(
                args,
                quote!(
                    pub struct Adder {
                        increment: i32,
                    }
                ),
            ));
            let imp = impls_of(&out, "Adder").into_iter().next().unwrap();
            str_of(&imp.items[0]).split('{').nth(1).unwrap().to_owned()
        };
        assert_eq!(
            config(quote!()),
            "::serve_core::__private::DeploymentConfig::new(\"Adder\")}"
        );
        assert_eq!(
            config(quote!(
                max_ongoing_requests = 7,
                name = "Add",
                num_replicas = 2
            )),
            "::serve_core::__private::DeploymentConfig::new(\"Add\").num_replicas(2).max_ongoing_requests(7)}"
        );
        assert_eq!(
            config(quote!(
                resources(a100 = 1, "accelerator_type:A100" = 0.5),
                num_gpus = 1,
                autoscaling(max_replicas = 8, min_replicas = 0, upscale_delay_s = 5),
                graceful_shutdown_timeout_s = 3,
                max_queued_requests = 10,
            )),
            "::serve_core::__private::DeploymentConfig::new(\"Adder\")\
             .max_queued_requests(10)\
             .graceful_shutdown_timeout_s(3.0)\
             .num_gpus(1.0)\
             .autoscaling(<::serve_core::__private::AutoscalingConfigas::core::default::Default>::default()\
             .min_replicas(0).max_replicas(8).upscale_delay_s(5.0))\
             .resource(\"a100\",1.0).resource(\"accelerator_type:A100\",0.5)}"
        );
    }
}
