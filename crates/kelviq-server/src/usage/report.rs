//! Reporting usage (spec §1.4): pre-aggregated usage (`SET`/`DELTA`), raw
//! events matched to RAW_EVENTS meters, a batch of events, and the atomic
//! consume. Each is validated here and handed to the writer.

use super::engine::{self as entitlements, CustomerState};
use super::meters::{meter_feature, tenant_catalog, TenantCatalog};
use super::{AlertSpec, ConsumeOp, EventData, Item, Op, Target};
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::http::input::required_string;
use crate::state::AppState;
use crate::wire::stored_answer;
use crate::wire::usage::{BatchOut, ConsumeOut, EventOut, EventResult, UsageReportOut};
use chrono::{DateTime, Utc};
use kelviq_core::catalog::Feature;
use kelviq_core::ids::hex32;
use kelviq_core::meters::{Step, MAX_USAGE_VALUE};
use kelviq_core::timefmt::{parse_report_timestamp, report_timestamp};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{CounterChange, StoredEvent};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

fn feature_object(f: &Feature) -> Value {
    json!({"id": f.id.to_string(), "name": f.name, "identifier": f.identifier, "feature_type": f.feature_type.as_str()})
}

/// The alert settings of a feature's first grant, with the feature's limit.
pub(super) fn alert_spec(customer: &CustomerState, f: &Feature, now: DateTime<Utc>) -> Option<AlertSpec> {
    let g = customer.grants_of(&f.identifier).next()?;
    let (kind, thresholds) = g.alerts()?;
    let (limit, _) = customer.feature_limit(&f.identifier, now);
    Some(AlertSpec {
        kind,
        thresholds,
        limit,
        feature: feature_object(f),
        subscription_id: g.subscription_id,
        period_end: g.window(now).1,
    })
}

pub(super) async fn customer(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
) -> ServiceResult<Arc<CustomerState>> {
    entitlements::load(state, tenant, customer_id)
        .await?
        .ok_or_else(|| ServiceError::field("customer_id", format!("Customer \"{customer_id}\" does not exist.")))
}

fn org_id(tenant: &Tenant) -> String {
    tenant.org_seq.to_string()
}

/// Body of `POST /report/usage/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UsageIn {
    #[schema(value_type = i64)]
    pub value: Option<Value>,
    pub customer_id: Option<String>,
    /// The feature's identifier.
    pub feature_id: Option<String>,
    /// SET (replace) or DELTA (add).
    pub behaviour: Option<String>,
    pub resource_id: Option<String>,
    /// Optional (beyond Kelviq): a repeated key is not counted again.
    pub idempotency_key: Option<String>,
}

/// Report usage of a meter feature: `SET` replaces, `DELTA` adds.
pub async fn report_usage(state: &AppState, tenant: Tenant, input: UsageIn) -> ServiceResult<UsageReportOut> {
    let mut errors = FieldErrors::new();
    let customer_id = required_string(&input.customer_id, "customer_id", &mut errors);
    let feature_id = required_string(&input.feature_id, "feature_id", &mut errors);
    let behaviour = required_string(&input.behaviour, "behaviour", &mut errors).to_ascii_uppercase();
    if !behaviour.is_empty() && behaviour != "SET" && behaviour != "DELTA" {
        errors.add("behaviour", format!("\"{behaviour}\" is not a valid choice: SET or DELTA."));
    }
    let value = match input.value.as_ref() {
        None | Some(Value::Null) => {
            errors.add("value", "This field is required.");
            0
        }
        Some(v) => match v.as_i64() {
            Some(n) if behaviour == "SET" && n < 0 => {
                errors.add("value", "A SET value cannot be negative.");
                n
            }
            Some(n) if n.unsigned_abs() > MAX_USAGE_VALUE as u64 => {
                errors.add("value", format!("Ensure this value is at most {MAX_USAGE_VALUE} in magnitude."));
                n
            }
            Some(n) => n,
            None => {
                errors.add("value", "A valid integer is required.");
                0
            }
        },
    };
    errors.into_result()?;
    let now = tenant_now(state, &tenant).await?;
    let catalog = tenant_catalog(state, &tenant).await?;
    let feature = meter_feature(&catalog, &feature_id)?;
    let customer = customer(state, &tenant, &customer_id).await?;
    let (period_start, _) = customer.counting_window(&feature.identifier, now);
    // A negative DELTA lowers usage, never below zero.
    let change = match behaviour.as_str() {
        "SET" => CounterChange::Set(value),
        _ if value < 0 => CounterChange::Reduce(-value),
        _ => CounterChange::Add(value),
    };
    let mut response = json!({
        "value": value,
        "customerId": customer_id,
        "featureId": feature_id,
        "behaviour": behaviour,
        "orgId": org_id(&tenant),
        "eventName": "aggregated.usage",
        "idempotencyKey": input.idempotency_key.clone().unwrap_or_else(hex32),
        "timestamp": report_timestamp(now),
    });
    if let Some(r) = &input.resource_id {
        response["resourceId"] = json!(r);
    }
    let target = Target {
        feature: feature.identifier.clone(),
        period_start,
        change,
        alerts: alert_spec(&customer, feature, now),
    };
    let key = input.idempotency_key.filter(|k| !k.is_empty());
    let sent = response.clone();
    let op = Op::Report { key, targets: vec![target], response };
    let outcome = state.ingest.submit_one(tenant, now, customer_id, op).await?;
    if outcome.duplicate && !same_request(&outcome.response, &sent, &["customerId", "featureId", "value", "behaviour"])
    {
        return Err(key_reused());
    }
    stored_answer(outcome.response)
}

