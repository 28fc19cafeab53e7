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
