//! The options of `#[deployment(...)]` on a struct: the deployment's name, its replicas and queue
//! limits, autoscaling (`autoscaling(..)`), health checks, shutdown, and what each replica reserves
//! (`num_cpus`, `num_gpus`, `resources(..)`). `user_config` is not one: like Ray's, it belongs in the
//! config file.
//!
//! Keys are `custom_keyword!`s read through `lookahead1()`, so a misspelled key's error lists every
//! valid key (inside `autoscaling(..)`, every autoscaling key). Syntax errors stop the parse; value
//! errors (duplicates, values out of range, options that contradict each other) are all collected.

use proc_macro2::{Literal, Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitFloat, LitInt, LitStr, Token};

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

    fn error(&self, message: String) -> syn::Error {
        syn::Error::new_spanned(&self.tokens, message)
    }

    fn check(self, key: &str, ok: fn(f64) -> bool, requirement: &str) -> syn::Result<Self> {
        if !self.value.is_finite() {
            Err(self.error(format!("`{key}` must be a finite number")))
        } else if !ok(self.value) {
            Err(self.error(format!("`{key}` must be {requirement}")))
        } else {
            Ok(self)
        }
    }

    fn positive(self, key: &str) -> syn::Result<Self> {
        self.check(key, |v| v > 0.0, "greater than 0")
    }

    fn non_negative(self, key: &str) -> syn::Result<Self> {
        self.check(key, |v| v >= 0.0, "at least 0")
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
                *field = errors.take(count(key, &lit, 1));
            }
            Value::Number(n) => {
                let (field, checked) = match key {
                    "health_check_period_s" => (&mut o.health_check_period_s, n.positive(key)),
                    "health_check_timeout_s" => (&mut o.health_check_timeout_s, n.positive(key)),
                    "graceful_shutdown_timeout_s" => {
                        (&mut o.graceful_shutdown_timeout_s, n.positive(key))
                    }
                    "num_cpus" => (&mut o.num_cpus, n.non_negative(key)),
                    "num_gpus" => (&mut o.num_gpus, n.non_negative(key)),
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = errors.take(checked);
            }
            Value::Resources(list) => o.resources = resources(list, &mut errors),
            Value::Autoscaling(list) => o.autoscaling = Some(autoscaling(list, &mut errors)),
        }
    }
    if let (Some(span), Some(_)) = (seen.get("num_replicas"), seen.get("autoscaling")) {
        errors.push(syn::Error::new(
            span,
            "`num_replicas` cannot be combined with `autoscaling(..)`: with autoscaling the \
             number of replicas follows the load; set the starting count with \
             `autoscaling(initial_replicas = N)`",
        ));
    }
    errors.finish(options)
}

