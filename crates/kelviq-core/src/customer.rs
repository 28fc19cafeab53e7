//! Customers: the domain type and the rules a new or changed customer must meet.

use crate::validation::{is_valid_email, FieldErrors};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const MAX_CUSTOMER_ID: usize = 255;
const MAX_TEXT: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingAddress {
    pub country: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// The buyer's tax id (a VAT number), normalised (see [`crate::tax_ids`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: uuid::Uuid,
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// A JSON object, kept verbatim.
    pub metadata: Value,
    pub billing_address: Option<BillingAddress>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A validated new customer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub metadata: Value,
    pub billing_address: Option<BillingAddress>,
}

/// A validated partial update. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub billing_address: Option<Option<BillingAddress>>,
}

impl CustomerChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.metadata.is_none() && self.billing_address.is_none()
    }

    /// Applies the changes, returning the new state and, per changed field, its
    /// old value (the webhook `previous_attributes`, snake_case keys).
    pub fn apply(&self, c: &Customer) -> (Customer, serde_json::Map<String, Value>) {
        let mut next = c.clone();
        let mut previous = serde_json::Map::new();
        if let Some(name) = &self.name {
            if *name != c.name {
                previous.insert("name".into(), serde_json::json!(c.name));
                next.name = name.clone();
            }
        }
        if let Some(email) = &self.email {
            if *email != c.email {
                previous.insert("email".into(), serde_json::json!(c.email));
                next.email = email.clone();
            }
        }
        if let Some(metadata) = &self.metadata {
            if *metadata != c.metadata {
                previous.insert("metadata".into(), c.metadata.clone());
                next.metadata = metadata.clone();
            }
        }
        if let Some(address) = &self.billing_address {
            if *address != c.billing_address {
                previous.insert("billing_address".into(), serde_json::json!(c.billing_address));
                next.billing_address = address.clone();
            }
        }
        (next, previous)
    }
}

pub fn validate_customer_id(id: &str, errors: &mut FieldErrors) {
    if id.trim().is_empty() {
        errors.add("customer_id", "This field may not be blank.");
    } else if id.chars().count() > MAX_CUSTOMER_ID {
        errors.add("customer_id", format!("Ensure this field has no more than {MAX_CUSTOMER_ID} characters."));
    } else if id.contains('/') || id.chars().any(char::is_control) {
        errors.add("customer_id", "Customer id may not contain '/' or control characters.");
    }
}

/// Empty strings mean "no email"; anything else must be a valid address.
fn normalise_email(email: Option<String>, errors: &mut FieldErrors) -> Option<String> {
    let email = email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty())?;
    if !is_valid_email(&email) {
        errors.add("email", "Enter a valid email address.");
    }
    Some(email)
}

fn normalise_name(name: Option<String>, errors: &mut FieldErrors) -> Option<String> {
    if let Some(n) = &name {
        if n.chars().count() > MAX_TEXT {
            errors.add("name", format!("Ensure this field has no more than {MAX_TEXT} characters."));
        }
        if n.chars().any(char::is_control) {
            errors.add("name", "A name may not contain control characters.");
        }
    }
    name
}

fn validate_metadata(metadata: &Value, errors: &mut FieldErrors) {
    if !metadata.is_object() {
        errors.add("metadata", "Expected a JSON object.");
    }
}

