//! Usage reporting (spec §1.4): pre-aggregated usage (`SET`/`DELTA`), raw
//! events feeding RAW_EVENTS meters, a batch of events, the atomic consume,
//! and the admin overrides of a customer's entitlements.

use crate::app::AppState;
use crate::entitlements::{self, CustomerState};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, JsonBytes, ServerCaller};
use crate::ingest::{AlertSpec, ConsumeOp, EventData, Item, Op, Target};
use crate::selling::tenant_now;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use kelviq_core::catalog::{Feature, FeatureType};
use kelviq_core::ids::hex32;
use kelviq_core::meters::{matches, step, Step, MAX_USAGE_VALUE};
use kelviq_core::timefmt::{from_micros, parse_report_timestamp, report_timestamp};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{CounterChange, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/report/usage", post(report_usage))
        .route("/report/event", post(report_event))
        .route("/report/events/batch", post(report_events_batch))
        .route("/entitlements/consume", post(consume))
        .route("/customers/{customer_id}/entitlements/{feature}/override", put(set_override).delete(revert_override))
        .route("/customers/{customer_id}/entitlements/{feature}/reset", post(reset_usage))
}

/// How long a tenant's features are trusted before they are read again
/// (catalog changes reach ingestion within this time).
const CATALOG_TTL: Duration = Duration::from_secs(1);

/// The tenant's features, by identifier, and its RAW_EVENTS meters.
#[derive(Debug)]
pub struct TenantCatalog {
    pub features: HashMap<String, Feature>,
    meters: Vec<Meter>,
}

/// A RAW_EVENTS meter, read from its feature once per catalog load.
#[derive(Debug)]
struct Meter {
    feature: Feature,
    function: String,
    field: Option<String>,
    filters: Option<Value>,
}

impl TenantCatalog {
    fn new(features: HashMap<String, Feature>) -> TenantCatalog {
        let mut meters: Vec<Meter> = features
            .values()
            .filter_map(|f| {
                let meter = f.meter.as_ref()?;
                Some(Meter {
                    feature: f.clone(),
                    function: meter["aggregation"]["function"].as_str()?.to_string(),
                    field: meter["aggregation"]["field"].as_str().map(str::to_string),
                    filters: meter.get("filters").cloned(),
                })
            })
            .collect();
        meters.sort_by(|a, b| a.feature.identifier.cmp(&b.feature.identifier));
        TenantCatalog { features, meters }
    }

    /// RAW_EVENTS meters: feature, aggregation function, field, filters.
    fn meters(&self) -> impl Iterator<Item = (&Feature, &str, Option<&str>, Option<&Value>)> {
        self.meters.iter().map(|m| (&m.feature, m.function.as_str(), m.field.as_deref(), m.filters.as_ref()))
    }
}

type CatalogCache = Mutex<HashMap<(uuid::Uuid, &'static str), (Instant, Arc<TenantCatalog>)>>;

fn catalog_cache() -> &'static CatalogCache {
    static CACHE: std::sync::OnceLock<CatalogCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Drops a tenant's cached features: the process that changed them counts
/// by the change at once (other processes within [`CATALOG_TTL`]).
pub fn forget_catalog(tenant: &Tenant) {
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).remove(&(tenant.org_id, tenant.env.as_str()));
}

/// Drops every tenant's cached features (a catalog change announced by the feed).
pub fn forget_all_catalogs() {
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

pub async fn tenant_catalog(state: &AppState, tenant: &Tenant) -> ApiResult<Arc<TenantCatalog>> {
    let k = (tenant.org_id, tenant.env.as_str());
    if let Some((at, c)) = catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
        if at.elapsed() < CATALOG_TTL {
            return Ok(c.clone());
        }
    }
    let features = state
        .store
        .features_by_id(tenant)
        .await?
        .into_values()
        .filter(|f| f.archived_at.is_none())
        .map(|f| (f.identifier.clone(), f))
        .collect();
    let c = Arc::new(TenantCatalog::new(features));
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).insert(k, (Instant::now(), c.clone()));
    Ok(c)
}

fn feature_object(f: &Feature) -> Value {
    json!({"id": f.id.to_string(), "name": f.name, "identifier": f.identifier, "feature_type": f.feature_type.as_str()})
}