/// The custom resources, each named once, none of them `CPU` or `GPU`, amounts at least 0.
fn resources(list: Vec<Resource>, errors: &mut Errors) -> Vec<Resource> {
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for r in list {
        if !seen.first(&r.name, r.name_span, errors) {
            continue;
        }
        let reserved = match r.name.as_str() {
            "" => Some("a resource name must not be empty".to_owned()),
            "CPU" | "GPU" => Some(format!(
                "`{}` is not a custom resource: use `num_{}s = ..` instead",
                r.name,
                r.name.to_lowercase()
            )),
            _ => None,
        };
        if let Some(message) = reserved {
            errors.push(syn::Error::new(r.name_span, message));
            continue;
        }
        let name = format!("resources({})", r.name);
        if let Some(amount) = errors.take(r.amount.non_negative(&name)) {
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
                let (field, min) = match key {
                    "min_replicas" => (&mut a.min_replicas, 0),
                    "max_replicas" => (&mut a.max_replicas, 1),
                    "initial_replicas" => (&mut a.initial_replicas, 0),
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = own.take(count(key, &lit, min));
            }
            Value::Number(n) => {
                let (field, checked) = match key {
                    "target_ongoing_requests" => (&mut a.target_ongoing_requests, n.positive(key)),
                    "upscale_delay_s" => (&mut a.upscale_delay_s, n.non_negative(key)),
                    "downscale_delay_s" => (&mut a.downscale_delay_s, n.non_negative(key)),
                    "look_back_period_s" => (&mut a.look_back_period_s, n.positive(key)),
                    "metrics_interval_s" => (&mut a.metrics_interval_s, n.positive(key)),
                    "upscaling_factor" => (&mut a.upscaling_factor, n.positive(key)),
                    "downscaling_factor" => (&mut a.downscaling_factor, n.positive(key)),
                    _ => unreachable!("{UNREACHABLE}"),
                };
                *field = own.take(checked);
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

/// `min_replicas <= max_replicas` and `min_replicas <= initial_replicas <= max_replicas`, with the
/// defaults (1 and 1) for the ones not given.
fn replica_bounds(a: &AutoscalingOptions) -> Option<syn::Error> {
    let min = a.min_replicas.as_ref().map_or(1, |c| c.value);
    let max = a.max_replicas.as_ref().map_or(1, |c| c.value);
    if min > max {
        return Some(match (&a.max_replicas, &a.min_replicas) {
            (Some(m), _) => syn::Error::new(
                m.span,
                format!("`max_replicas` ({max}) must be at least `min_replicas` ({min})"),
            ),
            (None, Some(m)) => syn::Error::new(
                m.span,
                format!(
                    "`min_replicas` ({min}) is more than `max_replicas` (1 by default); \
                     set `max_replicas` too"
                ),
            ),
            (None, None) => unreachable!("the defaults are 1 and 1"),
        });
    }
    let initial = a.initial_replicas.as_ref()?;
    (initial.value < min || initial.value > max).then(|| {
        syn::Error::new(
            initial.span,
            format!(
                "`initial_replicas` ({}) must be between `min_replicas` ({min}) and \
                 `max_replicas` ({max})",
                initial.value
            ),
        )
    })
}

/// An integer option's value, which must be at least `min`.
fn count(key: &str, lit: &LitInt, min: u64) -> syn::Result<Count> {
    match lit.base10_parse::<u64>()? {
        value if value < min => Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be at least {min}"),
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

    fn setters(list: Vec<(&'static str, Literal)>) -> Vec<(&'static str, String)> {
        list.into_iter().map(|(k, l)| (k, l.to_string())).collect()
    }

    const ALL_KEYS: &str = "expected one of: `name`, `num_replicas`, `max_ongoing_requests`, \
        `max_queued_requests`, `autoscaling`, `health_check_period_s`, `health_check_timeout_s`, \
        `graceful_shutdown_timeout_s`, `num_cpus`, `num_gpus`, `resources`";

    const AUTOSCALING_KEYS: &str = "expected one of: `min_replicas`, `max_replicas`, \
        `initial_replicas`, `target_ongoing_requests`, `upscale_delay_s`, `downscale_delay_s`, \
        `look_back_period_s`, `metrics_interval_s`, `upscaling_factor`, `downscaling_factor`";

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
    fn the_scaling_and_resource_options_are_read() {
        let o = parse(quote!(
            max_queued_requests = 100,
            health_check_period_s = 5,
            health_check_timeout_s = 2.5,
            graceful_shutdown_timeout_s = 1e1,
            num_cpus = 0.5,
            num_gpus = 0,
            resources(a100 = 1, "accelerator_type:A100" = 0.25, r#type = 2),
            autoscaling(
                min_replicas = 0,
                max_replicas = 8,
                target_ongoing_requests = 3
            ),
        ))
        .unwrap();
        assert_eq!(
            setters(o.setters()),
            [
                ("max_queued_requests", "100".to_owned()),
                ("health_check_period_s", "5.0".to_owned()),
                ("health_check_timeout_s", "2.5".to_owned()),
                ("graceful_shutdown_timeout_s", "10.0".to_owned()),
                ("num_cpus", "0.5".to_owned()),
                ("num_gpus", "0.0".to_owned()),
            ]
        );
        let resources: Vec<_> = o
            .resources
            .iter()
            .map(|r| (r.name.as_str(), r.amount.value))
            .collect();
        assert_eq!(
            resources,
            [
                ("a100", 1.0),
                ("accelerator_type:A100", 0.25),
                ("type", 2.0)
            ]
        );
        assert_eq!(
            setters(o.autoscaling.unwrap().setters()),
            [
                ("min_replicas", "0".to_owned()),
                ("max_replicas", "8".to_owned()),
                ("target_ongoing_requests", "3.0".to_owned()),
            ]
        );
    }

    #[test]
    fn every_autoscaling_key_is_read_in_the_configs_order() {
        let o = parse(quote!(autoscaling(
            downscaling_factor = 0.5,
            upscaling_factor = 2,
            metrics_interval_s = 1,
            look_back_period_s = 4,
            downscale_delay_s = 0,
            upscale_delay_s = 0.5,
            target_ongoing_requests = 1.5,
            initial_replicas = 3,
            max_replicas = 4,
            min_replicas = 2,
        )))
        .unwrap();
        let keys: Vec<_> = setters(o.autoscaling.unwrap().setters())
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            keys,
            [
                "min_replicas=2",
                "max_replicas=4",
                "initial_replicas=3",
                "target_ongoing_requests=1.5",
                "upscale_delay_s=0.5",
                "downscale_delay_s=0.0",
                "look_back_period_s=4.0",
                "metrics_interval_s=1.0",
                "upscaling_factor=2.0",
                "downscaling_factor=0.5",
            ]
        );
    }

    #[test]
    fn empty_autoscaling_turns_it_on_with_the_defaults() {
        let o = parse(quote!(autoscaling())).unwrap();
        assert!(o.autoscaling.unwrap().setters().is_empty());
    }

    #[test]
    fn no_options_means_all_defaults() {
        let o = parse(TokenStream::new()).unwrap();
        assert!(o.name.is_none() && o.num_replicas.is_none() && o.max_ongoing_requests.is_none());
        assert!(o.setters().is_empty() && o.autoscaling.is_none() && o.resources.is_empty());
    }

    #[test]
    fn an_unknown_key_lists_every_valid_key() {
        assert_eq!(messages(quote!(replicas = 2)), [ALL_KEYS]);
        assert_eq!(messages(quote!(user_config = "{}")), [ALL_KEYS]);
    }

    #[test]
    fn an_unknown_autoscaling_key_lists_every_autoscaling_key() {
        assert_eq!(
            messages(quote!(autoscaling(
                min_replicas = 1,
                target_num_replicas = 2
            ))),
            [AUTOSCALING_KEYS]
        );
        assert_eq!(
            messages(quote!(autoscaling(num_replicas = 2))),
            [AUTOSCALING_KEYS]
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
        assert_eq!(
            messages(quote!(
                autoscaling(max_replicas = 2, max_replicas = 3),
                resources(a = 1, a = 2),
                resources(),
                autoscaling(),
                num_cpus = 1,
                num_cpus = 1,
            )),
            [
                "`max_replicas` may only be specified once",
                "`a` may only be specified once",
                "`resources` may only be specified once",
                "`autoscaling` may only be specified once",
                "`num_cpus` may only be specified once",
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
                max_ongoing_requests = 0,
                max_queued_requests = 0,
            )),
            [
                "`name` must not be empty",
                "`num_replicas` must be at least 1",
                "`max_ongoing_requests` must be at least 1",
                "`max_queued_requests` must be at least 1",
            ]
        );
        assert_eq!(
            messages(quote!(
                health_check_period_s = 0,
                health_check_timeout_s = -1,
                graceful_shutdown_timeout_s = 0.0,
                num_cpus = -0.5,
                num_gpus = -1,
                resources(a100 = -1, CPU = 1, GPU = 1, "" = 1, ok = 0),
            )),
            [
                "`health_check_period_s` must be greater than 0",
                "`health_check_timeout_s` must be greater than 0",
                "`graceful_shutdown_timeout_s` must be greater than 0",
                "`num_cpus` must be at least 0",
                "`num_gpus` must be at least 0",
                "`resources(a100)` must be at least 0",
                "`CPU` is not a custom resource: use `num_cpus = ..` instead",
                "`GPU` is not a custom resource: use `num_gpus = ..` instead",
                "a resource name must not be empty",
            ]
        );
        assert_eq!(
            messages(quote!(num_cpus = 1e999)),
            ["`num_cpus` must be a finite number"]
        );
    }

    #[test]
    fn zero_amounts_are_allowed_and_not_negative() {
        let o = parse(quote!(num_gpus = -0, num_cpus = 0)).unwrap();
        assert_eq!(
            setters(o.setters()),
            [
                ("num_cpus", "0.0".to_owned()),
                ("num_gpus", "0.0".to_owned())
            ]
        );
    }

    #[test]
    fn autoscaling_values_are_validated_one_by_one() {
        assert_eq!(
            messages(quote!(autoscaling(
                max_replicas = 0,
                target_ongoing_requests = 0,
                upscale_delay_s = -1,
                downscale_delay_s = -0.5,
                look_back_period_s = 0,
                metrics_interval_s = 0,
                upscaling_factor = 0,
                downscaling_factor = -1,
            ))),
            [
                "`max_replicas` must be at least 1",
                "`target_ongoing_requests` must be greater than 0",
                "`upscale_delay_s` must be at least 0",
                "`downscale_delay_s` must be at least 0",
                "`look_back_period_s` must be greater than 0",
                "`metrics_interval_s` must be greater than 0",
                "`upscaling_factor` must be greater than 0",
                "`downscaling_factor` must be greater than 0",
            ]
        );
    }

    #[test]
    fn autoscaling_replica_counts_are_validated_together() {
        assert_eq!(
            messages(quote!(autoscaling(min_replicas = 4, max_replicas = 2))),
            ["`max_replicas` (2) must be at least `min_replicas` (4)"]
        );
        assert_eq!(
            messages(quote!(autoscaling(min_replicas = 2))),
            [
                "`min_replicas` (2) is more than `max_replicas` (1 by default); set `max_replicas` too"
            ]
        );
        assert_eq!(
            messages(quote!(autoscaling(
                min_replicas = 1,
                max_replicas = 4,
                initial_replicas = 5
            ))),
            ["`initial_replicas` (5) must be between `min_replicas` (1) and `max_replicas` (4)"]
        );
        assert_eq!(
            messages(quote!(autoscaling(max_replicas = 4, initial_replicas = 0))),
            ["`initial_replicas` (0) must be between `min_replicas` (1) and `max_replicas` (4)"]
        );
        // Scale to zero: min 0, start at 0.
        assert!(parse(quote!(autoscaling(min_replicas = 0, initial_replicas = 0))).is_ok());
        // An invalid count is not compared with the others as its default.
        assert_eq!(
            messages(quote!(autoscaling(min_replicas = 3, max_replicas = 0))),
            ["`max_replicas` must be at least 1"]
        );
    }

    #[test]
    fn num_replicas_and_autoscaling_exclude_each_other() {
        let expected = "`num_replicas` cannot be combined with `autoscaling(..)`: with autoscaling \
            the number of replicas follows the load; set the starting count with \
            `autoscaling(initial_replicas = N)`";
        assert_eq!(
            messages(quote!(num_replicas = 2, autoscaling(max_replicas = 4))),
            [expected]
        );
        assert_eq!(
            messages(quote!(autoscaling(), num_replicas = 2)),
            [expected]
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
        assert_eq!(
            messages(quote!(health_check_period_s)),
            ["`health_check_period_s` needs a value: `health_check_period_s = 10`"]
        );
        assert_eq!(
            messages(quote!(autoscaling(max_replicas =))),
            ["`max_replicas` needs a value: `max_replicas = 8`"]
        );
        assert_eq!(
            messages(quote!(resources(a100))),
            ["`a100` needs a value: `a100 = 1`"]
        );
    }

    #[test]
    fn nested_options_need_their_parentheses() {
        for args in [
            quote!(autoscaling),
            quote!(autoscaling = true),
            quote!(autoscaling, num_cpus = 1),
        ] {
            assert_eq!(
                messages(args.clone()),
                [
                    "`autoscaling` takes its settings in parentheses: `autoscaling(min_replicas = 1, max_replicas = 8)`"
                ],
                "for `{args}`"
            );
        }
        assert_eq!(
            messages(quote!(resources = 1)),
            ["`resources` takes its settings in parentheses: `resources(accelerator = 1)`"]
        );
        assert_eq!(
            messages(quote!(resources(1 = 2))),
            ["expected identifier or string literal"]
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_a_syntax_error() {
        assert_eq!(
            messages(quote!(num_replicas = "2")),
            ["expected integer literal"]
        );
        assert_eq!(
            messages(quote!(autoscaling(min_replicas = 1.5))),
            ["expected integer literal"]
        );
        assert_eq!(
            messages(quote!(num_cpus = "1")),
            ["expected integer literal or floating point literal"]
        );
        assert_eq!(
            messages(quote!(autoscaling(upscale_delay_s = true))),
            ["expected integer literal or floating point literal"]
        );
    }
}
