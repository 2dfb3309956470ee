//! The options of `#[deployment(...)]` on a struct: `name`, `num_replicas`, `max_ongoing_requests`.
//!
//! Keys are `custom_keyword!`s read through `lookahead1()`, so a misspelled key's error lists every
//! valid key. Syntax errors stop the parse; value errors (duplicates, zero, empty name) are all
//! collected.

use proc_macro2::{Literal, Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{LitInt, LitStr, Token};

use crate::util::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(num_replicas);
    syn::custom_keyword!(max_ongoing_requests);
}

/// Validated options; `None` means "not given, use the runtime's default".
#[derive(Default)]
pub(crate) struct DeploymentOptions {
    pub(crate) name: Option<LitStr>,
    pub(crate) num_replicas: Option<Count>,
    pub(crate) max_ongoing_requests: Option<Count>,
}

/// An integer option: its value (>= 1) and where the user wrote it.
pub(crate) struct Count {
    pub(crate) value: u64,
    pub(crate) span: Span,
}

impl Count {
    /// The value as an unsuffixed literal at the user's span, so the setter's parameter type decides.
    pub(crate) fn literal(&self) -> Literal {
        let mut lit = Literal::u64_unsuffixed(self.value);
        lit.set_span(self.span);
        lit
    }
}

/// One `key = value` pair as written.
enum Entry {
    Name(kw::name, LitStr),
    NumReplicas(kw::num_replicas, LitInt),
    MaxOngoingRequests(kw::max_ongoing_requests, LitInt),
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let key: kw::name = input.parse()?;
            Ok(Entry::Name(key, value(input, "name", "\"Add\"", key.span)?))
        } else if lookahead.peek(kw::num_replicas) {
            let key: kw::num_replicas = input.parse()?;
            let lit = value(input, "num_replicas", "2", key.span)?;
            Ok(Entry::NumReplicas(key, lit))
        } else if lookahead.peek(kw::max_ongoing_requests) {
            let key: kw::max_ongoing_requests = input.parse()?;
            let lit = value(input, "max_ongoing_requests", "10", key.span)?;
            Ok(Entry::MaxOngoingRequests(key, lit))
        } else {
            Err(lookahead.error())
        }
    }
}

/// `= value` after `key`. A missing `=` or value is reported on the key (syn would point at the
/// whole attribute when the arguments simply end), with an example of the expected form.
pub(crate) fn value<T: Parse>(
    input: ParseStream,
    key: &str,
    example: &str,
    key_span: Span,
) -> syn::Result<T> {
    let missing = || {
        syn::Error::new(
            key_span,
            format!("`{key}` needs a value: `{key} = {example}`"),
        )
    };
    if input.is_empty() || input.peek(Token![,]) {
        return Err(missing());
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(missing());
    }
    input.parse()
}

impl Entry {
    fn key(&self) -> (&'static str, Span) {
        match self {
            Entry::Name(k, _) => ("name", k.span),
            Entry::NumReplicas(k, _) => ("num_replicas", k.span),
            Entry::MaxOngoingRequests(k, _) => ("max_ongoing_requests", k.span),
        }
    }
}

/// Parses the attribute's arguments (`name = "Add", num_replicas = 2`).
pub(crate) fn parse(args: TokenStream) -> syn::Result<DeploymentOptions> {
    let entries = Punctuated::<Entry, Token![,]>::parse_terminated.parse2(args)?;
    let mut options = DeploymentOptions::default();
    let mut errors = Errors::default();
    // Keys seen so far, valid or not: a repeat is reported even when the first value was bad.
    let mut seen: Vec<&str> = Vec::new();
    for entry in entries {
        let (key, span) = entry.key();
        if seen.contains(&key) {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` may only be specified once"),
            ));
            continue;
        }
        seen.push(key);
        match entry {
            Entry::Name(_, lit) if lit.value().is_empty() => {
                errors.push(syn::Error::new(lit.span(), "`name` must not be empty"))
            }
            Entry::Name(_, lit) => options.name = Some(lit),
            Entry::NumReplicas(_, lit) => options.num_replicas = errors.take(count(key, &lit)),
            Entry::MaxOngoingRequests(_, lit) => {
                options.max_ongoing_requests = errors.take(count(key, &lit))
            }
        }
    }
    errors.finish(options)
}

/// An integer option's value, which must be at least 1.
fn count(key: &str, lit: &LitInt) -> syn::Result<Count> {
    match lit.base10_parse::<u64>()? {
        0 => Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be at least 1"),
        )),
        value => Ok(Count {
            value,
            span: lit.span(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn messages(args: TokenStream) -> Vec<String> {
        match parse(args) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn all_options_are_read() {
        let o = parse(quote!(
            name = "Add",
            num_replicas = 2,
            max_ongoing_requests = 10,
        ))
        .unwrap();
        assert_eq!(o.name.unwrap().value(), "Add");
        assert_eq!(o.num_replicas.unwrap().value, 2);
        assert_eq!(o.max_ongoing_requests.unwrap().value, 10);
    }

    #[test]
    fn no_options_means_all_defaults() {
        let o = parse(TokenStream::new()).unwrap();
        assert!(o.name.is_none() && o.num_replicas.is_none() && o.max_ongoing_requests.is_none());
    }

    #[test]
    fn an_unknown_key_lists_every_valid_key() {
        assert_eq!(
            messages(quote!(replicas = 2)),
            ["expected one of: `name`, `num_replicas`, `max_ongoing_requests`"]
        );
    }

    #[test]
    fn a_repeated_key_is_reported_once_per_repeat() {
        assert_eq!(
            messages(quote!(
                num_replicas = 1,
                num_replicas = 2,
                name = "a",
                name = "b"
            )),
            [
                "`num_replicas` may only be specified once",
                "`name` may only be specified once"
            ]
        );
    }

    #[test]
    fn a_repeat_of_an_invalid_key_is_still_a_repeat() {
        assert_eq!(
            messages(quote!(num_replicas = 0, num_replicas = 2)),
            [
                "`num_replicas` must be at least 1",
                "`num_replicas` may only be specified once"
            ]
        );
    }

    #[test]
    fn values_are_validated_and_all_errors_collected() {
        assert_eq!(
            messages(quote!(
                name = "",
                num_replicas = 0,
                max_ongoing_requests = 0
            )),
            [
                "`name` must not be empty",
                "`num_replicas` must be at least 1",
                "`max_ongoing_requests` must be at least 1"
            ]
        );
    }

    #[test]
    fn a_missing_value_shows_the_expected_form() {
        for args in [
            quote!(num_replicas),
            quote!(num_replicas =),
            quote!(num_replicas, name = "a"),
            quote!(num_replicas = , name = "a"),
        ] {
            assert_eq!(
                messages(args.clone()),
                ["`num_replicas` needs a value: `num_replicas = 2`"],
                "for `{args}`"
            );
        }
        assert_eq!(
            messages(quote!(name)),
            ["`name` needs a value: `name = \"Add\"`"]
        );
        assert_eq!(messages(quote!(num_replicas: 2)), ["expected `=`"]);
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_a_syntax_error() {
        assert_eq!(
            messages(quote!(num_replicas = "2")),
            ["expected integer literal"]
        );
    }
}
