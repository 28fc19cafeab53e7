//! Webhook event payloads (spec §3.2): a snake_case envelope
//! `{id, type, created_at, data: {object, previous_attributes?}}`.
//! Built here, from domain values, so the store can write them in the same
//! transaction as the change that causes them.

use crate::billing::{amount_text, CheckoutSession, InvoiceStatus, Line, Order, PaymentMethod, Refund, Subscription};
use crate::customer::Customer;
use crate::money::{currency_exponent, micro_minor_to_decimal};
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

/// The customer summary embedded in selling events.
pub fn customer_summary(c: &Customer) -> Value {
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "email": c.email,
        "customer_id": c.customer_id,
        "billing_address": c.billing_address,
    })
}

/// The product and plan a selling record is about, for event objects.
#[derive(Debug, Clone)]
pub struct Sold<'a> {
    pub customer: &'a Customer,
    pub product_id: uuid::Uuid,
    pub product_name: &'a str,
}

fn date_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.date_naive().format("%Y-%m-%d").to_string()))
}

fn time_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(iso_seconds(t)))
}

/// The snake_case subscription object of `subscription.*` events.
pub fn subscription_object(s: &Subscription, sold: &Sold<'_>, tenant: &Tenant) -> Value {
    json!({
        "object": "subscription",
        "organization": tenant.org_id.to_string(),
        "id": s.id.to_string(),
        "status": s.status.as_str(),
        "plan": {"name": s.plan_name, "version": s.plan_version, "identifier": s.plan_identifier},
        "product": {"id": sold.product_id.to_string(), "name": sold.product_name},
        "amount": amount_text(s.amount_minor, &s.currency),
        "amount_units": s.amount_minor,
        "currency": s.currency.to_ascii_lowercase(),
        "recurrence": s.charge_period.recurrence(),
        "start_date": date_opt(Some(s.started_at)),
        "end_date": date_opt(s.ended_at.or(s.cancel_at)),
        "billing_period_start_time": time_opt(s.period_start),
        "billing_period_end_time": time_opt(s.period_end),
        "trial_start": time_opt(s.trial_start),
        "trial_end": time_opt(s.trial_end),
        "customer": customer_summary(sold.customer),
        "features": s.features.iter().map(|f| json!({"identifier": f.identifier, "quantity": f.quantity})).collect::<Vec<_>>(),
        "created_on": iso_seconds(s.created_at),
        "modified_on": iso_seconds(s.modified_at),
    })
}

/// The snake_case order object of `order.*` events.
pub fn order_object(o: &Order, sold: &Sold<'_>, tenant: &Tenant) -> Value {
    json!({
        "object": "order",
        "organization": tenant.org_id.to_string(),
        "id": o.id,
        "status": o.status,
        "billing_type": o.billing_type,
        "customer_id": sold.customer.id.to_string(),
        "customer": customer_summary(sold.customer),
        "is_renewal": o.is_renewal,
        "paid_at": time_opt(o.paid_at),
        "amount_total": amount_text(o.total_minor, &o.currency),
        "amount_total_units": o.total_minor,
        "currency": o.currency,
        "subscription_id": o.subscription_id.map(|i| i.to_string()),
        "product": {"id": sold.product_id.to_string(), "name": sold.product_name},
        "plan": {"name": o.plan_name, "version": o.plan_version, "identifier": o.plan_identifier},
        "features": o.features.iter().map(|f| json!({"identifier": f.identifier, "quantity": f.quantity})).collect::<Vec<_>>(),
    })
}

/// The snake_case invoice object of `invoice.*` events.
pub fn invoice_object(o: &Order, sold: &Sold<'_>, tenant: &Tenant, payment_link: Option<String>) -> Value {
    json!({
        "object": "invoice",
        "organization": tenant.org_id.to_string(),
        "id": o.invoice_id,
        "status": o.invoice_status,
        "paid_at": time_opt(o.paid_at),
        "amount_total": amount_text(o.total_minor, &o.currency),
        "amount_total_units": o.total_minor,
        "currency": o.currency,
        "due_date": date_opt(Some(o.due_at)),
        "order_id": o.id,
        "customer_id": sold.customer.id.to_string(),
        "customer": customer_summary(sold.customer),
        "subscription_id": o.subscription_id.map(|i| i.to_string()),
        "product": {"id": sold.product_id.to_string(), "name": sold.product_name},
        "payment_link": if o.invoice_status == InvoiceStatus::Paid { Value::Null } else { json!(payment_link) },
        "amount_tax": amount_text(o.tax_minor, &o.currency),
        "amount_tax_units": o.tax_minor,
        "lines": o.invoice_lines().iter().map(|l| line_object(l, &o.currency)).collect::<Vec<_>>(),
    })
}

