//! Entitlement rows, usage reports, events and consumes as the API shows
//! them. Reports and consumes are answered from what the writer stored with
//! their idempotency key, so these types also read that stored form.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One row of a customer's entitlements (a feature can have several, one
/// per granting subscription). A BOOLEAN row has no usage fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementRowOut {
    pub feature_id: String,
    /// BOOLEAN, CUSTOMIZABLE or METER.
    pub feature_type: String,
    pub has_access: bool,
    /// When the meter's period ends (`YYYY-MM-DD HH:MM:SS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub reset_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<bool>, nullable)]
    pub hard_limit: Option<Option<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, nullable)]
    pub usage_limit: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, nullable)]
    pub current_usage: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, nullable)]
    pub remaining: Option<Option<i64>>,
    /// Present (true) when an admin override sets this row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_overridden: Option<bool>,
}

/// A customer's entitlements (the check's answer, and the admin endpoints').
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEntitlementsOut {
    pub customer_id: String,
    pub entitlements: Vec<EntitlementRowOut>,
}

/// A usage report's answer (the first one's, for a repeated key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReportOut {
    pub value: i64,
    pub customer_id: String,
    pub feature_id: String,
    /// SET or DELTA.
    pub behaviour: String,
    pub org_id: String,
    /// Always `aggregated.usage`.
    pub event_name: String,
    pub idempotency_key: String,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// A raw event as received (the first one's, for a repeated key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventOut {
    pub customer_id: String,
    pub event_name: String,
    pub idempotency_key: String,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC.
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub properties: Value,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// A consume's answer (the first one's, for a repeated key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeOut {
    pub customer_id: String,
    pub feature_id: String,
    pub value: i64,
    pub idempotency_key: String,
    /// Whether the usage was deducted.
    pub allowed: bool,
    /// Why not, when the customer has no grant of the feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_usage: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub usage_limit: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    pub remaining: Option<Option<i64>>,
}

/// The answer to a batch of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

/// One event's result in a batch.
#[derive(Debug, Serialize, Default, ToSchema)]
pub struct EventResult {
    #[serde(rename = "idempotencyKey")]
    pub key: Option<Value>,
    /// accepted, duplicate or rejected.
    #[schema(value_type = String)]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A rejected event's field errors (or `{detail}`).
    #[schema(value_type = Option<Object>)]
    pub errors: Option<Value>,
}

/// A field that may be absent (`None`), null (`Some(None)`) or a value.
mod present {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