/// Body of `POST /report/event/` (the aliases let a batch's events be read
/// straight from the request text).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EventIn {
    #[serde(alias = "customerId")]
    pub customer_id: Option<String>,
    #[serde(alias = "eventName")]
    pub event_name: Option<String>,
    /// Client-made; an event is processed at most once per key.
    #[serde(alias = "idempotencyKey")]
    pub idempotency_key: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC.
    pub timestamp: Option<String>,
    #[serde(alias = "resourceId")]
    pub resource_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
}

/// A raw event's answer: the event as received, with `orgId`.
fn event_response(tenant: &Tenant, customer_id: &str, event: &EventData, properties: Value) -> Value {
    let mut response = json!({
        "customerId": customer_id,
        "eventName": event.event_name,
        "idempotencyKey": event.key,
        "timestamp": report_timestamp(event.at),
        "properties": properties,
        "orgId": org_id(tenant),
    });
    if let Some(r) = &event.resource_id {
        response["resourceId"] = json!(r);
    }
    response
}

/// The answer to a repeated key: the first event's.
fn stored_response(tenant: &Tenant, e: StoredEvent) -> Value {
    let properties = serde_json::from_str(&e.properties).unwrap_or_else(|_| json!({}));
    let event = EventData {
        key: e.key,
        event_name: e.event_name,
        at: e.at,
        resource_id: e.resource_id,
        properties: e.properties,
    };
    event_response(tenant, &e.customer_id, &event, properties)
}

/// How far ahead of the server's clock (the tenant's, with its test clock)
/// an event may be dated: clients' clocks drift and batches are stamped
/// before they are sent. A later one is refused, so that no event dated in
/// a later period is counted in this one or pins a LATEST meter.
pub const MAX_EVENT_SKEW: chrono::Duration = chrono::Duration::days(1);