/// The alert settings of a feature's first grant, with the feature's limit.
fn alert_spec(customer: &CustomerState, f: &Feature, now: DateTime<Utc>) -> Option<AlertSpec> {
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

async fn customer(state: &AppState, tenant: &Tenant, customer_id: &str) -> ApiResult<Arc<CustomerState>> {
    entitlements::load(state, tenant, customer_id)
        .await?
        .ok_or_else(|| ApiError::field("customer_id", format!("Customer \"{customer_id}\" does not exist.")))
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

fn required(v: &Option<String>, field: &str, errors: &mut FieldErrors) -> String {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().any(char::is_control) => {
            errors.add(field, "Control characters are not allowed.");
            String::new()
        }
        Some(s) => s.to_string(),
        None => {
            errors.add(field, "This field is required.");
            String::new()
        }
    }
}

/// A meter feature of the tenant, or a 400 naming `featureId`.
fn meter_feature<'a>(catalog: &'a TenantCatalog, identifier: &str) -> ApiResult<&'a Feature> {
    let f = catalog
        .features
        .get(identifier)
        .ok_or_else(|| ApiError::field("feature_id", format!("Feature \"{identifier}\" does not exist.")))?;
    if f.feature_type != FeatureType::Meter {
        return Err(ApiError::field("feature_id", format!("Feature \"{identifier}\" is not a METER feature.")));
    }
    Ok(f)
}

/// Report usage of a meter feature: `SET` replaces, `DELTA` adds.
#[utoipa::path(post, path = "/api/v1/report/usage/", tag = "reporting", request_body = UsageIn, security(("bearer" = [])),
    responses((status = 200, description = "The report, with `orgId`, `eventName`, `idempotencyKey`, `timestamp`"), (status = 400), (status = 401)))]
