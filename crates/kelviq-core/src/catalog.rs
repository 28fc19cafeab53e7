//! The product catalog's rules: products, features and raw-event meters.
//!
//! Wire bodies arrive with snake_case keys (see [`crate::casing`]); the
//! validated values here are what the store keeps.

use crate::meters::{Aggregation, Operator};
use crate::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const MAX_NAME: usize = 255;
const MAX_IDENTIFIER: usize = 100;

pub const TAX_CODES: &[&str] = &[
    "saas",
    "saas_business",
    "software",
    "videocontent",
    "informationservice",
    "ebook",
    "digitalgraphic",
    "videogame",
    "eservice",
    "training",
];

/// Checks an explicit identifier: a slug of lower-case letters, digits, `-` and `_`.
pub fn validate_identifier(identifier: &str, errors: &mut FieldErrors) {
    if identifier.is_empty() {
        errors.add("identifier", "This field may not be blank.");
    } else if identifier.len() > MAX_IDENTIFIER {
        errors.add("identifier", format!("Ensure this field has no more than {MAX_IDENTIFIER} characters."));
    } else if !identifier.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        errors.add(
            "identifier",
            "Enter a valid \"slug\" consisting of lower-case letters, numbers, underscores or hyphens.",
        );
    }
}

fn validate_name(name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() {
        errors.add("name", "This field may not be blank.");
    } else if name.chars().count() > MAX_NAME {
        errors.add("name", format!("Ensure this field has no more than {MAX_NAME} characters."));
    } else if name.chars().any(char::is_control) {
        errors.add("name", "A name may not contain control characters.");
    }
}

/// A required field: `None` is "This field is required.".
fn required(value: Option<String>, field: &str, errors: &mut FieldErrors) -> String {
    value.unwrap_or_else(|| {
        errors.add(field, "This field is required.");
        String::new()
    })
}

/// The identifier to use: the given one (validated) or a slug of the name.
/// `generated` tells the store it may add a suffix to make it unique.
pub fn identifier_or_slug(given: Option<String>, name: &str, errors: &mut FieldErrors) -> (String, bool) {
    match given.filter(|g| !g.is_empty()) {
        Some(id) => {
            validate_identifier(&id, errors);
            (id, false)
        }
        None => {
            let slug = crate::ids::slugify(name);
            let slug: String = slug.chars().take(MAX_IDENTIFIER - 8).collect();
            (if slug.is_empty() { "item".to_string() } else { slug }, true)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    pub name: String,
    pub identifier: String,
    pub identifier_generated: bool,
    pub description: String,
    pub tax_code: String,
}

impl NewProduct {
    pub fn parse(
        name: Option<String>,
        identifier: Option<String>,
        description: Option<String>,
        tax_code: Option<String>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = required(name, "name", &mut errors);
        let tax_code = required(tax_code, "tax_code", &mut errors);
        if !errors.fields().contains_key("name") {
            validate_name(&name, &mut errors);
        }
        if !errors.fields().contains_key("taxCode") {
            validate_tax_code(&tax_code, &mut errors);
        }
        let (identifier, identifier_generated) = identifier_or_slug(identifier, &name, &mut errors);
        errors.into_result()?;
        Ok(Self { name, identifier, identifier_generated, description: description.unwrap_or_default(), tax_code })
    }
}

fn validate_tax_code(tax_code: &str, errors: &mut FieldErrors) {
    if !TAX_CODES.contains(&tax_code) {
        errors.add("tax_code", format!("\"{tax_code}\" is not a valid choice."));
    }
}

/// A validated product patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tax_code: Option<String>,
}

impl ProductChanges {
    pub fn parse(
        name: Option<String>,
        description: Option<String>,
        tax_code: Option<String>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(n) = &name {
            validate_name(n, &mut errors);
        }
        if let Some(t) = &tax_code {
            validate_tax_code(t, &mut errors);
        }
        errors.into_result()?;
        Ok(Self { name, description, tax_code })
    }
}

/// Per-product settings (auto-created with defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSettings {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub currency: String,
    pub product_url: Option<String>,
}

impl Default for ProductSettings {
    fn default() -> Self {
        Self { vpn: true, tor: true, proxy: true, currency: "USD".into(), product_url: None }
    }
}

