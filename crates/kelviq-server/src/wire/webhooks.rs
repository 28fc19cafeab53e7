//! Webhook endpoints, events, attempts and the delivery log as the API
//! shows them (camelCase; the log exactly as Kelviq publishes it, §1.6).

use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::{iso_micros, iso_seconds};
use kelviq_core::webhooks::Endpoint;
use kelviq_store::{AttemptRow, LogRow};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A webhook endpoint. Its secret is shown only when it is made or rotated.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// `manual`, `gone` (it answered 410) or `failing` (failing for days).
    pub disabled_reason: Option<String>,
    /// Most messages a second; null: unlimited.
    pub rate_limit: Option<i64>,
    pub fifo: bool,
    /// `kelviq` (one hex signature, as the official SDKs verify) or `standard` (Standard Webhooks).
    pub signature_format: String,
    /// Failing since (no success since then).
    pub failing_since: Option<String>,
    pub created_on: String,
    pub modified_on: String,
    /// Only in the answer that made the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointOut {
    pub fn new(e: &Endpoint, secret: Option<String>) -> Self {
        EndpointOut {
            id: e.id.to_string(),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            rate_limit: e.rate_limit,
            fifo: e.fifo,
            signature_format: e.signature_format.as_str().to_string(),
            failing_since: e.failing_since.map(iso_seconds),
            created_on: iso_micros(e.created_at),
            modified_on: iso_micros(e.modified_at),
            secret,
        }
    }
}

/// A new signing secret (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretOut {
    pub secret: String,
}

/// An event, as it was (and is) delivered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    /// The envelope exactly as delivered: `{id, type, created_at, data}`.
    pub payload: Value,
}

impl EventOut {
    pub fn new(e: OutboxEvent) -> Self {
        EventOut {
            id: e.id.to_string(),
            event_type: e.event_type,
            created_at: iso_seconds(e.created_at),
            payload: e.payload,
        }
    }
}

/// One attempt to deliver an event to an endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptOut {
    pub id: String,
    pub endpoint_id: String,
    pub attempted_at: String,
    /// Null: no answer (timeout, refused connection, refused address).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The first 4 KiB of the answer, or why there was none.
    pub response_excerpt: String,
    /// When the next attempt is due; null: none is.
    pub next_attempt_at: Option<String>,
}

impl AttemptOut {
    pub fn new(a: AttemptRow) -> Self {
        AttemptOut {
            id: a.id.to_string(),
            endpoint_id: a.endpoint_id.to_string(),
            attempted_at: iso_micros(a.attempted_at),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            next_attempt_at: a.next_attempt_at.map(iso_micros),
        }
    }
}

/// A row of `GET /webhook/logs/`: an event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLogOut {
    pub id: String,
    pub event_id: String,
    /// The endpoint's id.
    pub endpoint: String,
    pub event_type: String,
    pub status_code: Option<i64>,
    pub is_success: bool,
    /// Attempts after the first.
    pub retry_count: i64,
    pub last_attempt: Option<String>,
    pub created_on: String,
    pub payload: Value,
}

impl WebhookLogOut {
    pub fn new(row: LogRow) -> Self {
        WebhookLogOut {
            id: row.id.to_string(),
            event_id: row.event_id.to_string(),
            endpoint: row.endpoint_id.to_string(),
            event_type: row.event_type,
            status_code: row.last_status,
            is_success: row.status == "SUCCEEDED",
            retry_count: (row.attempts - 1).max(0),
            last_attempt: row.last_attempt_at.map(iso_micros),
            created_on: iso_micros(row.created_at),
            payload: row.payload,
        }
    }
}

/// How many deliveries a resend or a recovery queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuedOut {
    pub queued: u64,
}

/// The event a test sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSentOut {
    pub event_id: String,
}