pub async fn report_usage(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<UsageIn>,
) -> ApiResult<Json<Value>> {
    let mut errors = FieldErrors::new();
    let customer_id = required(&input.customer_id, "customer_id", &mut errors);
    let feature_id = required(&input.feature_id, "feature_id", &mut errors);
    let behaviour = required(&input.behaviour, "behaviour", &mut errors).to_ascii_uppercase();
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
    let now = tenant_now(&state, &tenant).await?;
    let catalog = tenant_catalog(&state, &tenant).await?;
    let feature = meter_feature(&catalog, &feature_id)?;
    let customer = customer(&state, &tenant, &customer_id).await?;
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
    Ok(Json(outcome.response))
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
) -> ApiResult<(Item, Map<String, Value>)> {
    let mut errors = FieldErrors::new();
    let customer_id = required(&input.customer_id, "customer_id", &mut errors);
    let event_name = required(&input.event_name, "event_name", &mut errors);
    let key = required(&input.idempotency_key, "idempotency_key", &mut errors);
    let ts = required(&input.timestamp, "timestamp", &mut errors);
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
    for (feature, function, field, filters) in catalog.meters() {
        if !matches(filters, &event) {
            continue;
        }
        // Only the current period counts; an older event is stored, not counted.
        let (start, _) = customer.counting_window(&feature.identifier, now);
        if start > 0 && at < from_micros(start) {
            continue;
        }
        let change = match step(function, field, &event) {
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
fn key_reused() -> ApiError {
    ApiError::FieldConflict(FieldErrors::single(
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
#[utoipa::path(post, path = "/api/v1/report/event/", tag = "reporting", request_body = EventIn, security(("bearer" = [])),
    responses((status = 200, description = "The event, with `orgId`"), (status = 400), (status = 401)))]
pub async fn report_event(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<EventIn>,
) -> ApiResult<Json<Value>> {
    let now = tenant_now(&state, &tenant).await?;
    let catalog = tenant_catalog(&state, &tenant).await?;
    let (item, properties) = prepare_event(&state, &tenant, &catalog, input, now).await?;
    let Op::Event { event, .. } = &item.op else { unreachable!("prepare_event makes events") };
    let response = event_response(&tenant, &item.customer_id, event, Value::Object(properties));
    let outcome = state.ingest.submit(tenant.clone(), now, vec![item]).await?.pop();
    if outcome.as_ref().is_some_and(|o| o.key_reused) {
        return Err(key_reused());
    }
    Ok(Json(match outcome.and_then(|o| o.original) {
        Some(original) => stored_response(&tenant, original),
        None => response,
    }))
}

/// Body of `POST /report/events/batch/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchIn {
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<Box<serde_json::value::RawValue>>>,
}

pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// Up to 1000 events in one request; each gets its own result.
#[utoipa::path(post, path = "/api/v1/report/events/batch/", tag = "reporting", request_body = BatchIn, security(("bearer" = [])),
    responses((status = 200, description = "`{accepted, duplicates, rejected, results: [{idempotencyKey, status, errors?}]}`"), (status = 400), (status = 401)))]
pub async fn report_events_batch(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<BatchOut>> {
    // Each event is read straight from the request text, on its own, so that
    // one malformed event is rejected alone.
    let input: BatchIn = serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::field("events", "Expected {\"events\": [event, …]}."),
        _ => ApiError::BadRequest(format!("JSON parse error - {e}")),
    })?;
    let events = input.events.ok_or_else(|| ApiError::field("events", "This field is required."))?;
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ApiError::field("events", format!("At most {MAX_EVENTS_PER_BATCH} events per batch.")));
    }
    let now = tenant_now(&state, &tenant).await?;
    let catalog = tenant_catalog(&state, &tenant).await?;
    let mut items = Vec::with_capacity(events.len());
    let mut positions = Vec::with_capacity(events.len());
    let mut results: Vec<EventResult> = std::iter::repeat_with(EventResult::default).take(events.len()).collect();
    let mut rejected = 0;
    for (i, raw) in events.iter().enumerate() {
        let ready = match crate::http::extract::from_json_object::<EventIn>(raw.get()) {
            Ok(e) => prepare_event(&state, &tenant, &catalog, e, now).await,
            Err(e) => Err(e),
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
    Ok(Json(BatchOut { accepted, duplicates, rejected, results }))
}

/// The answer to a batch of events.
#[derive(Serialize)]
pub struct BatchOut {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<EventResult>,
}

/// One event's result in a batch.
#[derive(Serialize, Default)]
pub struct EventResult {
    #[serde(rename = "idempotencyKey")]
    key: Option<Value>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Value>,
}

fn error_body(e: ApiError) -> Value {
    match e {
        ApiError::Fields(f) | ApiError::FieldConflict(f) => json!(f.fields()),
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
#[utoipa::path(post, path = "/api/v1/entitlements/consume/", tag = "reporting", request_body = ConsumeIn, security(("bearer" = [])),
    responses((status = 200, description = "`{allowed, currentUsage, usageLimit, remaining, …}`"), (status = 400), (status = 401)))]
pub async fn consume(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<ConsumeIn>,
) -> ApiResult<Json<Value>> {
    let mut errors = FieldErrors::new();
    let customer_id = required(&input.customer_id, "customer_id", &mut errors);
    let feature_id = required(&input.feature_id, "feature_id", &mut errors);
    let key = required(&input.idempotency_key, "idempotency_key", &mut errors);
    let value = match input.value.as_ref().and_then(Value::as_i64) {
        Some(v) if (1..=MAX_USAGE_VALUE).contains(&v) => v,
        _ => {
            errors.add("value", format!("A whole number from 1 to {MAX_USAGE_VALUE} is required."));
            0
        }
    };
    errors.into_result()?;
    let now = tenant_now(&state, &tenant).await?;
    let catalog = tenant_catalog(&state, &tenant).await?;
    let feature = meter_feature(&catalog, &feature_id)?;
    let customer = customer(&state, &tenant, &customer_id).await?;
    let response = json!({"customerId": customer_id, "featureId": feature_id, "value": value, "idempotencyKey": key});
    let sent = response.clone();
    if customer.grants_of(&feature.identifier).next().is_none() {
        let mut r = response;
        r["allowed"] = json!(false);
        r["reason"] = json!("The customer is not entitled to this feature.");
        return Ok(Json(r));
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
    Ok(Json(outcome.response))
}

/// Body of the override endpoint: the values that replace the plan's.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideIn {
    /// BOOLEAN: true/false; CUSTOMIZABLE: a number; METER: the limit.
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
    pub has_unlimited_usage: Option<bool>,
    pub hard_limit: Option<bool>,
    /// A METER's reset period (NEVER, EVERY_MONTH, …).
    pub reset: Option<String>,
}

async fn override_target(state: &AppState, tenant: &Tenant, customer_id: &str, feature: &str) -> ApiResult<Feature> {
    state.store.find_customer(tenant, customer_id).await?.ok_or_else(ApiError::not_found)?;
    let catalog = tenant_catalog(state, tenant).await?;
    catalog
        .features
        .get(feature)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("Feature \"{feature}\" not found.")))
}

