//! The options of `#[deployment(...)]` on a struct: the deployment's name, its replicas and queue
//! limits, autoscaling (`autoscaling(..)`), health checks, shutdown, and what each replica reserves
//! (`num_cpus`, `num_gpus`, `resources(..)`). `user_config` is not one: like Ray's, it belongs in the
//! config file.
//!
//! Keys are `custom_keyword!`s read through `lookahead1()`, so a misspelled key's error lists every
//! valid key (inside `autoscaling(..)`, every autoscaling key). Syntax errors stop the parse; value
//! errors (duplicates, values out of range, options that contradict each other) are all collected.
//!
//! What a value must be, and the message when it is not, come from the rules every way of setting
//! options shares (`crate::rules`, serve-core's `config/rules.rs`); this module only puts each
//! message on the span of the value it is about.

use proc_macro2::{Literal, Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitFloat, LitInt, LitStr, Token};

use crate::rules;
use crate::util::{Errors, plain_name};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(num_replicas);
    syn::custom_keyword!(max_ongoing_requests);
    syn::custom_keyword!(max_queued_requests);
    syn::custom_keyword!(autoscaling);
    syn::custom_keyword!(health_check_period_s);
    syn::custom_keyword!(health_check_timeout_s);
    syn::custom_keyword!(graceful_shutdown_timeout_s);
    syn::custom_keyword!(num_cpus);
    syn::custom_keyword!(num_gpus);
    syn::custom_keyword!(resources);
    // Inside `autoscaling(..)`.
    syn::custom_keyword!(min_replicas);
    syn::custom_keyword!(max_replicas);
    syn::custom_keyword!(initial_replicas);
    syn::custom_keyword!(target_ongoing_requests);
    syn::custom_keyword!(upscale_delay_s);
    syn::custom_keyword!(downscale_delay_s);
    syn::custom_keyword!(downscale_to_zero_delay_s);
    syn::custom_keyword!(look_back_period_s);
    syn::custom_keyword!(metrics_interval_s);
    syn::custom_keyword!(upscaling_factor);
    syn::custom_keyword!(downscaling_factor);
}

/// Validated options; `None` means "not given, use the runtime's default".
#[derive(Default)]
pub(crate) struct DeploymentOptions {
    pub(crate) name: Option<LitStr>,
    pub(crate) num_replicas: Option<Count>,
    pub(crate) max_ongoing_requests: Option<Count>,
    pub(crate) max_queued_requests: Option<Count>,
    pub(crate) autoscaling: Option<AutoscalingOptions>,
    pub(crate) health_check_period_s: Option<Number>,
    pub(crate) health_check_timeout_s: Option<Number>,
    pub(crate) graceful_shutdown_timeout_s: Option<Number>,
    pub(crate) num_cpus: Option<Number>,
    pub(crate) num_gpus: Option<Number>,
    /// `resources(name = amount, ..)`, in the order written.
    pub(crate) resources: Vec<Resource>,
}

/// `autoscaling(..)`: each key optional.
#[derive(Default)]
pub(crate) struct AutoscalingOptions {
    pub(crate) min_replicas: Option<Count>,
    pub(crate) max_replicas: Option<Count>,
    pub(crate) initial_replicas: Option<Count>,
    pub(crate) target_ongoing_requests: Option<Number>,
    pub(crate) upscale_delay_s: Option<Number>,
    pub(crate) downscale_delay_s: Option<Number>,
    pub(crate) downscale_to_zero_delay_s: Option<Number>,
    pub(crate) look_back_period_s: Option<Number>,
    pub(crate) metrics_interval_s: Option<Number>,
    pub(crate) upscaling_factor: Option<Number>,
    pub(crate) downscaling_factor: Option<Number>,
}

impl DeploymentOptions {
    /// The `DeploymentConfig` setters of the plain options given (not `name`, `autoscaling` or
    /// `resources`), in the config's field order: `(method, argument)`.
    pub(crate) fn setters(&self) -> Vec<(&'static str, Literal)> {
        let counts = [
            ("num_replicas", &self.num_replicas),
            ("max_ongoing_requests", &self.max_ongoing_requests),
            ("max_queued_requests", &self.max_queued_requests),
        ];
        let numbers = [
            ("health_check_period_s", &self.health_check_period_s),
            ("health_check_timeout_s", &self.health_check_timeout_s),
            (
                "graceful_shutdown_timeout_s",
                &self.graceful_shutdown_timeout_s,
            ),
            ("num_cpus", &self.num_cpus),
            ("num_gpus", &self.num_gpus),
        ];
        setters(&counts, &numbers)
    }
}