fn normalise_address(address: Option<BillingAddress>, errors: &mut FieldErrors) -> Option<BillingAddress> {
    let mut a = address?;
    if let Some(country) = a.country.take().filter(|c| !c.trim().is_empty()) {
        let country = country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
            errors.add("billing_address", "country must be an ISO 3166-1 alpha-2 code such as \"US\".");
        }
        a.country = Some(country);
    }
    for (field, value) in [
        ("line1", &a.line1),
        ("line2", &a.line2),
        ("postal_code", &a.postal_code),
        ("city", &a.city),
        ("state", &a.state),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT) {
            errors.add("billing_address", format!("{field} has more than {MAX_TEXT} characters."));
        }
        if value.as_ref().is_some_and(|v| v.chars().any(char::is_control)) {
            errors.add("billing_address", format!("{field} may not contain control characters."));
        }
    }
    if let Some(id) = a.tax_id.take() {
        a.tax_id = crate::tax_ids::parse_tax_id(a.country.as_deref(), &id, "billing_address", errors);
    }
    // An address with nothing in it is no address.
    let empty = [&a.country, &a.line1, &a.line2, &a.postal_code, &a.city, &a.state].iter().all(|v| v.is_none());
    (!empty).then_some(a)
}

impl NewCustomer {
    pub fn parse(
        customer_id: String,
        name: Option<String>,
        email: Option<String>,
        metadata: Option<Value>,
        billing_address: Option<BillingAddress>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        validate_customer_id(&customer_id, &mut errors);
        let name = normalise_name(name, &mut errors);
        let email = normalise_email(email, &mut errors);
        let metadata = match metadata {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(m) => {
                validate_metadata(&m, &mut errors);
                m
            }
        };
        let billing_address = normalise_address(billing_address, &mut errors);
        errors.into_result()?;
        Ok(Self { customer_id, name, email, metadata, billing_address })
    }
}

impl CustomerChanges {
    pub fn parse(
        name: Option<Option<String>>,
        email: Option<Option<String>>,
        metadata: Option<Option<Value>>,
        billing_address: Option<Option<BillingAddress>>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let changes = Self {
            name: name.map(|n| normalise_name(n, &mut errors)),
            email: email.map(|e| normalise_email(e, &mut errors)),
            metadata: metadata.map(|m| match m {
                None => Value::Object(Default::default()),
                Some(m) => {
                    validate_metadata(&m, &mut errors);
                    m
                }
            }),
            billing_address: billing_address.map(|a| normalise_address(a, &mut errors)),
        };
        errors.into_result()?;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_customer_rules() {
        let c =
            NewCustomer::parse("u1".into(), Some("Ann".into()), Some(" ann@example.com ".into()), None, None).unwrap();
        assert_eq!(c.email.as_deref(), Some("ann@example.com"));
        assert_eq!(c.metadata, json!({}));

        let e = NewCustomer::parse("".into(), None, Some("nope".into()), Some(json!([1])), None).unwrap_err();
        assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["customerId", "email", "metadata"]);
        assert_eq!(e.fields()["email"], ["Enter a valid email address."]);

        let addr = BillingAddress { country: Some("usa".into()), ..Default::default() };
        let e = NewCustomer::parse("u1".into(), None, None, None, Some(addr)).unwrap_err();
        assert!(e.fields().contains_key("billingAddress"));
        assert!(NewCustomer::parse("a/b".into(), None, None, None, None).is_err());
    }

    #[test]
    fn changes_apply_and_report_previous_values() {
        let now = Utc::now();
        let c = Customer {
            id: uuid::Uuid::new_v4(),
            customer_id: "u1".into(),
            name: Some("Ann".into()),
            email: None,
            metadata: json!({"a": 1}),
            billing_address: None,
            details: json!({}),
            created_at: now,
            modified_at: now,
            archived_at: None,
        };
        let ch = CustomerChanges::parse(Some(Some("Bea".into())), None, Some(Some(json!({"b": 2}))), None).unwrap();
        let (next, prev) = ch.apply(&c);
        assert_eq!(next.name.as_deref(), Some("Bea"));
        assert_eq!(next.metadata, json!({"b": 2}), "metadata replaces, it does not merge");
        assert_eq!(prev.get("name"), Some(&json!("Ann")));
        assert_eq!(prev.get("metadata"), Some(&json!({"a": 1})));
        assert!(!prev.contains_key("email"));
        assert!(CustomerChanges::default().is_empty());
    }
}