/// Admin: give a customer their own value of a feature (with or without a plan granting it).
#[utoipa::path(put, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/override/", tag = "reporting",
    request_body = OverrideIn, security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 200, description = "The customer's rows for the feature"), (status = 400), (status = 404)))]
pub async fn set_override(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
    Body(input): Body<OverrideIn>,
) -> ApiResult<Json<Value>> {
    let f = override_target(&state, &tenant, &customer_id, &feature).await?;
    let mut doc = Map::new();
    match (f.feature_type, input.value.as_ref().filter(|v| !v.is_null())) {
        (FeatureType::Boolean, Some(Value::Bool(b))) => {
            doc.insert("value".into(), json!(b));
        }
        (FeatureType::Customizable, Some(v @ Value::Number(_))) => {
            doc.insert("value".into(), v.clone());
        }
        (FeatureType::Meter, Some(v)) if v.as_i64().is_some_and(|n| n >= 0) => {
            doc.insert("value".into(), v.clone());
        }
        (FeatureType::Meter, None) if input.has_unlimited_usage == Some(true) => {}
        (ty, _) => {
            let want = match ty {
                FeatureType::Boolean => "true or false",
                FeatureType::Customizable => "a number",
                FeatureType::Meter => "a whole number, at least 0 (or hasUnlimitedUsage: true)",
            };
            return Err(ApiError::field("value", format!("A {} feature's value is {want}.", ty.as_str())));
        }
    }
    if let Some(u) = input.has_unlimited_usage {
        doc.insert("has_unlimited_usage".into(), json!(u));
    }
    if let Some(h) = input.hard_limit {
        doc.insert("hard_limit".into(), json!(h));
    }
    if let Some(r) = &input.reset {
        if !kelviq_core::plans::RESET_PERIODS.contains(&r.as_str()) {
            return Err(ApiError::field("reset", format!("\"{r}\" is not a valid choice.")));
        }
        doc.insert("reset".into(), json!(r));
    }
    let now = tenant_now(&state, &tenant).await?;
    let mut w = state.store.begin(&tenant).await?;
    w.put_override(&customer_id, &f.identifier, Some(&Value::Object(doc)), now).await?;
    w.entitlements_changed(&customer_id, now).await?;
    crate::selling::finish(&state, w).await?;
    feature_rows(&state, &tenant, &customer_id, &f.identifier, now).await
}

async fn feature_rows(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    feature: &str,
    now: DateTime<Utc>,
) -> ApiResult<Json<Value>> {
    let c = customer(state, tenant, customer_id).await?;
    let rows: Vec<Value> =
        c.rows(now).iter().filter(|r| r.feature_id == feature).map(entitlements::Row::to_wire).collect();
    Ok(Json(json!({"customerId": customer_id, "entitlements": rows})))
}

/// Admin: revert an override; the plans' values apply again.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/override/", tag = "reporting",
    security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 204, description = "Reverted"), (status = 404, description = "No such override")))]
pub async fn revert_override(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let f = override_target(&state, &tenant, &customer_id, &feature).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut w = state.store.begin(&tenant).await?;
    if !w.put_override(&customer_id, &f.identifier, None, now).await? {
        return Err(ApiError::NotFound("This customer has no override of this feature.".into()));
    }
    w.entitlements_changed(&customer_id, now).await?;
    crate::selling::finish(&state, w).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin: reset a meter's usage in the current period to zero.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/reset/", tag = "reporting",
    security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 200, description = "The customer's rows for the feature"), (status = 400), (status = 404)))]
pub async fn reset_usage(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let f = override_target(&state, &tenant, &customer_id, &feature).await?;
    if f.feature_type != FeatureType::Meter {
        return Err(ApiError::field("feature", "Only a METER feature has usage to reset."));
    }
    let now = tenant_now(&state, &tenant).await?;
    let c = customer(&state, &tenant, &customer_id).await?;
    let (period_start, _) = c.counting_window(&f.identifier, now);
    let target = Target { feature: f.identifier.clone(), period_start, change: CounterChange::Set(0), alerts: None };
    let op = Op::Report { key: None, targets: vec![target], response: Value::Null };
    state.ingest.submit_one(tenant.clone(), now, customer_id.clone(), op).await?;
    feature_rows(&state, &tenant, &customer_id, &f.identifier, now).await
}