impl ProductSettings {
    /// Applies a patch of `vpn`, `tor`, `proxy`, `currency`, `product_url`.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, FieldErrors> {
        let mut next = self.clone();
        let mut errors = FieldErrors::new();
        for (key, value) in patch {
            match key.as_str() {
                "vpn" | "tor" | "proxy" => match value.as_bool() {
                    Some(b) => match key.as_str() {
                        "vpn" => next.vpn = b,
                        "tor" => next.tor = b,
                        _ => next.proxy = b,
                    },
                    None => errors.add(key, "Must be a valid boolean."),
                },
                "currency" => match value.as_str() {
                    Some(c) if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
                        next.currency = c.to_ascii_uppercase()
                    }
                    _ => errors.add(key, "Must be a three-letter ISO 4217 currency code."),
                },
                "product_url" => match value {
                    Value::Null => next.product_url = None,
                    Value::String(u) if u.starts_with("http://") || u.starts_with("https://") => {
                        next.product_url = Some(u.clone())
                    }
                    _ => errors.add(key, "Enter a valid URL."),
                },
                _ => {}
            }
        }
        errors.into_result()?;
        Ok(next)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeatureType {
    Boolean,
    Customizable,
    Meter,
}

impl FeatureType {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Boolean => "BOOLEAN",
            FeatureType::Customizable => "CUSTOMIZABLE",
            FeatureType::Meter => "METER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "BOOLEAN" => Some(FeatureType::Boolean),
            "CUSTOMIZABLE" => Some(FeatureType::Customizable),
            "METER" => Some(FeatureType::Meter),
            _ => None,
        }
    }
}

pub const AGGREGATIONS: &[&str] = &["COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST"];
pub const OPERATORS: &[&str] = &["equals", "not_equals", "gt", "gte", "lt", "lte", "in", "not_in", "exists"];

/// A validated new feature. `feature_details` and `meter` are kept as JSON
/// with snake_case keys.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeature {
    pub name: String,
    pub identifier: String,
    pub identifier_generated: bool,
    pub description: String,
    pub feature_type: FeatureType,
    pub feature_details: Value,
    pub meter: Option<Value>,
    pub metadata: Value,
}

impl NewFeature {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: Option<String>,
        identifier: Option<String>,
        description: Option<String>,
        feature_type: Option<String>,
        feature_details: Option<Value>,
        meter: Option<Value>,
        metadata: Option<Value>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = required(name, "name", &mut errors);
        if !errors.fields().contains_key("name") {
            validate_name(&name, &mut errors);
        }
        let (identifier, identifier_generated) = identifier_or_slug(identifier, &name, &mut errors);
        let ty = match feature_type {
            None => {
                errors.add("feature_type", "This field is required.");
                None
            }
            Some(t) => {
                let ty = FeatureType::parse(&t);
                if ty.is_none() {
                    errors.add("feature_type", format!("\"{t}\" is not a valid choice."));
                }
                ty
            }
        };
        let details = match feature_details {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                errors.add("feature_details", "Expected a JSON object.");
                Map::new()
            }
        };
        let meter = meter.filter(|m| !m.is_null() && m.as_object().is_none_or(|o| !o.is_empty()));
        let metadata = match metadata {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(m @ Value::Object(_)) => m,
            Some(_) => {
                errors.add("metadata", "Expected a JSON object.");
                Value::Null
            }
        };
        if ty == Some(FeatureType::Meter) {
            let sub_type = details.get("feature_sub_type").and_then(Value::as_str);
            match sub_type {
                Some("PRE_AGGREGATED_USAGE") => {
                    if meter.is_some() {
                        errors.add("meter", "A meter is only used by RAW_EVENTS features.");
                    }
                }
                Some("RAW_EVENTS") => match &meter {
                    None => errors.add("meter", "RAW_EVENTS features require a meter."),
                    Some(m) => validate_meter(m, &mut errors),
                },
                Some(other) => errors.add(
                    "feature_details",
                    format!(
                        "featureSubType \"{other}\" is not a valid choice: use PRE_AGGREGATED_USAGE or RAW_EVENTS."
                    ),
                ),
                None => errors.add("feature_details", "featureSubType is required for METER features."),
            }
            validate_units(details.get("units"), &mut errors);
        } else if ty.is_some() {
            if meter.is_some() {
                errors.add("meter", "Only METER features have a meter.");
            }
            if details.contains_key("feature_sub_type") {
                errors.add("feature_details", "featureSubType is only for METER features.");
            }
        }
        errors.into_result()?;
        Ok(Self {
            name,
            identifier,
            identifier_generated,
            description: description.unwrap_or_default(),
            feature_type: ty.expect("checked above"),
            feature_details: Value::Object(details),
            meter,
            metadata,
        })
    }
}

fn validate_units(units: Option<&Value>, errors: &mut FieldErrors) {
    let ok = units.and_then(Value::as_object).is_some_and(|u| {
        ["singular", "plural"].iter().all(|k| u.get(*k).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty()))
    });
    if !ok {
        errors
            .add("feature_details", "units with non-empty singular and plural names are required for METER features.");
    }
}