/// An invoice line of `invoice.*` events: the fields of the API's invoice
/// line, in snake_case.
fn line_object(l: &Line, currency: &str) -> Value {
    let exp = currency_exponent(currency).unwrap_or(2);
    let tiers: Vec<Value> = l
        .tiers
        .iter()
        .map(|t| {
            json!({
                "up_to": t.up_to,
                "quantity": t.quantity,
                "unit_amount": micro_minor_to_decimal(t.unit_micro, exp),
                "flat_amount": amount_text(t.flat_minor, currency),
                "amount": amount_text(t.amount_minor, currency),
                "amount_units": t.amount_minor,
            })
        })
        .collect();
    json!({
        "kind": l.kind.as_str(),
        "description": l.description,
        "feature_id": l.feature,
        "quantity": l.quantity,
        "unit_amount": l.unit_micro.map(|u| micro_minor_to_decimal(u, exp)),
        "amount": amount_text(l.amount_minor, currency),
        "amount_units": l.amount_minor,
        "period_start": time_opt(l.period_start),
        "period_end": time_opt(l.period_end),
        "tiers": tiers,
    })
}

/// The snake_case object of `checkout.completed`, with the session's metadata verbatim.
pub fn checkout_object(cs: &CheckoutSession, sold: &Sold<'_>, tenant: &Tenant, amount_minor: i64) -> Value {
    json!({
        "object": "checkout_session",
        "organization": tenant.org_id.to_string(),
        "id": cs.id,
        "status": "success",
        "checkout_type": if cs.charge_period.is_recurring() { "SUBSCRIPTION" } else { "ONE_TIME" },
        "customer_id": sold.customer.id.to_string(),
        "customer": customer_summary(sold.customer),
        "amount": amount_text(amount_minor, &cs.quote.currency),
        "amount_units": amount_minor,
        "currency": cs.quote.currency,
        "discount_code": cs.discount_code,
        "features": cs.features.iter().map(|f| json!({"identifier": f.identifier, "quantity": f.quantity})).collect::<Vec<_>>(),
        "plan": {"name": cs.plan_name, "version": cs.plan_version, "identifier": cs.plan_identifier},
        "product": {"id": sold.product_id.to_string(), "name": sold.product_name},
        "billing_address": sold.customer.billing_address,
        "metadata": cs.metadata,
        "data": {
            "name": sold.customer.name,
            "email": sold.customer.email,
            "referer": Value::Null,
            "cancel_url": cs.cancel_url,
            "success_url": cs.success_url,
            "tax_behavior": cs.quote.tax_behavior,
            "discounts_enabled": cs.discounts_enabled,
        },
        "created_on": iso_seconds(cs.created_at),
        "modified_on": iso_seconds(cs.modified_at),
    })
}

/// The snake_case object of `payment_method.*` events.
pub fn payment_method_object(
    id: i64,
    pm: &PaymentMethod,
    is_default: bool,
    customer: &Customer,
    tenant: &Tenant,
) -> Value {
    json!({
        "object": "payment_method",
        "organization": tenant.org_id.to_string(),
        "id": id,
        "customer_id": customer.customer_id,
        "customer": customer_summary(customer),
        "method_type": pm.method_type,
        "method_data": {"brand": pm.brand, "last4": pm.last4, "exp_month": pm.exp_month, "exp_year": pm.exp_year,
            "funding": pm.funding, "country": pm.country},
        "is_default": is_default,
        "status": pm.status,
    })
}

/// The snake_case object of `refund.*` events.
pub fn refund_object(r: &Refund, customer: &Customer, subscription_id: Option<uuid::Uuid>, tenant: &Tenant) -> Value {
    json!({
        "object": "refund",
        "organization": tenant.org_id.to_string(),
        "id": r.id.to_string(),
        "status": r.status,
        "amount": amount_text(r.amount_minor, &r.currency),
        "amount_units": r.amount_minor,
        "currency": r.currency,
        "reason": r.reason,
        "order_id": r.order_id,
        "customer": customer_summary(customer),
        "subscription_id": subscription_id.map(|i| i.to_string()),
    })
}

/// The snake_case object of an endpoint in `endpoint.disabled` and `webhook.test`.
pub fn endpoint_object(e: &crate::webhooks::Endpoint, tenant: &Tenant) -> Value {
    json!({
        "object": "webhook_endpoint",
        "organization": tenant.org_id.to_string(),
        "id": e.id.to_string(),
        "url": e.url,
        "description": e.description,
        "event_types": e.event_types,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "failing_since": time_opt(e.failing_since),
        "created_on": iso_seconds(e.created_at),
        "modified_on": iso_seconds(e.modified_at),
    })
}

/// The notice that an endpoint was disabled (it kept failing, or answered 410).
pub fn endpoint_disabled(e: &crate::webhooks::Endpoint, tenant: &Tenant, now: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent::new("endpoint.disabled", endpoint_object(e, tenant), None, now)
}

/// The event `POST /webhooks/endpoints/{id}/test/` sends.
pub fn webhook_test(e: &crate::webhooks::Endpoint, tenant: &Tenant, now: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent::new("webhook.test", endpoint_object(e, tenant), None, now)
}
