//! Usage reporting with the Python SDK's behaviour (spec §5.3): queued
//! reports are flushed first, the cached entitlements are updated
//! optimistically, and a report that cannot reach the server (no status) is
//! kept and answered with a synthetic response; it is sent by a later call
//! or [`Reporting::flush`].

use crate::cache::Cache;
use crate::http::{decode, Host, Http};
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A usage report. `behaviour` is `SET` or `DELTA` (any case).
#[derive(Debug, Clone)]
pub struct ReportUsage {
    pub value: i64,
    pub customer_id: String,
    pub feature_id: String,
    pub behaviour: String,
    pub resource_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub value: i64,
    pub customer_id: String,
    pub feature_id: String,
    pub behaviour: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    pub org_id: String,
    pub event_name: String,
    pub idempotency_key: String,
    pub timestamp: String,
}

/// A raw event. `timestamp` is `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
#[derive(Debug, Clone, Default)]
pub struct ReportEvent {
    pub customer_id: String,
    pub event_name: String,
    pub idempotency_key: String,
    pub timestamp: String,
    pub resource_id: Option<String>,
    pub properties: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    pub customer_id: String,
    pub event_name: String,
    pub idempotency_key: String,
    pub timestamp: String,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub properties: Option<Value>,
    pub org_id: String,
}

/// One event's result in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub idempotency_key: Value,
    /// accepted, duplicate or rejected.
    pub status: String,
    #[serde(default)]
    pub errors: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub results: Vec<BatchResult>,
}

fn validation(field: &str, message: &str) -> Error {
    Error::invalid_request(
        format!("Invalid parameters: {field} {message}"),
        Some(json!([{ "loc": [field], "msg": message, "type": "value_error" }])),
    )
}

fn utc_now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

const USAGE_PATH: &str = "/report/usage/";
const EVENT_PATH: &str = "/report/event/";

pub struct Reporting<'a> {
    http: &'a Http,
    cache: &'a Cache,
}

impl<'a> Reporting<'a> {
    pub(crate) fn new(http: &'a Http, cache: &'a Cache) -> Self {
        Self { http, cache }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let url = self.http.url(Host::Core, &segments, true);
        self.http.request(Method::POST, url, &[], Some(body)).await
    }

    /// Sends the queued reports in order. The first one the server cannot be
    /// reached for is put back with everything after it; one the server
    /// answers with an error is dropped (as the Python SDK does). Returns how
    /// many still wait.
    pub async fn flush(&self) -> usize {
        let items = self.cache.take_queue().await;
        for (i, item) in items.iter().enumerate() {
            let path = item["path"].as_str().unwrap_or(USAGE_PATH);
            match self.post(path, &item["data"]).await {
                Ok(_) => {}
                Err(e) if e.status().is_none() => {
                    let left = items[i..].to_vec();
                    let n = left.len();
                    self.cache.requeue_front(left).await;
                    return n;
                }
                Err(e) => tracing::warn!(error = %e, "a queued report was refused; dropping it"),
            }
        }
        0
    }

    /// `POST /report/usage/`.
    pub async fn report_usage(&self, report: ReportUsage) -> Result<UsageReport, Error> {
        self.flush().await;
        if report.customer_id.is_empty() {
            return Err(validation("customerId", "String should have at least 1 character"));
        }
        if report.feature_id.is_empty() {
            return Err(validation("featureId", "String should have at least 1 character"));
        }
        let behaviour = report.behaviour.to_ascii_uppercase();
        if behaviour != "SET" && behaviour != "DELTA" {
            return Err(validation("behaviour", "Input should be 'SET' or 'DELTA'"));
        }
        self.cache.apply_usage(&report.customer_id, &report.feature_id, report.value, &behaviour);
        let mut body = json!({"value": report.value, "customerId": report.customer_id, "featureId": report.feature_id, "behaviour": behaviour});
        if let Some(r) = &report.resource_id {
            body["resourceId"] = json!(r);
        }
        match self.post(USAGE_PATH, &body).await {
            Ok(v) => decode(v),
            Err(e) if e.status().is_none() => {
                tracing::warn!(error = %e, "server unreachable; the usage report is queued");
                self.cache.enqueue(json!({"path": USAGE_PATH, "data": body, "kind": "usage"})).await;
                Ok(UsageReport {
                    value: report.value,
                    customer_id: report.customer_id,
                    feature_id: report.feature_id,
                    behaviour,
                    resource_id: report.resource_id,
                    org_id: String::new(),
                    event_name: "$usage.reported".into(),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    timestamp: utc_now_text(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /report/event/`: processed at most once per idempotency key.
    pub async fn report_event(&self, event: ReportEvent) -> Result<EventReport, Error> {
        self.flush().await;
        for (field, value) in [
            ("customerId", &event.customer_id),
            ("eventName", &event.event_name),
            ("idempotencyKey", &event.idempotency_key),
        ] {
            if value.is_empty() {
                return Err(validation(field, "String should have at least 1 character"));
            }
        }
        if chrono::NaiveDateTime::parse_from_str(&event.timestamp, "%Y-%m-%d %H:%M:%S%.f").is_err()
            || !event.timestamp.contains('.')
        {
            return Err(validation("timestamp", "timestamp must be in format YYYY-MM-DD HH:MM:SS.ffffff"));
        }
        let body = event_body(&event);
        match self.post(EVENT_PATH, &body).await {
            Ok(v) => decode(v),
            Err(e) if e.status().is_none() => {
                tracing::warn!(error = %e, "server unreachable; the event is queued");
                self.cache.enqueue(json!({"path": EVENT_PATH, "data": body, "kind": "event"})).await;
                Ok(EventReport {
                    customer_id: event.customer_id,
                    event_name: event.event_name,
                    idempotency_key: event.idempotency_key,
                    timestamp: event.timestamp,
                    resource_id: event.resource_id,
                    properties: event.properties.map(Value::Object),
                    org_id: String::new(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Beyond Kelviq: up to 1000 events in one request, each with its own result.
    pub async fn report_events_batch(&self, events: Vec<ReportEvent>) -> Result<BatchResponse, Error> {
        if events.len() > 1000 {
            return Err(validation("events", "At most 1000 events per batch"));
        }
        let body = json!({ "events": events.iter().map(event_body).collect::<Vec<_>>() });
        decode(self.post("/report/events/batch/", &body).await?)
    }
}

fn event_body(e: &ReportEvent) -> Value {
    let mut body = json!({"customerId": e.customer_id, "eventName": e.event_name, "idempotencyKey": e.idempotency_key, "timestamp": e.timestamp});
    if let Some(r) = &e.resource_id {
        body["resourceId"] = json!(r);
    }
    if let Some(p) = &e.properties {
        body["properties"] = Value::Object(p.clone());
    }
    body
}