/// Checks a raw-event meter: `{"aggregation": {"function", "field"}, "filters": [[{property, operator, value}]]}`.
pub fn validate_meter(meter: &Value, errors: &mut FieldErrors) {
    let Some(m) = meter.as_object() else {
        errors.add("meter", "Expected a JSON object.");
        return;
    };
    match m.get("aggregation").and_then(Value::as_object) {
        None => errors.add("meter", "aggregation is required."),
        Some(agg) => {
            let function = agg.get("function").and_then(Value::as_str).unwrap_or("");
            let field = agg.get("field").filter(|f| !f.is_null());
            let aggregation = Aggregation::parse(function);
            if aggregation.is_none() {
                errors.add("meter", format!("aggregation.function must be one of {}.", AGGREGATIONS.join(", ")));
            } else if aggregation == Some(Aggregation::Count) {
                if field.is_some() {
                    errors.add("meter", "aggregation.field must be left out for COUNT.");
                }
            } else if field.and_then(Value::as_str).is_none_or(|f| f.trim().is_empty()) {
                errors.add("meter", format!("aggregation.field (an event property) is required for {function}."));
            }
        }
    }
    let filters = match m.get("filters") {
        None | Some(Value::Null) => return,
        Some(Value::Array(groups)) => groups,
        Some(_) => {
            errors.add("meter", "filters must be a list of groups.");
            return;
        }
    };
    for (g, group) in filters.iter().enumerate() {
        let Some(conditions) = group.as_array().filter(|c| !c.is_empty()) else {
            errors.add("meter", format!("filters[{g}] must be a non-empty list of conditions."));
            continue;
        };
        for (c, condition) in conditions.iter().enumerate() {
            if let Err(msg) = check_condition(condition) {
                errors.add("meter", format!("filters[{g}][{c}]: {msg}"));
            }
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn check_condition(condition: &Value) -> Result<(), String> {
    let c = condition.as_object().ok_or("a condition is an object")?;
    let property = c.get("property").and_then(Value::as_str).unwrap_or("");
    if property.trim().is_empty() {
        return Err("property is required".into());
    }
    let operator = c.get("operator").and_then(Value::as_str).unwrap_or("");
    let value = c.get("value");
    match Operator::parse(operator) {
        Some(Operator::Equals | Operator::NotEquals) => {
            if !value.is_some_and(is_scalar) {
                return Err(format!("{operator} needs a string, number or boolean value"));
            }
        }
        Some(Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte) => {
            if !value.is_some_and(Value::is_number) {
                return Err(format!("{operator} needs a number value"));
            }
        }
        Some(Operator::In | Operator::NotIn) => {
            if !value.and_then(Value::as_array).is_some_and(|a| !a.is_empty() && a.iter().all(is_scalar)) {
                return Err(format!("{operator} needs a non-empty list of values"));
            }
        }
        Some(Operator::Exists) => {
            if value.is_some_and(|v| !v.is_null() && !v.is_boolean()) {
                return Err("exists takes no value (or a boolean)".into());
            }
        }
        None => return Err(format!("operator \"{operator}\" is not one of {}", OPERATORS.join(", "))),
    }
    Ok(())
}

/// A validated feature patch: only `name`, `description`, `metadata` change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
}

impl FeatureChanges {
    pub fn parse(
        name: Option<String>,
        description: Option<String>,
        metadata: Option<Value>,
        immutable_given: &[&str],
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        for field in immutable_given {
            errors.add(field, "This field cannot be changed after creation.");
        }
        if let Some(n) = &name {
            validate_name(n, &mut errors);
        }
        let metadata = match metadata {
            None => None,
            Some(Value::Null) => Some(Value::Object(Map::new())),
            Some(m @ Value::Object(_)) => Some(m),
            Some(_) => {
                errors.add("metadata", "Expected a JSON object.");
                None
            }
        };
        errors.into_result()?;
        Ok(Self { name, description, metadata })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature(ty: &str, details: Value, meter: Value) -> Result<NewFeature, FieldErrors> {
        let meter = if meter.is_null() { None } else { Some(meter) };
        NewFeature::parse(Some("API calls".into()), None, None, Some(ty.into()), Some(details), meter, None)
    }

    fn units() -> Value {
        json!({"singular": "call", "plural": "calls"})
    }

    #[test]
    fn products() {
        let p = NewProduct::parse(Some("Pro Suite".into()), None, None, Some("saas".into())).unwrap();
        assert_eq!((p.identifier.as_str(), p.identifier_generated), ("pro-suite", true));
        let e = NewProduct::parse(Some("".into()), Some("Bad Slug".into()), None, Some("food".into())).unwrap_err();
        assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["identifier", "name", "taxCode"]);
        let e = NewProduct::parse(None, None, None, None).unwrap_err();
        assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["name", "taxCode"]);
    }

    #[test]
    fn meter_features() {
        let ok = feature("METER", json!({"feature_sub_type": "PRE_AGGREGATED_USAGE", "units": units()}), Value::Null);
        assert_eq!(ok.unwrap().identifier, "api-calls");
        let raw = json!({"feature_sub_type": "RAW_EVENTS", "units": units()});
        let meter = json!({
            "aggregation": {"function": "SUM", "field": "tokens"},
            "filters": [[{"property": "event_name", "operator": "equals", "value": "llm.call"},
                         {"property": "model", "operator": "in", "value": ["a", "b"]}],
                        [{"property": "x", "operator": "exists"}]]
        });
        assert!(feature("METER", raw.clone(), meter).is_ok());
        assert!(feature("METER", raw.clone(), json!({"aggregation": {"function": "COUNT"}})).is_ok());

        let bad = [
            (json!({"units": units()}), Value::Null, "featureDetails"),
            (
                json!({"feature_sub_type": "RAW_EVENTS"}),
                json!({"aggregation": {"function": "COUNT"}}),
                "featureDetails",
            ),
            (raw.clone(), Value::Null, "meter"),
            (raw.clone(), json!({"aggregation": {"function": "AVG", "field": "x"}}), "meter"),
            (raw.clone(), json!({"aggregation": {"function": "SUM"}}), "meter"),
            (raw.clone(), json!({"aggregation": {"function": "COUNT", "field": "x"}}), "meter"),
            (raw.clone(), json!({"aggregation": {"function": "COUNT"}, "filters": [[]]}), "meter"),
            (raw.clone(), json!({"aggregation": {"function": "COUNT"}, "filters": [{"property": "a"}]}), "meter"),
            (
                raw.clone(),
                json!({"aggregation": {"function": "COUNT"}, "filters": [[{"property": "a", "operator": "like", "value": "x"}]]}),
                "meter",
            ),
            (
                raw.clone(),
                json!({"aggregation": {"function": "COUNT"}, "filters": [[{"property": "a", "operator": "gt", "value": "x"}]]}),
                "meter",
            ),
            (
                raw.clone(),
                json!({"aggregation": {"function": "COUNT"}, "filters": [[{"property": "a", "operator": "in", "value": []}]]}),
                "meter",
            ),
            (raw, json!({"aggregation": {"function": "COUNT"}, "filters": [[{"operator": "exists"}]]}), "meter"),
            (
                json!({"feature_sub_type": "PRE_AGGREGATED_USAGE", "units": units()}),
                json!({"aggregation": {"function": "COUNT"}}),
                "meter",
            ),
        ];
        for (details, meter, field) in bad {
            let e = feature("METER", details.clone(), meter.clone()).unwrap_err();
            assert!(e.fields().contains_key(field), "{details} {meter}: {e}");
        }
    }

    #[test]
    fn non_meter_features() {
        assert!(feature("BOOLEAN", json!({}), Value::Null).is_ok());
        assert!(feature("CUSTOMIZABLE", json!({}), Value::Null).is_ok());
        assert!(feature("BOOLEAN", json!({}), json!({"aggregation": {"function": "COUNT"}})).is_err());
        assert!(feature("FLAG", json!({}), Value::Null).unwrap_err().fields().contains_key("featureType"));
    }

    #[test]
    fn settings_patch() {
        let s = ProductSettings::default();
        let patch = json!({"vpn": false, "currency": "eur", "product_url": "https://app.example.com"});
        let n = s.patched(patch.as_object().unwrap()).unwrap();
        assert_eq!(
            (n.vpn, n.currency.as_str(), n.product_url.as_deref()),
            (false, "EUR", Some("https://app.example.com"))
        );
        assert!(s.patched(json!({"tor": "yes"}).as_object().unwrap()).is_err());
        assert!(s.patched(json!({"currency": "EURO"}).as_object().unwrap()).is_err());
    }
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: uuid::Uuid,
    pub identifier: String,
    pub name: String,
    pub description: String,
    pub tax_code: String,
    pub created_by: String,
    pub settings: ProductSettings,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A feature as stored. `feature_details` and `meter` have snake_case keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: uuid::Uuid,
    pub identifier: String,
    pub name: String,
    pub description: String,
    pub feature_type: FeatureType,
    pub feature_details: Value,
    pub meter: Option<Value>,
    pub metadata: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}
