//! What PostgreSQL can store: neither `text` nor `jsonb` can hold the
//! character U+0000. Input that contains it is refused up front, output that
//! contains it fails the execution, and text the platform records on the
//! function's behalf (its logs, its abort message) shows it as ␀.

use serde_json::Value;

/// Whether any string or key in `value` holds U+0000.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// `text` with every U+0000 shown as ␀ (U+2400), so it can be stored.
pub fn text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{2400}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nul_anywhere() {
        assert!(!contains_nul(
            &json!({ "a": ["b", 1, null, { "c": "\\u0000" }] })
        ));
        assert!(contains_nul(&json!({ "a": ["b", { "c": "x\u{0}" }] })));
        assert!(contains_nul(&json!({ "k\u{0}": 1 })));
        assert_eq!(text("a\0b".into()), "a\u{2400}b");
    }
}