/// Validates an event and works out the counters it changes.
async fn prepare_event(
    state: &AppState,
    tenant: &Tenant,
    catalog: &TenantCatalog,
    input: EventIn,
    now: DateTime<Utc>,
) -> ServiceResult<(Item, Map<String, Value>)> {
    let mut errors = FieldErrors::new();
    let customer_id = required_string(&input.customer_id, "customer_id", &mut errors);
    let event_name = required_string(&input.event_name, "event_name", &mut errors);
    let key = required_string(&input.idempotency_key, "idempotency_key", &mut errors);
    let ts = required_string(&input.timestamp, "timestamp", &mut errors);
    let at = parse_report_timestamp(&ts);
    if !ts.is_empty() && at.is_none() {
        errors.add("timestamp", "Use the format YYYY-MM-DD HH:MM:SS.ffffff (UTC).");
    }
    if at.is_some_and(|at| at > now + MAX_EVENT_SKEW) {
        errors.add(
            "timestamp",
            format!(
                "The event is dated more than {} seconds ahead of the server's clock.",
                MAX_EVENT_SKEW.num_seconds()
            ),
        );
    }
    let properties = match input.properties.map(kelviq_core::casing::underscoreize) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            errors.add("properties", "Expected a dictionary of items.");
            Map::new()
        }
    };
    if let Some(path) = kelviq_core::meters::oversized_property(&properties) {
        errors
            .add(&format!("properties.{path}"), format!("Ensure numbers are at most {MAX_USAGE_VALUE} in magnitude."));
    }
    if input.resource_id.as_deref().is_some_and(|r| r.chars().any(char::is_control)) {
        errors.add("resource_id", "Control characters are not allowed.");
    }
    errors.into_result()?;
    let at = at.expect("checked");
    let customer = customer(state, tenant, &customer_id).await?;
    let event = kelviq_core::meters::RawEvent { event_name: &event_name, properties: &properties, timestamp: at };
    let mut targets = Vec::new();
    for (feature, meter) in catalog.meters() {
        if !meter.matches(&event) {
            continue;
        }
        // The current period counts (and an earlier billing period, for usage
        // billed in arrears); an older event is stored, not counted.
        let Some(start) = customer.event_window(&feature.identifier, at, now) else { continue };
        let change = match meter.step(&event) {
            Step::Add(n) => CounterChange::Add(n),
            Step::Max(n) => CounterChange::Max(n),
            Step::Latest(n) => CounterChange::Latest(n, kelviq_core::timefmt::to_micros(at)),
            Step::Unique(s) => CounterChange::Unique(s),
            Step::Skip => continue,
        };
        targets.push(Target {
            feature: feature.identifier.clone(),
            period_start: start,
            change,
            alerts: alert_spec(&customer, feature, now),
        });
    }
    targets.sort_by(|a, b| a.feature.cmp(&b.feature));
    let event = EventData {
        key,
        event_name,
        at,
        resource_id: input.resource_id,
        properties: serde_json::to_string(&properties).expect("a map serialises"),
    };
    Ok((Item { customer_id, op: Op::Event { event, targets } }, properties))
}

/// The answer to a key used before for a different request: the key is
/// bound to its first request (Stripe's rule), so nothing is counted and the
/// first answer is not handed to another request.
fn key_reused() -> ServiceError {
    ServiceError::FieldConflict(FieldErrors::single(
        "idempotency_key",
        "This key was already used for a different request; use a new key.",
    ))
}

/// Whether a first answer (of a usage report or a consume) was given to the
/// same request: each named field of the request is the same in it.
fn same_request(first: &Value, sent: &Value, fields: &[&str]) -> bool {
    fields.iter().all(|f| first.get(f) == sent.get(f))
}

/// Report a raw event; a repeated `idempotencyKey` answers as the first time and counts nothing.
pub async fn report_event(state: &AppState, tenant: Tenant, input: EventIn) -> ServiceResult<EventOut> {
    let now = tenant_now(state, &tenant).await?;
    let catalog = tenant_catalog(state, &tenant).await?;
    let (item, properties) = prepare_event(state, &tenant, &catalog, input, now).await?;
    let Op::Event { event, .. } = &item.op else { unreachable!("prepare_event makes events") };
    let response = event_response(&tenant, &item.customer_id, event, Value::Object(properties));
    let outcome = state.ingest.submit(tenant.clone(), now, vec![item]).await?.pop();
    if outcome.as_ref().is_some_and(|o| o.key_reused) {
        return Err(key_reused());
    }
    stored_answer(match outcome.and_then(|o| o.original) {
        Some(original) => stored_response(&tenant, original),
        None => response,
    })
}

/// Body of `POST /report/events/batch/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchIn {
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<Box<serde_json::value::RawValue>>>,
}

pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// Up to 1000 events in one request; each gets its own result.
pub async fn report_events_batch(state: &AppState, tenant: Tenant, body: &[u8]) -> ServiceResult<BatchOut> {
    // Each event is read straight from the request text, on its own, so that
    // one malformed event is rejected alone.
    let input: BatchIn = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ServiceError::field("events", "Expected {\"events\": [event, …]}."),
        _ => ServiceError::BadRequest(format!("JSON parse error - {e}")),
    })?;
    let events = input.events.ok_or_else(|| ServiceError::field("events", "This field is required."))?;
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ServiceError::field("events", format!("At most {MAX_EVENTS_PER_BATCH} events per batch.")));
    }
    let now = tenant_now(state, &tenant).await?;
    let catalog = tenant_catalog(state, &tenant).await?;
    let mut items = Vec::with_capacity(events.len());
    let mut positions = Vec::with_capacity(events.len());
    let mut results: Vec<EventResult> = std::iter::repeat_with(EventResult::default).take(events.len()).collect();
    let mut rejected = 0;
    for (i, raw) in events.iter().enumerate() {
        let ready = match crate::http::extract::from_json_object::<EventIn>(raw.get()) {
            Ok(e) => prepare_event(state, &tenant, &catalog, e, now).await,
            // Only field errors: the event was not a readable object.
            Err(crate::http::error::ApiError::Fields(f)) => Err(ServiceError::Fields(f)),
            Err(other) => Err(ServiceError::BadRequest(other.to_string())),
        };
        match ready {
            Ok((item, _)) => {
                positions.push(i);
                items.push(item);
            }
            Err(e) => {
                rejected += 1;
                let sent: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                let key = sent.get("idempotencyKey").or_else(|| sent.get("idempotency_key")).cloned();
                results[i] = EventResult { key, status: "rejected", errors: Some(error_body(e)) };
            }
        }
    }
    let keys: Vec<String> = items
        .iter()
        .map(|item| match &item.op {
            Op::Event { event, .. } => event.key.clone(),
            _ => String::new(),
        })
        .collect();
    // The whole batch goes to the writer as one job, so it shares one commit.
    let outcomes = state.ingest.submit(tenant, now, items).await?;
    let (mut accepted, mut duplicates) = (0, 0);
    for ((i, key), outcome) in positions.into_iter().zip(keys).zip(outcomes) {
        if outcome.key_reused {
            rejected += 1;
            results[i] = EventResult {
                key: Some(Value::String(key)),
                status: "rejected",
                errors: Some(error_body(key_reused())),
            };
            continue;
        }
        let status = if outcome.duplicate {
            duplicates += 1;
            "duplicate"
        } else {
            accepted += 1;
            "accepted"
        };
        results[i] = EventResult { key: Some(Value::String(key)), status, errors: None };
    }
    Ok(BatchOut { accepted, duplicates, rejected, results })
}

fn error_body(e: ServiceError) -> Value {
    match e {
        ServiceError::Fields(f) | ServiceError::FieldConflict(f) => json!(f.fields()),
        other => json!({"detail": other.to_string()}),
    }
}

/// Body of `POST /entitlements/consume/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsumeIn {
    pub customer_id: Option<String>,
    pub feature_id: Option<String>,
    /// How much to use (at least 1).
    #[schema(value_type = i64)]
    pub value: Option<Value>,
    /// A retried key answers as the first time and deducts nothing.
    pub idempotency_key: Option<String>,
}

/// Check and deduct in one atomic step: a hard limit is never exceeded.
pub async fn consume(state: &AppState, tenant: Tenant, input: ConsumeIn) -> ServiceResult<ConsumeOut> {
    let mut errors = FieldErrors::new();
    let customer_id = required_string(&input.customer_id, "customer_id", &mut errors);
    let feature_id = required_string(&input.feature_id, "feature_id", &mut errors);
    let key = required_string(&input.idempotency_key, "idempotency_key", &mut errors);
    let value = match input.value.as_ref().and_then(Value::as_i64) {
        Some(v) if (1..=MAX_USAGE_VALUE).contains(&v) => v,
        _ => {
            errors.add("value", format!("A whole number from 1 to {MAX_USAGE_VALUE} is required."));
            0
        }
    };
    errors.into_result()?;
    let now = tenant_now(state, &tenant).await?;
    let catalog = tenant_catalog(state, &tenant).await?;
    let feature = meter_feature(&catalog, &feature_id)?;
    let customer = customer(state, &tenant, &customer_id).await?;
    let response = json!({"customerId": customer_id, "featureId": feature_id, "value": value, "idempotencyKey": key});
    let sent = response.clone();
    if customer.grants_of(&feature.identifier).next().is_none() {
        let mut r = response;
        r["allowed"] = json!(false);
        r["reason"] = json!("The customer is not entitled to this feature.");
        return stored_answer(r);
    }
    let (period_start, _) = customer.counting_window(&feature.identifier, now);
    let (limit, hard) = customer.feature_limit(&feature.identifier, now);
    let op = Op::Consume(ConsumeOp {
        key,
        feature: feature.identifier.clone(),
        period_start,
        value,
        limit,
        hard,
        alerts: alert_spec(&customer, feature, now),
        response,
    });
    let outcome = state.ingest.submit_one(tenant, now, customer_id, op).await?;
    if outcome.duplicate && !same_request(&outcome.response, &sent, &["customerId", "featureId", "value"]) {
        return Err(key_reused());
    }
    stored_answer(outcome.response)
}
