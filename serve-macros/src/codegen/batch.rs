//! What `#[batch]` adds to a `#[deployment]` impl's expansion: each batched method's spec (a
//! hidden associated const), the stub's closure that hands its item to the replica's batcher,
//! the declaration of the batched methods when a replica is constructed, and
//! `Deployment::__batches`.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::{ImplGen, reply};
use crate::model::{Asyncness, Method};
use crate::util::plain_name;

impl ImplGen<'_> {
    fn batched(&self) -> impl Iterator<Item = &Method> {
        self.model.methods.iter().filter(|m| m.batch.is_some())
    }

    /// The name of a batched method's spec const: `__serve_batch_embed`.
    fn spec_const(m: &Method) -> Ident {
        format_ident!("__serve_batch_{}", plain_name(&m.ident))
    }

    /// `impl Ty { const __serve_batch_embed: BatchSpec = BatchSpec::new("embed", 8, 0.01, 1); }`
    pub(super) fn batch_specs(&self) -> TokenStream {
        let (p, ty) = (&self.p, &self.ty);
        let consts = self.batched().map(|m| {
            let (Some(b), cfgs) = (&m.batch, &m.cfgs) else {
                return TokenStream::new();
            };
            let (name, spec) = (m.name(), Self::spec_const(m));
            let size = Literal::usize_unsuffixed(b.max_batch_size as usize);
            let wait = Literal::f64_unsuffixed(b.batch_wait_timeout_s);
            let concurrent = Literal::usize_unsuffixed(b.max_concurrent_batches as usize);
            quote! {
                #(#cfgs)*
                #[doc(hidden)]
                #[allow(non_upper_case_globals)]
                const #spec: #p::BatchSpec = #p::BatchSpec::new(#name, #size, #wait, #concurrent);
            }
        });
        let consts: TokenStream = consts.collect();
        if consts.is_empty() {
            return consts;
        }
        quote! {
            #[automatically_derived]
            impl #ty { #consts }
        }
    }

    /// The body of a batched method's stub: an ordinary unary call whose closure joins a batch.
    pub(super) fn batched_call(
        &self,
        m: &Method,
        packed: TokenStream,
        wire: TokenStream,
    ) -> TokenStream {
        let (p, ty, ident) = (&self.p, &self.ty, &m.ident);
        let name = m.name();
        let spec = Self::spec_const(m);
        let arg = &m.args[0].name;
        let item = self.user_ty(&m.args[0].ty);
        let value = self.value_ty(&m.output);
        let wrap = reply(m.output.fallible);
        let run = match m.asyncness {
            Asyncness::Async => quote! {
                #p::BatchFn::Async(
                    |__serve_this: #p::Arc<#ty>, __serve_items: ::std::vec::Vec<#item>| -> #p::BatchFuture<#value> {
                        ::std::boxed::Box::pin(async move {
                            #wrap(#ty::#ident(&*__serve_this, __serve_items).await)
                        })
                    })
            },
            Asyncness::Sync => quote! {
                #p::BatchFn::Sync(|__serve_this: &#ty, __serve_items: ::std::vec::Vec<#item>| {
                    #wrap(#ty::#ident(__serve_this, __serve_items))
                })
            },
        };
        quote! {
            #p::RequestRouter::call_async(&self.__serve_router, #name, #packed,
                move |__serve_this: #p::Arc<#ty>, (#arg,): (#item,)| async move {
                    #p::call_batched(#ty::#ident, &#ty::#spec, #run, __serve_this, #arg).await
                }, #wire)
        }
    }

    /// In a replica's constructor, before `new`: declares its batched methods (so that
    /// `batching(Self::method)` finds them from the constructor on).
    pub(super) fn batch_declarations(&self) -> TokenStream {
        let (p, ty) = (&self.p, &self.ty);
        self.batched()
            .map(|m| {
                let (ident, cfgs, spec) = (&m.ident, &m.cfgs, Self::spec_const(m));
                quote!(#(#cfgs)* #p::declare_batch(#ty::#ident, &#ty::#spec);)
            })
            .collect()
    }

    /// `Deployment::__batches`, when there are batched methods (not `#[cfg]`-gated ones).
    pub(super) fn batches_fn(&self) -> TokenStream {
        let p = &self.p;
        let specs: Vec<_> = self
            .batched()
            .filter(|m| m.cfgs.is_empty())
            .map(Self::spec_const)
            .collect();
        if specs.is_empty() {
            return TokenStream::new();
        }
        quote! {
            fn __batches() -> &'static [#p::BatchSpec] {
                &[#(Self::#specs),*]
            }
        }
    }
}
