//! Stripe's request encoding: `application/x-www-form-urlencoded` with
//! nested keys: an object's fields as `a[b]=c`, a list's items as
//! `a[0]=x` (objects in lists as `a[0][b]=c`), booleans as `true`/`false`,
//! null as an empty value (Stripe's "unset"). Reading accepts what Stripe
//! accepts: brackets raw or percent-encoded, `+` for space, and `a[]=x`
//! appending to a list. Read values are strings, as Stripe reads them.

use serde_json::{Map, Value};

fn encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn walk(prefix: &str, v: &Value, pairs: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}[{k}]") };
                walk(&key, v, pairs);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(&format!("{prefix}[{i}]"), v, pairs);
            }
        }
        Value::Null => pairs.push((prefix.to_string(), String::new())),
        Value::Bool(b) => pairs.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => pairs.push((prefix.to_string(), n.to_string())),
        Value::String(s) => pairs.push((prefix.to_string(), s.clone())),
    }
}

/// Encodes a JSON object's fields as Stripe's form body.
pub fn form_encode(params: &Value) -> String {
    let mut pairs = Vec::new();
    walk("", params, &mut pairs);
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k, &mut out);
        out.push('=');
        encode_component(v, &mut out);
    }
    out
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A key's path: `a[b][0]` → `["a", "b", "0"]`; `a[]` → `["a", ""]`.
fn path(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return None;
    }
    let mut out = vec![head.to_string()];
    while !rest.is_empty() {
        let close = rest.find(']')?;
        if !rest.starts_with('[') {
            return None;
        }
        out.push(rest[1..close].to_string());
        rest = &rest[close + 1..];
    }
    Some(out)
}

fn insert(target: &mut Value, segments: &[String], value: String) {
    let Some((first, rest)) = segments.split_first() else { return };
    let is_index = |s: &str| s.is_empty() || s.bytes().all(|b| b.is_ascii_digit());
    if rest.is_empty() {
        match target {
            Value::Object(m) => {
                m.insert(first.clone(), Value::String(value));
            }
            Value::Array(items) if first.is_empty() => items.push(Value::String(value)),
            Value::Array(items) => {
                let i: usize = first.parse().unwrap_or(usize::MAX);
                if i < 10_000 {
                    while items.len() <= i {
                        items.push(Value::Null);
                    }
                    items[i] = Value::String(value);
                }
            }
            _ => {}
        }
        return;
    }
    let child_is_list = is_index(&rest[0]);
    let fresh = || if child_is_list { Value::Array(Vec::new()) } else { Value::Object(Map::new()) };
    let child = match target {
        Value::Object(m) => Some(m.entry(first.clone()).or_insert_with(fresh)),
        Value::Array(items) => {
            let i = if first.is_empty() { items.len() } else { first.parse().unwrap_or(usize::MAX) };
            if i >= 10_000 {
                None
            } else {
                while items.len() <= i {
                    items.push(Value::Null);
                }
                if items[i].is_null() {
                    items[i] = fresh();
                }
                Some(&mut items[i])
            }
        }
        _ => None,
    };
    if let Some(child) = child {
        insert(child, rest, value);
    }
}

/// Reads a form body into nested JSON (every leaf a string).
pub fn form_decode(body: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(segments) = path(&decode_component(k)) {
            insert(&mut root, &segments, decode_component(v));
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nested_parameters_as_stripe_writes_them() {
        let body = form_encode(&json!({
            "mode": "setup", "metadata": {"order": "ORD-1"}, "payment_method_types": ["card"],
            "line_items": [{"price_data": {"unit_amount": 2500}, "quantity": 1}], "off_session": true, "description": null
        }));
        assert!(body.contains("metadata%5Border%5D=ORD-1"), "{body}");
        assert!(body.contains("payment_method_types%5B0%5D=card"));
        assert!(body.contains("line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=2500"));
        assert!(body.contains("off_session=true") && body.contains("description="));
        assert_eq!(
            form_decode(&body),
            json!({"mode": "setup", "metadata": {"order": "ORD-1"}, "payment_method_types": ["card"],
                "line_items": [{"price_data": {"unit_amount": "2500"}, "quantity": "1"}], "off_session": "true", "description": ""})
        );
    }

    #[test]
    fn reading_accepts_raw_brackets_plus_and_appends() {
        assert_eq!(
            form_decode("expand[]=a&expand[]=b&card[number]=4242+4242&x=%E2%9C%93&bad%zz=1"),
            json!({"expand": ["a", "b"], "card": {"number": "4242 4242"}, "x": "✓", "bad%zz": "1"})
        );
        assert_eq!(form_decode(""), json!({}));
        assert_eq!(form_decode("[a]=1&a[=2"), json!({}), "keys without a name, or unclosed, are dropped");
    }

    fn leaf() -> impl Strategy<Value = Value> {
        "[ -~é✓]{0,12}".prop_map(Value::String)
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn what_is_encoded_reads_back(fields in proptest::collection::btree_map("[a-z_]{1,8}", tree(), 0..5)) {
            let v = Value::Object(fields.into_iter().collect());
            prop_assert_eq!(form_decode(&form_encode(&v)), v);
        }
    }
}
