//! `#[remote]` on a free function: a task.
//!
//! The function becomes a unit struct of the same name whose `remote(..)` runs it on the runtime;
//! the original body stays callable as `name::call(..)`.

use proc_macro2::{Ident, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::{Attribute, FnArg, ItemFn, Visibility};

use crate::codegen::{assert_arg, reply};
use crate::model::{Arg, Asyncness, Kind, Output};
use crate::parse;
use crate::stream_arg;
use crate::util::{Errors, both, cfgs, docs, plain_name, private};

pub(crate) const NOT_A_FN: &str = "`#[remote]` applies to a free function";
pub(crate) const NO_ARGS: &str = "`#[remote]` takes no arguments";
pub(crate) const RECEIVER: &str = "`#[remote]` applies to a free function, not a method";
pub(crate) const STREAMING: &str =
    "`#[remote]` tasks return a value; streaming tasks are not supported";
pub(crate) const UNSUPPORTED_IMPL_RETURN: &str = "`#[remote]` tasks return a value of a concrete type; this `impl Trait` return is not supported";
pub(crate) const GENERIC_TASK: &str =
    "`#[remote]` tasks cannot be generic: a task call needs concrete argument and return types";
pub(crate) const REFERENCE_ARG: &str =
    "task arguments must be owned values (e.g. `String`, not `&str`): they are moved to the task";

/// The parsed task.
pub(crate) struct Task {
    pub(crate) item: ItemFn,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) asyncness: Asyncness,
    pub(crate) output: Output,
    pub(crate) args: Vec<Arg>,
}

impl Task {
    fn ident(&self) -> &Ident {
        &self.item.sig.ident
    }

    fn vis(&self) -> &Visibility {
        &self.item.vis
    }
}

/// The whole expansion: the task on success, else the original function plus every error.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(input.clone()).and_then(|item| parse(args, item)) {
        Ok(task) => codegen(&task),
        Err(e) => {
            let errors = e.to_compile_error();
            quote!(#input #errors)
        }
    }
}

/// Validates the function; collects every error.
pub(crate) fn parse(args: TokenStream, item: syn::Item) -> syn::Result<Task> {
    let syn::Item::Fn(item) = item else {
        return Err(syn::Error::new_spanned(parse::item_head(&item), NOT_A_FN));
    };
    let mut checks = Errors::default();
    if !args.is_empty() {
        checks.push(syn::Error::new_spanned(&args, NO_ARGS));
    }
    checks.take(parse::no_generics(&item.sig.generics, GENERIC_TASK));
    if let Some(FnArg::Receiver(r)) = item.sig.inputs.first() {
        checks.push(syn::Error::new_spanned(r, RECEIVER));
    }
    let output = parse::output(&item.sig.output, UNSUPPORTED_IMPL_RETURN).and_then(|out| {
        match (out.kind, &item.sig.output) {
            (Kind::Streaming, syn::ReturnType::Type(_, ty)) => {
                Err(syn::Error::new_spanned(ty, STREAMING))
            }
            _ => Ok(out),
        }
    });
    let ((), (args, output)) = both(
        checks.finish(()),
        both(
            parse::args(&item.sig.inputs, GENERIC_TASK, REFERENCE_ARG)
                .and_then(|args| stream_arg::reject(args, stream_arg::IN_TASK)),
            output,
        ),
    )?;
    Ok(Task {
        docs: docs(&item.attrs),
        cfgs: cfgs(&item.attrs),
        asyncness: match item.sig.asyncness {
            Some(_) => Asyncness::Async,
            None => Asyncness::Sync,
        },
        output,
        args,
        item,
    })
}

