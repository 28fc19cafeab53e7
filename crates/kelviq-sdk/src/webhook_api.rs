//! Webhook management on a self-hosted kelviq server: endpoints (with their
//! secrets, shown once), events with their attempts, resend, recover and
//! the delivery log. Verifying a delivery is [`crate::webhooks::validate_event`].

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A webhook endpoint. `secret` is only in the answer that made it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub rate_limit: Option<i64>,
    pub fifo: bool,
    pub signature_format: String,
    pub failing_since: Option<String>,
    pub created_on: String,
    pub modified_on: String,
    #[serde(default)]
    pub secret: Option<String>,
}

/// A new endpoint (`url` is required) or, for [`Webhooks::update_endpoint`], the fields to change.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Empty: every event type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fifo: Option<bool>,
    /// `kelviq` (default) or `standard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
}

impl EndpointParams {
    pub fn url(url: impl Into<String>) -> Self {
        EndpointParams { url: Some(url.into()), ..Default::default() }
    }
    pub fn event_types(mut self, types: &[&str]) -> Self {
        self.event_types = Some(types.iter().map(|t| t.to_string()).collect());
        self
    }
}

/// An event as delivered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub payload: Value,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    pub id: String,
    pub endpoint_id: String,
    pub attempted_at: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: String,
    pub next_attempt_at: Option<String>,
}

/// A row of the delivery log (`GET /webhook/logs/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookLog {
    pub id: String,
    pub event_id: String,
    pub endpoint: String,
    pub event_type: String,
    pub status_code: Option<i64>,
    pub is_success: bool,
    pub retry_count: i64,
    pub last_attempt: Option<String>,
    pub created_on: String,
    pub payload: Value,
}

/// Filters of [`Webhooks::list_events`].
#[derive(Debug, Clone, Default)]
pub struct ListEvents {
    pub event_type: Option<String>,
    pub customer_id: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

#[derive(Deserialize)]
struct Queued {
    queued: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    event_id: String,
}

#[derive(Deserialize)]
struct Secret {
    secret: String,
}

pub struct Webhooks<'a> {
    http: &'a Http,
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    /// `POST /webhooks/endpoints/`: the answer holds the signing secret, shown this once.
    pub async fn create_endpoint(&self, params: EndpointParams) -> Result<WebhookEndpoint, Error> {
        let body = serde_json::to_value(&params).expect("params serialise");
        decode(self.http.request(Method::POST, self.url(&["webhooks", "endpoints"]), &[], Some(&body)).await?)
    }

    pub async fn list_endpoints(&self, page: Option<u32>) -> Result<Page<WebhookEndpoint>, Error> {
        let query: Vec<(&str, String)> = page.map(|p| ("page", p.to_string())).into_iter().collect();
        decode(self.http.request(Method::GET, self.url(&["webhooks", "endpoints"]), &query, None).await?)
    }

    pub async fn retrieve_endpoint(&self, id: &str) -> Result<WebhookEndpoint, Error> {
        decode(self.http.request(Method::GET, self.url(&["webhooks", "endpoints", id]), &[], None).await?)
    }

    pub async fn update_endpoint(&self, id: &str, changes: EndpointParams) -> Result<WebhookEndpoint, Error> {
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, self.url(&["webhooks", "endpoints", id]), &[], Some(&body)).await?)
    }

    pub async fn delete_endpoint(&self, id: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(&["webhooks", "endpoints", id]), &[], None).await?;
        Ok(())
    }

    /// A new signing secret, shown this once.
    pub async fn rotate_secret(&self, id: &str) -> Result<String, Error> {
        let url = self.url(&["webhooks", "endpoints", id, "rotate-secret"]);
        let s: Secret = decode(self.http.request(Method::POST, url, &[], Some(&json!({}))).await?)?;
        Ok(s.secret)
    }

    /// Sends a `webhook.test` event to the endpoint; returns the event's id.
    pub async fn test_endpoint(&self, id: &str) -> Result<String, Error> {
        let url = self.url(&["webhooks", "endpoints", id, "test"]);
        let s: Sent = decode(self.http.request(Method::POST, url, &[], Some(&json!({}))).await?)?;
        Ok(s.event_id)
    }

    /// Queues again every failed delivery to the endpoint since `since` (ISO 8601); returns how many.
    pub async fn recover(&self, id: &str, since: &str) -> Result<u64, Error> {
        let url = self.url(&["webhooks", "endpoints", id, "recover"]);
        let q: Queued = decode(self.http.request(Method::POST, url, &[], Some(&json!({"since": since}))).await?)?;
        Ok(q.queued)
    }

    pub async fn list_events(&self, params: ListEvents) -> Result<Page<WebhookEvent>, Error> {
        let mut query = Vec::new();
        let pairs = [
            ("type", params.event_type),
            ("customer_id", params.customer_id),
            ("created_after", params.created_after),
            ("created_before", params.created_before),
            ("page", params.page.map(|p| p.to_string())),
            ("page_size", params.page_size.map(|p| p.to_string())),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                query.push((k, v));
            }
        }
        decode(self.http.request(Method::GET, self.url(&["webhooks", "events"]), &query, None).await?)
    }

    pub async fn retrieve_event(&self, id: &str) -> Result<WebhookEvent, Error> {
        decode(self.http.request(Method::GET, self.url(&["webhooks", "events", id]), &[], None).await?)
    }

    pub async fn attempts(&self, event_id: &str) -> Result<Vec<WebhookAttempt>, Error> {
        let url = self.url(&["webhooks", "events", event_id, "attempts"]);
        let page: Page<WebhookAttempt> = decode(self.http.request(Method::GET, url, &[], None).await?)?;
        Ok(page.results)
    }

    /// Sends an event again (the same `webhook-id`), to one endpoint or to every one subscribed.
    pub async fn resend(&self, event_id: &str, endpoint_id: Option<&str>) -> Result<u64, Error> {
        let url = self.url(&["webhooks", "events", event_id, "resend"]);
        let body = match endpoint_id {
            Some(e) => json!({"endpointId": e}),
            None => json!({}),
        };
        let q: Queued = decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)?;
        Ok(q.queued)
    }

    /// `GET /webhook/logs/` (dates `YYYY-MM-DD`, the trailing 30 days).
    pub async fn logs(
        &self,
        start_date: Option<&str>,
        end_date: Option<&str>,
        page: Option<u32>,
    ) -> Result<Page<WebhookLog>, Error> {
        let mut query = Vec::new();
        if let Some(d) = start_date {
            query.push(("start_date", d.to_string()));
        }
        if let Some(d) = end_date {
            query.push(("end_date", d.to_string()));
        }
        if let Some(p) = page {
            query.push(("page", p.to_string()));
        }
        decode(self.http.request(Method::GET, self.url(&["webhook", "logs"]), &query, None).await?)
    }
}
