//! Helpers for the unit tests: look into an expansion as syn items rather than as strings.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{File, ImplItem, ImplItemFn, Item, ItemImpl, ItemStruct};

/// The expansion as items (it must always parse).
pub(crate) fn file(tokens: TokenStream) -> File {
    syn::parse2(tokens).expect("the expansion parses as items")
}

/// The messages of a (combined) error, in order.
pub(crate) fn messages(error: syn::Error) -> Vec<String> {
    error.into_iter().map(|e| e.to_string()).collect()
}

/// The messages of the `compile_error!`s in an expansion.
pub(crate) fn compile_errors(file: &File) -> Vec<String> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Macro(m)
                if m.mac.path.is_ident("compile_error")
                    || last_is(&m.mac.path, "compile_error") =>
            {
                Some(
                    syn::parse2::<syn::LitStr>(m.mac.tokens.clone())
                        .ok()?
                        .value(),
                )
            }
            _ => None,
        })
        .collect()
}

fn last_is(path: &syn::Path, name: &str) -> bool {
    path.segments.last().is_some_and(|s| s.ident == name)
}

pub(crate) fn struct_named<'a>(file: &'a File, name: &str) -> Option<&'a ItemStruct> {
    file.items.iter().find_map(|item| match item {
        Item::Struct(s) if s.ident == name => Some(s),
        _ => None,
    })
}

/// Impl blocks whose self type's last segment is `name` (trait impls included).
pub(crate) fn impls_of<'a>(file: &'a File, name: &str) -> Vec<&'a ItemImpl> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Impl(i) if crate::util::last_segment_is(&i.self_ty, name) => Some(i),
            _ => None,
        })
        .collect()
}

/// The fn `method` in any impl block of `ty`.
pub(crate) fn method_of<'a>(file: &'a File, ty: &str, method: &str) -> Option<&'a ImplItemFn> {
    impls_of(file, ty).into_iter().find_map(|i| {
        i.items.iter().find_map(|item| match item {
            ImplItem::Fn(f) if f.sig.ident == method => Some(f),
            _ => None,
        })
    })
}

/// Token text without whitespace, for comparing small fragments (`Vec<u8>`); token spacing
/// (`>>` vs `> >`) depends on how the tokens were made, the text does not.
pub(crate) fn str_of(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    text.split_whitespace().collect()
}

/// Attributes as text (`#[doc = ".."] #[cfg(..)]`), without whitespace.
pub(crate) fn attrs_of(attrs: &[syn::Attribute]) -> String {
    attrs.iter().map(str_of).collect()
}
