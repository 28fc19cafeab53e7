//! Wire casing (spec §0): request bodies arrive in camelCase or snake_case and
//! are normalised to snake_case, recursively, except inside `metadata`, whose
//! keys are the user's own and kept verbatim.

use serde_json::{Map, Value};

/// `billingAddress` → `billing_address`; `postal_code` stays as it is.
pub fn camel_to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `billing_address` → `billingAddress`; used to name fields in error bodies.
pub fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises every object key below `value` to snake_case, leaving the
/// contents of any `metadata` member untouched.
pub fn underscoreize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let key = camel_to_snake(&k);
                let v = if key == "metadata" { v } else { underscoreize(v) };
                out.insert(key, v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(underscoreize).collect()),
        other => other,
    }
}

/// Like [`underscoreize`], but two keys of one object that name the same
/// field (`customerId` and `customer_id`) are an error: the path of the field
/// named twice, in snake_case (`customer_id`, `billing_address.city`).
pub fn underscoreize_strict(value: Value) -> Result<Value, String> {
    // The path is built only on the way out of an error (segments in
    // reverse), so a body that is fine costs no more than `underscoreize`.
    fn walk(value: Value) -> Result<Value, Vec<String>> {
        match value {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let key = camel_to_snake(&k);
                    let v = if key == "metadata" {
                        v
                    } else {
                        walk(v).map_err(|mut path| {
                            path.push(key.clone());
                            path
                        })?
                    };
                    if out.contains_key(&key) {
                        return Err(vec![key]);
                    }
                    out.insert(key, v);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    walk(v).map_err(|mut path| {
                        path.push(i.to_string());
                        path
                    })
                })
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other),
        }
    }
    walk(value).map_err(|mut path| {
        path.reverse();
        path.join(".")
    })
}

/// JSON text read into a value, refusing an object that repeats a key (which
/// a plain read would keep the last of, silently): the error names the
/// repeated key.
pub fn parse_without_repeats(text: &[u8]) -> Result<Value, serde_json::Error> {
    struct NoRepeats(Value);

    impl<'de> serde::Deserialize<'de> for NoRepeats {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visitor).map(NoRepeats)
        }
    }

    struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(Visitor)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(NoRepeats(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let NoRepeats(v) = map.next_value()?;
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!("duplicate field `{key}`")));
                }
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
    }

    serde_json::from_slice::<NoRepeats>(text).map(|NoRepeats(v)| v)
}

/// The inverse of [`underscoreize`], for stored documents going out in
/// responses: every key to camelCase, except inside `metadata`.
pub fn camelize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let v = if k == "metadata" { v } else { camelize(v) };
                out.insert(snake_to_camel(&k), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(camelize).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_named_twice_is_an_error() {
        assert_eq!(underscoreize_strict(json!({"customerId": "A", "customer_id": "B"})), Err("customer_id".into()));
        assert_eq!(
            underscoreize_strict(json!({"billingAddress": {"postalCode": 1, "postal_code": 2}})),
            Err("billing_address.postal_code".into())
        );
        assert_eq!(
            underscoreize_strict(json!({"metadata": {"aB": 1, "a_b": 2}})).unwrap(),
            json!({"metadata": {"aB": 1, "a_b": 2}})
        );
        let e = parse_without_repeats(br#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `c`"), "{e}");
        assert_eq!(
            parse_without_repeats(br#"{"a": [1, 2.5, "x", null, true]}"#).unwrap(),
            json!({"a": [1, 2.5, "x", null, true]})
        );
        assert_eq!(parse_without_repeats(b"18446744073709551615").unwrap(), json!(18446744073709551615u64));
    }

    #[test]
    fn keys_convert_both_ways() {
        assert_eq!(camel_to_snake("customerId"), "customer_id");
        assert_eq!(camel_to_snake("customer_id"), "customer_id");
        assert_eq!(camel_to_snake("billingAddress"), "billing_address");
        assert_eq!(snake_to_camel("billing_address"), "billingAddress");
        assert_eq!(snake_to_camel("customer_id"), "customerId");
        assert_eq!(snake_to_camel("email"), "email");
        assert_eq!(snake_to_camel("non_field_errors"), "nonFieldErrors");
    }

    #[test]
    fn camelize_undoes_underscoreize() {
        let wire = json!({"featureSubType": "RAW_EVENTS", "units": {"singular": "call"}, "metadata": {"a_b": 1}});
        assert_eq!(camelize(underscoreize(wire.clone())), wire);
    }

    #[test]
    fn metadata_is_kept_verbatim_at_any_depth() {
        let body = json!({
            "customerId": "u1",
            "billingAddress": {"postalCode": "1000"},
            "metadata": {"someKey": {"innerKey": 1}},
            "features": [{"featureId": "a", "metadata": {"keepMe": true}}]
        });
        assert_eq!(
            underscoreize(body),
            json!({
                "customer_id": "u1",
                "billing_address": {"postal_code": "1000"},
                "metadata": {"someKey": {"innerKey": 1}},
                "features": [{"feature_id": "a", "metadata": {"keepMe": true}}]
            })
        );
    }
}
