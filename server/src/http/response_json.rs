//! The JSON text of GraphQL responses over HTTP, written straight from
//! async-graphql's values. The output is byte for byte what
//! `serde_json::to_vec` makes of the same response (a property test holds it
//! to that). It takes fewer instructions because a page of a list is
//! hundreds of short strings and small objects: serde goes through its
//! serializer traits for every one, and serde_json checks each byte of a
//! string against its escape table on the way. Here a string that needs no
//! escaping is copied whole, and serde_json still writes every string that
//! does, every number, and the errors and extensions.

use async_graphql::indexmap::IndexMap;
use async_graphql::{BatchResponse, Name, Response, Value};

/// The body of a response or a batch of them.
pub fn batch(batch: &BatchResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    match batch {
        BatchResponse::Single(response) => write_response(&mut out, response, Data::Written),
        BatchResponse::Batch(responses) => {
            out.push(b'[');
            for (i, response) in responses.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_response(&mut out, response, Data::Written);
            }
            out.push(b']');
        }
    }
    out
}

/// Whether a response's body has its `data` entry: GraphQL over HTTP leaves
/// it out when the request never ran.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Written,
    Omitted,
}

/// The body of one response.
pub fn single(response: &Response, data: Data) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write_response(&mut out, response, data);
    out
}

/// The fields in the order, and with the omissions, of `Response`'s derived
/// `Serialize`.
fn write_response(out: &mut Vec<u8>, response: &Response, data: Data) {
    let mut separator = b'{';
    let mut field = |out: &mut Vec<u8>, name: &[u8]| {
        out.push(separator);
        out.extend_from_slice(name);
        separator = b',';
    };
    if data == Data::Written {
        field(out, b"\"data\":");
        write_value(out, &response.data);
    }
    if !response.extensions.is_empty() {
        field(out, b"\"extensions\":");
        by_serde_json(out, &response.extensions);
    }
    if !response.errors.is_empty() {
        field(out, b"\"errors\":");
        by_serde_json(out, &response.errors);
    }
    if separator == b'{' {
        out.push(b'{');
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::String(text) => write_str(out, text),
        Value::Enum(name) => write_str(out, name),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        // A single `$`-key is how async-graphql's optional `raw_value` feature
        // marks raw JSON; no GraphQL name starts with `$`.
        Value::Object(fields)
            if fields.len() == 1 && fields.keys().all(|name| name.starts_with('$')) =>
        {
            by_serde_json(out, value)
        }
        Value::Object(fields) => write_object(out, fields),
        Value::Number(_) | Value::Binary(_) => by_serde_json(out, value),
    }
}

fn write_object(out: &mut Vec<u8>, fields: &IndexMap<Name, Value>) {
    out.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        by_serde_json(out, text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether JSON needs any byte of `bytes` escaped: a quote, a backslash or a
/// control character (the bytes serde_json's escape table marks). Folded
/// without an early exit, so that the compiler checks sixteen bytes at a time
/// (with `any`, the benchmark's list took 40 % more instructions to write).
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Plain data (values, errors, extensions) always serialises: its maps have
/// string keys and serde_json writes every number async-graphql holds.
fn by_serde_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    if let Err(error) = serde_json::to_writer(&mut *out, value) {
        tracing::error!(%error, "a GraphQL response did not serialise");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{Number, ServerError};
    use proptest::prelude::*;

    fn serde_json_text(batch: &BatchResponse) -> String {
        String::from_utf8(serde_json::to_vec(batch).unwrap()).unwrap()
    }

    fn ours(batch: &BatchResponse) -> String {
        String::from_utf8(super::batch(batch)).unwrap()
    }

    fn any_value() -> impl Strategy<Value = Value> {
        // Strings from every class that escapes differently, and non-ASCII.
        let text = "[a-z\"\\\\/\u{0}-\u{1f}\u{7f}é\u{2028}😀 ]{0,40}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<u64>().prop_map(|n| Value::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(Value::Number),
            text.prop_map(Value::String),
            "[A-Z_]{1,12}".prop_map(|name| Value::Enum(Name::new(name))),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Binary(b.into())),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                prop::collection::vec((text, inner), 0..8).prop_map(|fields| {
                    Value::Object(fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(data in any_value(), second in any_value()) {
            let single = BatchResponse::Single(Response::new(data.clone()));
            prop_assert_eq!(ours(&single), serde_json_text(&single));
            let batch = BatchResponse::Batch(vec![Response::new(data), Response::new(second)]);
            prop_assert_eq!(ours(&batch), serde_json_text(&batch));
        }
    }

    #[test]
    fn errors_and_extensions_in_serde_json_order() {
        let mut response = Response::new(Value::Null)
            .extension("cost", Value::Number(3.into()))
            .extension("trace\"id", Value::String("a\nb".into()));
        response
            .errors
            .push(ServerError::new("no \"such\" function", None));
        let single = BatchResponse::Single(response);
        assert_eq!(ours(&single), serde_json_text(&single));
        assert!(ours(&single).starts_with(r#"{"data":null,"extensions":{"#));
    }

    #[test]
    fn a_request_that_never_ran_has_no_data_entry() {
        let mut response = Response::new(Value::Null);
        response
            .errors
            .push(ServerError::new("Unknown field \"nope\"", None));
        let body: serde_json::Value =
            serde_json::from_slice(&single(&response, Data::Omitted)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "errors": [{ "message": "Unknown field \"nope\"" }] })
        );
        let empty = single(&Response::new(Value::Null), Data::Omitted);
        assert_eq!(empty, b"{}");
    }

    #[test]
    fn escapes_only_what_json_requires() {
        assert!(!needs_escape(b"2026-12-05T21:43:47.123456Z"));
        assert!(!needs_escape("é😀/\u{7f}".as_bytes()));
        for len in 1..=40 {
            for at in 0..len {
                for escaped in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                    let mut text = vec![b'a'; len];
                    text[at] = escaped;
                    assert!(needs_escape(&text), "{text:?}");
                }
            }
        }
        assert!(!needs_escape(b""));
    }
}
