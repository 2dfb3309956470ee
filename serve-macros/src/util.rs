//! Small helpers shared by the parsers and the generators: error collection, naming, and the
//! type-shape questions the classifier asks ("is the last path segment `Result`?").

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Attribute, GenericArgument, PathArguments, PathSegment, Type};

/// Collects independent errors so that one bad method never hides the others.
#[derive(Default)]
pub(crate) struct Errors {
    inner: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.inner {
            Some(inner) => inner.combine(error),
            None => self.inner = Some(error),
        }
    }

    /// Keeps the value of `Ok`, records the error of `Err`.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// `Ok(value)` when nothing was collected, else all collected errors as one.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.inner {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.inner
    }
}

impl Extend<syn::Error> for Errors {
    fn extend<I: IntoIterator<Item = syn::Error>>(&mut self, errors: I) {
        errors.into_iter().for_each(|e| self.push(e));
    }
}

/// Both values, or every error of the two.
pub(crate) fn both<A, B>(a: syn::Result<A>, b: syn::Result<B>) -> syn::Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(mut e), Err(f)) => {
            e.combine(f);
            Err(e)
        }
    }
}

/// The runtime support module every generated path goes through.
pub(crate) fn private() -> TokenStream {
    quote::quote!(::serve_core::__private)
}

/// The name as the user means it: `r#type` is `type`.
pub(crate) fn plain_name(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// `say_hello` -> `SayHello`, `r#type` -> `Type`, `get_v2` -> `GetV2`.
pub(crate) fn camel_case(ident: &Ident) -> String {
    let mut out = String::new();
    for word in plain_name(ident).split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// `(T)` and invisible groups are the type they wrap.
pub(crate) fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => peel(&p.elem),
        Type::Group(g) => peel(&g.elem),
        other => other,
    }
}

/// The last segment of a path type without a qualified self (`a::b::C<T>` -> `C<T>`).
pub(crate) fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match peel(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// Whether `ty`'s last path segment is named `name`.
pub(crate) fn last_segment_is(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// The first type among a segment's generic arguments (`Result<T, E>` -> `T`).
pub(crate) fn first_type_arg(segment: &PathSegment) -> Option<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    }
}

/// `Self`, or the deployment's own name written without generic arguments.
pub(crate) fn is_self_type(ty: &Type, self_ident: &Ident) -> bool {
    match peel(ty) {
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last();
            last.is_some_and(|s| {
                s.arguments.is_none()
                    && ((s.ident == "Self" && p.path.segments.len() == 1) || s.ident == *self_ident)
            })
        }
        _ => false,
    }
}

/// Whether an `impl Trait` appears anywhere in `ty` (which makes a function generic).
pub(crate) fn contains_impl_trait(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => scan(g.stream()),
            _ => false,
        })
    }
    scan(ty.to_token_stream())
}

/// Replaces every `Self` in `tokens` by `with`: generated items live outside the user's `impl`.
pub(crate) fn replace_self(tokens: TokenStream, with: &TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|tt| -> TokenStream {
            match tt {
                TokenTree::Ident(i) if i == "Self" => respan(with.clone(), i.span()),
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), replace_self(g.stream(), with));
                    group.set_span(g.span());
                    TokenTree::Group(group).into()
                }
                other => other.into(),
            }
        })
        .collect()
}

/// `tokens` with every span set to `span` (so a replaced `Self` is still reported where it was).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = TokenTree::Group(group);
            }
            tt.set_span(span);
            tt
        })
        .collect()
}

/// `#[doc]` attributes, forwarded onto what is generated for an item.
pub(crate) fn docs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}

/// `#[cfg]` attributes, copied onto everything generated for an item.
pub(crate) fn cfgs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn camel(src: &str) -> String {
        camel_case(&syn::parse_str::<Ident>(src).unwrap())
    }

    #[test]
    fn camel_case_joins_words_and_drops_the_raw_prefix() {
        assert_eq!(camel("say_hello"), "SayHello");
        assert_eq!(camel("call"), "Call");
        assert_eq!(camel("r#type"), "Type");
        assert_eq!(camel("get_v2"), "GetV2");
        assert_eq!(camel("_private__twice_"), "PrivateTwice");
    }

    #[test]
    fn result_and_self_shapes() {
        let io: Type = parse_quote!(std::io::Result<u8>);
        assert!(last_segment_is(&io, "Result"));
        let first = first_type_arg(last_segment(&io).unwrap()).unwrap();
        assert_eq!(first.to_token_stream().to_string(), "u8");

        let ident: Ident = parse_quote!(Adder);
        assert!(is_self_type(&parse_quote!(Self), &ident));
        assert!(is_self_type(&parse_quote!(crate::Adder), &ident));
        assert!(!is_self_type(&parse_quote!(Adder<u8>), &ident));
        assert!(!is_self_type(&parse_quote!(Other), &ident));
    }

    #[test]
    fn impl_trait_is_found_inside_other_types() {
        assert!(contains_impl_trait(&parse_quote!(Vec<impl Clone>)));
        assert!(!contains_impl_trait(&parse_quote!(Vec<u8>)));
    }

    #[test]
    fn self_is_replaced_in_nested_positions() {
        let ty: Type = parse_quote!(Vec<Option<Self>>);
        let out = replace_self(ty.to_token_stream(), &quote::quote!(Adder));
        assert_eq!(crate::testing::str_of(&out), "Vec<Option<Adder>>");
    }
}
