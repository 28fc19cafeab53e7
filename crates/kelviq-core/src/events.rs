//! Webhook event payloads (spec §3.2): a snake_case envelope
//! `{id, type, created_at, data: {object, previous_attributes?}}`.
//! Built here, from domain values, so the store can write them in the same
//! transaction as the change that causes them.

use crate::customer::Customer;
use crate::timefmt::{iso_micros, iso_seconds};
use crate::Tenant;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// An event ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub id: uuid::Uuid,
    pub event_type: String,
    /// The whole envelope, exactly as it will be delivered.
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl OutboxEvent {
    pub fn new(event_type: &str, object: Value, previous: Option<Map<String, Value>>, now: DateTime<Utc>) -> Self {
        let id = uuid::Uuid::new_v4();
        let mut data = json!({ "object": object });
        if let Some(previous) = previous {
            data["previous_attributes"] = Value::Object(previous);
        }
        let payload = json!({
            "id": id.to_string(),
            "type": event_type,
            "created_at": iso_seconds(now),
            "data": data,
        });
        Self { id, event_type: event_type.to_string(), payload, created_at: now }
    }
}

/// The snake_case customer object of `customer.*` events.
pub fn customer_object(c: &Customer, tenant: &Tenant, subscriptions: i64) -> Value {
    json!({
        "object": "customer",
        "organization": tenant.org_id.to_string(),
        "id": c.id.to_string(),
        "customer_id": c.customer_id,
        "name": c.name,
        "email": c.email,
        "details": c.details,
        "metadata": c.metadata,
        "billing_address": c.billing_address,
        "subscriptions": subscriptions,
        "created_on": iso_micros(c.created_at),
        "modified_on": iso_micros(c.modified_at),
    })
}

pub fn customer_created(c: &Customer, tenant: &Tenant, now: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent::new("customer.created", customer_object(c, tenant, 0), None, now)
}

pub fn customer_updated(
    c: &Customer,
    tenant: &Tenant,
    previous: Map<String, Value>,
    now: DateTime<Utc>,
) -> OutboxEvent {
    OutboxEvent::new("customer.updated", customer_object(c, tenant, 0), Some(previous), now)
}