impl AutoscalingOptions {
    /// The `AutoscalingConfig` setters of the keys given, in the config's field order.
    pub(crate) fn setters(&self) -> Vec<(&'static str, Literal)> {
        let counts = [
            ("min_replicas", &self.min_replicas),
            ("max_replicas", &self.max_replicas),
            ("initial_replicas", &self.initial_replicas),
        ];
        let numbers = [
            ("target_ongoing_requests", &self.target_ongoing_requests),
            ("upscale_delay_s", &self.upscale_delay_s),
            ("downscale_delay_s", &self.downscale_delay_s),
            ("downscale_to_zero_delay_s", &self.downscale_to_zero_delay_s),
            ("look_back_period_s", &self.look_back_period_s),
            ("metrics_interval_s", &self.metrics_interval_s),
            ("upscaling_factor", &self.upscaling_factor),
            ("downscaling_factor", &self.downscaling_factor),
        ];
        setters(&counts, &numbers)
    }
}

fn setters(
    counts: &[(&'static str, &Option<Count>)],
    numbers: &[(&'static str, &Option<Number>)],
) -> Vec<(&'static str, Literal)> {
    let counts = counts
        .iter()
        .filter_map(|(key, c)| Some((*key, c.as_ref()?.literal())));
    let numbers = numbers
        .iter()
        .filter_map(|(key, n)| Some((*key, n.as_ref()?.literal())));
    counts.chain(numbers).collect()
}

/// An integer option: its value (validated against the key's minimum) and where the user wrote it.
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

/// A numeric option (seconds, a CPU count, a factor): an integer or float literal, optionally
/// negated (so that `-1` is reported as out of range rather than as a syntax error).
pub(crate) struct Number {
    pub(crate) value: f64,
    /// The literal's span.
    pub(crate) span: Span,
    /// The value as written (`-` and literal), for errors that cover all of it.
    tokens: TokenStream,
}

impl Number {
    /// The value as an `f64` literal at the user's span (`2` becomes `2.0`: the setters take `f64`).
    pub(crate) fn literal(&self) -> Literal {
        let mut lit = Literal::f64_unsuffixed(self.value);
        lit.set_span(self.span);
        lit
    }

    /// The value, or the error of `result` (a rule's verdict on it) over all of it (`-` included).
    fn ruled(self, result: Result<(), String>) -> syn::Result<Self> {
        match result {
            Ok(()) => Ok(self),
            Err(message) => Err(syn::Error::new_spanned(&self.tokens, message)),
        }
    }

    /// The value of option `key`, by its rule.
    fn checked(self, key: &str) -> syn::Result<Self> {
        let verdict = rules::number(key, key, self.value);
        self.ruled(verdict)
    }
}

impl Parse for Number {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let minus: Option<Token![-]> = input.parse()?;
        let lookahead = input.lookahead1();
        let (value, span, lit) = if lookahead.peek(LitInt) {
            let lit: LitInt = input.parse()?;
            (
                lit.base10_parse::<f64>()?,
                lit.span(),
                lit.into_token_stream(),
            )
        } else if lookahead.peek(LitFloat) {
            let lit: LitFloat = input.parse()?;
            (
                lit.base10_parse::<f64>()?,
                lit.span(),
                lit.into_token_stream(),
            )
        } else {
            return Err(lookahead.error());
        };
        let value = if minus.is_some() && value != 0.0 {
            -value
        } else {
            value // `-0` is 0, not -0.0
        };
        Ok(Number {
            value,
            span,
            tokens: quote::quote!(#minus #lit),
        })
    }
}

/// One custom resource of `resources(..)`.
pub(crate) struct Resource {
    /// The resource's name: an identifier (`a100`) or a string literal (`"accelerator_type:A100"`).
    pub(crate) name: String,
    pub(crate) name_span: Span,
    pub(crate) amount: Number,
}

/// One option as written: `key = value` or `key(..)`.
struct Entry {
    key: &'static str,
    span: Span,
    value: Value,
}

enum Value {
    Str(LitStr),
    Int(LitInt),
    Number(Number),
    Resources(Vec<Resource>),
    Autoscaling(Vec<Entry>),
}

/// The example each key's "needs a value" error shows.
fn example(key: &str) -> &'static str {
    match key {
        "name" => "\"Add\"",
        "num_replicas" | "initial_replicas" | "target_ongoing_requests" => "2",
        "max_ongoing_requests" | "metrics_interval_s" | "health_check_period_s" => "10",
        "max_queued_requests" => "100",
        "health_check_timeout_s" | "upscale_delay_s" | "look_back_period_s" => "30",
        "graceful_shutdown_timeout_s" => "20",
        "downscale_delay_s" => "600",
        "downscale_to_zero_delay_s" => "60",
        "max_replicas" => "8",
        "num_gpus" => "0.5",
        "upscaling_factor" | "downscaling_factor" => "1.0",
        _ => "1",
    }
}

/// Reads one keyword out of `$kw..` through `$lookahead` (so that a miss lists them all) and
/// returns it as `(name, span)`.
macro_rules! keyword {
    ($input:ident, $lookahead:ident, $($kw:ident),+ $(,)?) => {
        $(
            if $lookahead.peek(kw::$kw) {
                (stringify!($kw), $input.parse::<kw::$kw>()?.span)
            } else
        )+ {
            return Err($lookahead.error());
        }
    };
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        let (key, span) = keyword!(
            input,
            lookahead,
            name,
            num_replicas,
            max_ongoing_requests,
            max_queued_requests,
            autoscaling,
            health_check_period_s,
            health_check_timeout_s,
            graceful_shutdown_timeout_s,
            num_cpus,
            num_gpus,
            resources,
        );
        let value = match key {
            "name" => Value::Str(value(input, key, example(key), span)?),
            "num_replicas" | "max_ongoing_requests" | "max_queued_requests" => {
                Value::Int(value(input, key, example(key), span)?)
            }
            "autoscaling" => Value::Autoscaling(list(
                input,
                key,
                "autoscaling(min_replicas = 1, max_replicas = 8)",
                span,
                autoscaling_entry,
            )?),
            "resources" => Value::Resources(list(
                input,
                key,
                "resources(accelerator = 1)",
                span,
                resource,
            )?),
            _ => Value::Number(value(input, key, example(key), span)?),
        };
        Ok(Entry { key, span, value })
    }
}

/// One `key = value` inside `autoscaling(..)`.
fn autoscaling_entry(input: ParseStream) -> syn::Result<Entry> {
    let lookahead = input.lookahead1();
    let (key, span) = keyword!(
        input,
        lookahead,
        min_replicas,
        max_replicas,
        initial_replicas,
        target_ongoing_requests,
        upscale_delay_s,
        downscale_delay_s,
        downscale_to_zero_delay_s,
        look_back_period_s,
        metrics_interval_s,
        upscaling_factor,
        downscaling_factor,
    );
    let value = match key {
        "min_replicas" | "max_replicas" | "initial_replicas" => {
            Value::Int(value(input, key, example(key), span)?)
        }
        _ => Value::Number(value(input, key, example(key), span)?),
    };
    Ok(Entry { key, span, value })
}

/// One `name = amount` inside `resources(..)`.
fn resource(input: ParseStream) -> syn::Result<Resource> {
    let lookahead = input.lookahead1();
    let (name, name_span) = if lookahead.peek(Ident::peek_any) {
        let ident = Ident::parse_any(input)?;
        (plain_name(&ident), ident.span())
    } else if lookahead.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        (lit.value(), lit.span())
    } else {
        return Err(lookahead.error());
    };
    let amount = value(input, &name, "1", name_span)?;
    Ok(Resource {
        name,
        name_span,
        amount,
    })
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

/// `(item, ..)` after `key`; anything else is reported on the key with an example.
fn list<T>(
    input: ParseStream,
    key: &str,
    example: &str,
    key_span: Span,
    item: fn(ParseStream) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            key_span,
            format!("`{key}` takes its settings in parentheses: `{example}`"),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let items = Punctuated::<T, Token![,]>::parse_terminated_with(&content, item)?;
    Ok(items.into_iter().collect())
}

/// The keys seen so far, valid or not: a repeat is reported even when the first value was bad.
#[derive(Default)]
struct Seen(Vec<(String, Span)>);

impl Seen {
    /// Whether `key` is new; a repeat is reported on its second occurrence.
    fn first(&mut self, key: &str, span: Span, errors: &mut Errors) -> bool {
        if self.get(key).is_some() {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` may only be specified once"),
            ));
            return false;
        }
        self.0.push((key.to_owned(), span));
        true
    }

    fn get(&self, key: &str) -> Option<Span> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
    }
}

const UNREACHABLE: &str = "each key is parsed into its kind of value";

/// Parses the attribute's arguments (`name = "Add", num_replicas = 2`).
pub(crate) fn parse(args: TokenStream) -> syn::Result<DeploymentOptions> {
    let entries = Punctuated::<Entry, Token![,]>::parse_terminated.parse2(args)?;
    let mut options = DeploymentOptions::default();
    let mut errors = Errors::default();
    let mut seen = Seen::default();
    for Entry { key, span, value } in entries {
        if !seen.first(key, span, &mut errors) {
            continue;
        }
        let o = &mut options;
        match value {
            Value::Str(lit) if lit.value().is_empty() => {
                errors.push(syn::Error::new(lit.span(), "`name` must not be empty"))
            }
            Value::Str(lit) => o.name = Some(lit),
            Value::Int(lit) => {
                let field = match key {
                    "num_replicas" => &mut o.num_replicas,
                    "max_ongoing_requests" => &mut o.max_ongoing_requests,
                    "max_queued_requests" => &mut o.max_queued_requests,
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = errors.take(count(key, &lit));
            }
            Value::Number(n) => {
                let field = match key {
                    "health_check_period_s" => &mut o.health_check_period_s,
                    "health_check_timeout_s" => &mut o.health_check_timeout_s,
                    "graceful_shutdown_timeout_s" => &mut o.graceful_shutdown_timeout_s,
                    "num_cpus" => &mut o.num_cpus,
                    "num_gpus" => &mut o.num_gpus,
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = errors.take(n.checked(key));
            }
            Value::Resources(list) => o.resources = resources(list, &mut errors),
            Value::Autoscaling(list) => o.autoscaling = Some(autoscaling(list, &mut errors)),
        }
    }
    if let (Some(span), Some(_)) = (seen.get("num_replicas"), seen.get("autoscaling")) {
        let message = rules::replicas_with_autoscaling(
            "num_replicas",
            "autoscaling(..)",
            "autoscaling(initial_replicas = N)",
        );
        errors.push(syn::Error::new(span, message));
    }
    errors.finish(options)
}

/// The custom resources, each named once, by the rules of their names and amounts (not `CPU` or
/// `GPU`, at least 0).
fn resources(list: Vec<Resource>, errors: &mut Errors) -> Vec<Resource> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for r in list {
        if !seen.first(&r.name, r.name_span, errors) {
            continue;
        }
        if let Err(message) = rules::resource_name("", &r.name) {
            errors.push(syn::Error::new(r.name_span, message));
            continue;
        }
        let verdict = rules::resource_amount(&format!("resources({})", r.name), r.amount.value);
        if let Some(amount) = errors.take(r.amount.ruled(verdict)) {
            out.push(Resource { amount, ..r });
        }
    }
    out
}

/// The keys of `autoscaling(..)`, each valid on its own, then together: `min_replicas <=
/// max_replicas`, `initial_replicas` between them (with Ray's defaults for keys not given).
fn autoscaling(list: Vec<Entry>, errors: &mut Errors) -> AutoscalingOptions {
    let mut a = AutoscalingOptions::default();
    let mut own = Errors::default();
    let mut seen = Seen::default();
    for Entry { key, span, value } in list {
        if !seen.first(key, span, &mut own) {
            continue;
        }
        match value {
            Value::Int(lit) => {
                let field = match key {
                    "min_replicas" => &mut a.min_replicas,
                    "max_replicas" => &mut a.max_replicas,
                    "initial_replicas" => &mut a.initial_replicas,
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = own.take(count(key, &lit));
            }
            Value::Number(n) => {
                let field = match key {
                    "target_ongoing_requests" => &mut a.target_ongoing_requests,
                    "upscale_delay_s" => &mut a.upscale_delay_s,
                    "downscale_delay_s" => &mut a.downscale_delay_s,
                    "downscale_to_zero_delay_s" => &mut a.downscale_to_zero_delay_s,
                    "look_back_period_s" => &mut a.look_back_period_s,
                    "metrics_interval_s" => &mut a.metrics_interval_s,
                    "upscaling_factor" => &mut a.upscaling_factor,
                    "downscaling_factor" => &mut a.downscaling_factor,
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = own.take(n.checked(key));
            }
            _ => unreachable!("{UNREACHABLE}"),
        }
    }
    // Only values that are each valid are compared (a bad one would be compared as its default).
    if own.is_empty() {
        own.extend(replica_bounds(&a));
    }
    errors.extend(own.into_error());
    a
}

/// `min_replicas <= max_replicas` and `min_replicas <= initial_replicas <= max_replicas`, with Ray's
/// defaults for the ones not given: the rule's error on the value of the key it blames.
fn replica_bounds(a: &AutoscalingOptions) -> Option<syn::Error> {
    let value = |c: &Option<Count>| c.as_ref().map(|c| c.value);
    let bounds = rules::replica_bounds(
        "",
        value(&a.min_replicas),
        value(&a.max_replicas),
        value(&a.initial_replicas),
    );
    let (blame, message) = bounds.err()?;
    let blamed = match blame {
        rules::Blame::Min => &a.min_replicas,
        rules::Blame::Max => &a.max_replicas,
        rules::Blame::Initial => &a.initial_replicas,
    };
    // The rule blames a key that was given: a default is never out of bounds on its own.
    let span = blamed.as_ref().map_or_else(Span::call_site, |c| c.span);
    Some(syn::Error::new(span, message))
}

/// The value of the integer option `key`, by its rule (a minimum).
fn count(key: &str, lit: &LitInt) -> syn::Result<Count> {
    let value = lit.base10_parse::<u64>()?;
    rules::count(key, key, value).map_err(|message| syn::Error::new(lit.span(), message))?;
    Ok(Count {
        value,
        span: lit.span(),
    })
}

#[cfg(test)]
mod tests;