/// The unit struct, its `remote` and `call`, and the type assertions.
pub(crate) fn codegen(task: &Task) -> TokenStream {
    let p = private();
    let (ident, vis, docs, cfgs) = (task.ident(), task.vis(), &task.docs, &task.cfgs);
    let name = plain_name(ident);
    let names: Vec<_> = task.args.iter().map(|a| &a.name).collect();
    let tys: Vec<_> = task.args.iter().map(|a| &a.ty).collect();
    let value = match &task.output.value_ty {
        Some(ty) => ty.to_token_stream(),
        None => quote!(()),
    };
    let wrap = reply(task.output.fallible);
    let packed = quote!((#(#p::IntoArg::into_arg(#names),)*));
    let unpacked = quote!((#(#names,)*): (#(#tys,)*));
    let spawn = match task.asyncness {
        Asyncness::Sync => quote! {
            #p::spawn_task_sync(#name, #packed, move |#unpacked| #wrap(#ident::call(#(#names),*)))
        },
        Asyncness::Async => quote! {
            #p::spawn_task_async(#name, #packed, move |#unpacked| async move {
                #wrap(#ident::call(#(#names),*).await)
            })
        },
    };

    // The original function, renamed `call` (keeping the name's span for diagnostics).
    let mut call = task.item.clone();
    call.sig.ident = format_ident!("call", span = ident.span());
    let ItemFn {
        attrs: call_attrs,
        sig: call_sig,
        block: call_block,
        ..
    } = call;

    let checks = task
        .args
        .iter()
        .map(|a| &a.ty)
        .chain(task.output.value_ty.iter())
        .map(|ty| assert_arg(ty, &ty.to_token_stream()));
    quote! {
        #(#docs)*
        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #ident;

        #(#cfgs)*
        #[automatically_derived]
        impl #ident {
            /// Runs the task on the runtime; returns a reference to its result.
            #vis fn remote(&self, #(#names: impl #p::IntoArg<#tys>),*) -> #p::ObjectRef<#value> {
                #spawn
            }

            #(#call_attrs)*
            #vis #call_sig #call_block
        }

        #(#cfgs)*
        const _: () = {
            fn __serve_assert_types() {
                #(#checks)*
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        attrs_of, compile_errors, file, messages, method_of, str_of, struct_named,
    };

    fn task(item: TokenStream) -> Task {
        parse(TokenStream::new(), syn::parse2(item).unwrap()).unwrap()
    }

    fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
        parse(args, syn::parse2(item).unwrap())
            .err()
            .map(messages)
            .unwrap_or_default()
    }

    #[test]
    fn tasks_are_classified() {
        let t = task(quote!(
            pub fn say_hi(inp: String) -> String {
                inp
            }
        ));
        assert_eq!((t.asyncness, t.output.fallible), (Asyncness::Sync, false));
        assert_eq!(str_of(t.output.value_ty.as_ref().unwrap()), "String");

        let t = task(quote!(
            async fn load(path: PathBuf) -> io::Result<Vec<u8>> {
                todo!()
            }
        ));
        assert_eq!((t.asyncness, t.output.fallible), (Asyncness::Async, true));
        assert_eq!(str_of(t.output.value_ty.as_ref().unwrap()), "Vec<u8>");
        assert_eq!(t.args[0].name, "path");
    }

    #[test]
    fn each_task_error_has_its_message() {
        let none = TokenStream::new;
        let cases = [
            (
                none(),
                quote!(
                    struct S;
                ),
                NOT_A_FN,
            ),
            (
                quote!(retries = 3),
                quote!(
                    fn f() {}
                ),
                NO_ARGS,
            ),
            (
                none(),
                quote!(
                    fn f(&self) {}
                ),
                RECEIVER,
            ),
            (
                none(),
                quote!(
                    fn f<T>(t: T) {}
                ),
                GENERIC_TASK,
            ),
            (
                none(),
                quote!(
                    fn f(t: impl Clone) {}
                ),
                GENERIC_TASK,
            ),
            (
                none(),
                quote!(
                    fn f(s: &str) {}
                ),
                REFERENCE_ARG,
            ),
            (
                none(),
                quote!(
                    fn f() -> impl Stream<Item = u8> {
                        todo!()
                    }
                ),
                STREAMING,
            ),
            (
                none(),
                quote!(
                    fn f() -> impl Clone {
                        todo!()
                    }
                ),
                UNSUPPORTED_IMPL_RETURN,
            ),
        ];
        for (args, item, expected) in cases {
            assert_eq!(errors(args, item.clone()), [expected], "for `{item}`");
        }
        assert_eq!(
            errors(
                quote!(x),
                quote!(
                    fn f<T>(s: &str) {}
                )
            ),
            [NO_ARGS, GENERIC_TASK, REFERENCE_ARG],
            "all errors are collected"
        );
    }

    #[test]
    fn on_error_only_the_original_function_and_the_errors_are_emitted() {
        let user_fn = quote!(
            pub fn f(s: &str) -> usize {
                s.len()
            }
        );
        let out = file(expand(TokenStream::new(), user_fn.clone()));
        assert_eq!(out.items.len(), 2);
        assert_eq!(str_of(&out.items[0]), str_of(&user_fn));
        assert_eq!(compile_errors(&out), [REFERENCE_ARG]);
    }

    #[test]
    fn a_task_becomes_a_unit_struct_with_remote_and_call() {
        let out = file(expand(
            TokenStream::new(),
            quote! {
                /// Says hi.
                #[inline]
                pub fn say_hi_task(inp: String) -> String { inp }
            },
        ));
        assert_eq!(compile_errors(&out), Vec::<String>::new());
        let unit = struct_named(&out, "say_hi_task").unwrap();
        assert!(attrs_of(&unit.attrs).starts_with("#[doc=r\"Sayshi.\"]"));
        assert!(!attrs_of(&unit.attrs).contains("inline"));

        let remote = method_of(&out, "say_hi_task", "remote").unwrap();
        assert_eq!(
            str_of(&remote.sig),
            "fnremote(&self,inp:impl::serve_core::__private::IntoArg<String>)->::serve_core::__private::ObjectRef<String>"
        );
        assert_eq!(
            str_of(&remote.block),
            "{::serve_core::__private::spawn_task_sync(\"say_hi_task\",(::serve_core::__private::IntoArg::into_arg(inp),),\
             move|(inp,):(String,)|::serve_core::__private::infallible(say_hi_task::call(inp)))}"
        );
        let call = method_of(&out, "say_hi_task", "call").unwrap();
        assert_eq!(
            str_of(call),
            "#[doc=r\"Sayshi.\"]#[inline]pubfncall(inp:String)->String{inp}"
        );
    }

    #[test]
    fn an_async_fallible_task_awaits_and_uses_fallible() {
        let out = file(expand(
            TokenStream::new(),
            quote!(
                async fn fetch(url: String) -> Result<u8, E> {
                    todo!()
                }
            ),
        ));
        let body = str_of(&method_of(&out, "fetch", "remote").unwrap().block);
        assert!(body.contains("spawn_task_async(\"fetch\","));
        assert!(
            body.contains("asyncmove{::serve_core::__private::fallible(fetch::call(url).await)}")
        );
    }
}
