//! The OpenAPI 3.0 Operation Object of each route, written as JSON text at compile time. The
//! runtime (`serve_core::__private::OpenApi`) only groups these by path and adds `info`.
//!
//! Schemas are what the macro can see in the types: primitives get their JSON-schema type
//! (`integer`, `number`, `boolean`, `string`), `Vec<T>`/arrays/sets an `array` of `T`,
//! maps with string keys an `object` of `T`, `Option<T>` `T` (a `nullable` one in a body); any
//! other type is described by its name only (`{"title": "NewUser"}`).

use std::fmt::{self, Write};

use quote::ToTokens;
use syn::Type;

use crate::model::{ArgSource, Route};
use crate::util::{first_type_arg, last_segment, peel};

/// A JSON value, written compactly with its keys in insertion order.
pub(crate) enum Json {
    Bool(bool),
    Int(i64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(i) => write!(f, "{i}"),
            Json::Str(s) => write_string(f, s),
            Json::Array(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Json::Object(entries) => {
                f.write_char('{')?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// The Operation Object of `route`, as JSON text.
pub(crate) fn operation(route: &Route) -> String {
    let mut op = vec![("operationId", Json::str(route.name()))];
    if !route.summary.is_empty() {
        op.push(("summary", Json::str(&route.summary)));
    }
    if !route.description.is_empty() {
        op.push(("description", Json::str(&route.description)));
    }
    if !route.tags.is_empty() {
        let tags = route.tags.iter().map(Json::str).collect();
        op.push(("tags", Json::Array(tags)));
    }
    if route.deprecated {
        op.push(("deprecated", Json::Bool(true)));
    }
    let parameters: Vec<Json> = route
        .args
        .iter()
        .filter_map(|arg| {
            let (name, place, required, ty) = match &arg.source {
                ArgSource::Path { name, .. } => (name, "path", true, &arg.ty),
                ArgSource::Query {
                    name,
                    optional: Some(inner),
                } => (name, "query", false, inner),
                ArgSource::Query {
                    name,
                    optional: None,
                } => (name, "query", true, &arg.ty),
                ArgSource::Body(_) | ArgSource::Request => return None,
            };
            Some(Json::Object(vec![
                ("name", Json::str(name)),
                ("in", Json::str(place)),
                ("required", Json::Bool(required)),
                ("schema", schema(ty)),
            ]))
        })
        .collect();
    let validated = !parameters.is_empty();
    if validated {
        op.push(("parameters", Json::Array(parameters)));
    }
    let body = route.args.iter().find_map(|a| match &a.source {
        ArgSource::Body(inner) => Some(inner),
        _ => None,
    });
    if let Some(inner) = body {
        let media = Json::Object(vec![("schema", schema(inner))]);
        op.push((
            "requestBody",
            Json::Object(vec![
                ("required", Json::Bool(true)),
                ("content", Json::Object(vec![("application/json", media)])),
            ]),
        ));
    }
    let described = |text: &str| Json::Object(vec![("description", Json::str(text))]);
    let mut responses = vec![("200", described("Successful Response"))];
    if body.is_some() {
        responses.push(("400", described("Malformed JSON body")));
    }
    if validated || body.is_some() {
        responses.push(("422", described("Validation Error")));
    }
    op.push(("responses", Json::Object(responses)));
    Json::Object(op).to_string()
}

/// The JSON schema of a Rust type, as far as its name tells.
pub(crate) fn schema(ty: &Type) -> Json {
    let typed = |name: &str| vec![("type", Json::str(name))];
    match peel(ty) {
        Type::Array(a) => {
            return Json::Object(vec![
                ("type", Json::str("array")),
                ("items", schema(&a.elem)),
            ]);
        }
        Type::Slice(s) => {
            return Json::Object(vec![
                ("type", Json::str("array")),
                ("items", schema(&s.elem)),
            ]);
        }
        _ => {}
    }
    let Some(segment) = last_segment(ty) else {
        return titled(ty);
    };
    let inner = first_type_arg(segment);
    let name = segment.ident.to_string();
    if inner.is_none()
        && let Some(scalar) = scalar_schema(&name)
    {
        return Json::Object(scalar);
    }
    let schema = match (name.as_str(), inner) {
        ("Vec" | "VecDeque" | "HashSet" | "BTreeSet", Some(inner)) => {
            vec![("type", Json::str("array")), ("items", schema(inner))]
        }
        ("Box" | "Arc" | "Json", Some(inner)) => return schema(inner),
        ("Option", Some(inner)) => match schema(inner) {
            Json::Object(mut entries) => {
                entries.push(("nullable", Json::Bool(true)));
                entries
            }
            other => return other,
        },
        ("HashMap" | "BTreeMap", Some(_)) => {
            let value = match &segment.arguments {
                syn::PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .nth(1),
                _ => None,
            };
            let mut s = typed("object");
            if let Some(value) = value {
                s.push(("additionalProperties", schema(value)));
            }
            s
        }
        _ => return titled(ty),
    };
    Json::Object(schema)
}

/// The schema entries of a scalar type named `name` (`i32`, `f64`, `String`, ..), if it is one.
fn scalar_schema(name: &str) -> Option<Vec<(&'static str, Json)>> {
    let typed = |name: &str, extra: Option<(&'static str, Json)>| {
        let mut s = vec![("type", Json::str(name))];
        s.extend(extra);
        s
    };
    Some(match name {
        "i8" | "i16" | "i32" => typed("integer", Some(("format", Json::str("int32")))),
        "i64" => typed("integer", Some(("format", Json::str("int64")))),
        "i128" | "isize" => typed("integer", None),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            typed("integer", Some(("minimum", Json::Int(0))))
        }
        "f32" => typed("number", Some(("format", Json::str("float")))),
        "f64" => typed("number", Some(("format", Json::str("double")))),
        "bool" => typed("boolean", None),
        "String" | "str" | "char" => typed("string", None),
        _ => return None,
    })
}

/// `{"title": "crate::NewUser"}`: a type the macro cannot see into.
fn titled(ty: &Type) -> Json {
    let text: String = ty
        .to_token_stream()
        .to_string()
        .split_whitespace()
        .collect();
    Json::Object(vec![("title", Json::Str(text))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn schema_of(ty: Type) -> String {
        schema(&ty).to_string()
    }

    #[test]
    fn strings_are_escaped() {
        let value = Json::Object(vec![("k", Json::str("a \"q\" \\ \n \u{1} é"))]);
        assert_eq!(value.to_string(), r#"{"k":"a \"q\" \\ \n \u0001 é"}"#);
    }

    #[test]
    fn primitive_schemas_have_json_schema_types() {
        assert_eq!(
            schema_of(parse_quote!(u64)),
            r#"{"type":"integer","minimum":0}"#
        );
        assert_eq!(
            schema_of(parse_quote!(i32)),
            r#"{"type":"integer","format":"int32"}"#
        );
        assert_eq!(
            schema_of(parse_quote!(f64)),
            r#"{"type":"number","format":"double"}"#
        );
        assert_eq!(schema_of(parse_quote!(bool)), r#"{"type":"boolean"}"#);
        assert_eq!(
            schema_of(parse_quote!(std::string::String)),
            r#"{"type":"string"}"#
        );
    }

    #[test]
    fn containers_and_named_types() {
        assert_eq!(
            schema_of(parse_quote!(Vec<Option<u8>>)),
            r#"{"type":"array","items":{"type":"integer","minimum":0,"nullable":true}}"#
        );
        assert_eq!(
            schema_of(parse_quote!([bool; 2])),
            r#"{"type":"array","items":{"type":"boolean"}}"#
        );
        assert_eq!(
            schema_of(parse_quote!(HashMap<String, f32>)),
            r#"{"type":"object","additionalProperties":{"type":"number","format":"float"}}"#
        );
        assert_eq!(schema_of(parse_quote!(Box<String>)), r#"{"type":"string"}"#);
        assert_eq!(
            schema_of(parse_quote!(crate::model::NewUser)),
            r#"{"title":"crate::model::NewUser"}"#
        );
        assert_eq!(
            schema_of(parse_quote!(Option<Page>)),
            r#"{"title":"Page","nullable":true}"#
        );
    }
}
