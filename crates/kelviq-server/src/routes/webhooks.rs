//! Webhooks (server key): endpoints, events with their attempts, resend and
//! recover, and Kelviq's delivery log `GET /webhook/logs/` (spec §1.6).

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Page, ServerCaller};
use crate::http::input;
use crate::http::paging::{map_page, paged};
use crate::state::AppState;
use crate::webhooks::endpoints::{self, EndpointFields};
use crate::wire::double_option;
use crate::wire::webhooks::*;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use kelviq_store::EventQuery;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// How far back the delivery log reaches (Kelviq's window).
pub const LOG_WINDOW_DAYS: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/endpoints", get(list_endpoints).post(create_endpoint))
        .route("/webhooks/endpoints/{id}", get(retrieve_endpoint).patch(update_endpoint).delete(delete_endpoint))
        .route("/webhooks/endpoints/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/endpoints/{id}/test", post(test_endpoint))
        .route("/webhooks/endpoints/{id}/recover", post(recover))
        .route("/webhooks/events", get(list_events))
        .route("/webhooks/events/{id}", get(retrieve_event))
        .route("/webhooks/events/{id}/attempts", get(event_attempts))
        .route("/webhooks/events/{id}/resend", post(resend))
        .route("/webhook/logs", get(webhook_logs))
}

fn id_of(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

/// Body of `POST /webhooks/endpoints/` and `PATCH …/{id}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointIn {
    /// https, or http for the subnets the configuration allows.
    pub url: Option<String>,
    pub description: Option<String>,
    /// Event types to send; empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// Most messages a second (1–10000); null: unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub rate_limit: Option<Option<i64>>,
    /// Deliver one at a time, oldest first.
    pub fifo: Option<bool>,
    /// `kelviq` (default) or `standard`.
    pub signature_format: Option<String>,
}

impl From<EndpointIn> for EndpointFields {
    fn from(i: EndpointIn) -> Self {
        EndpointFields {
            url: i.url,
            description: i.description,
            event_types: i.event_types,
            enabled: i.enabled,
            rate_limit: i.rate_limit,
            fifo: i.fifo,
            signature_format: i.signature_format,
        }
    }
}

/// Make a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/", tag = "webhooks", request_body = EndpointIn, security(("bearer" = [])),
    responses((status = 201, description = "The endpoint, with `secret`", body = EndpointOut), (status = 400), (status = 401)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let (endpoint, secret) = endpoints::create(&state, &tenant, input.into()).await?;
    Ok((StatusCode::CREATED, Json(EndpointOut::new(&endpoint, Some(secret)))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List webhook endpoints, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/", tag = "webhooks", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of endpoints", body = Page<EndpointOut>), (status = 401)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    parts: Parts,
) -> ApiResult<Json<Page<EndpointOut>>> {
    let page = paged(&parts, |limit, offset| state.store.list_webhook_endpoints(&tenant, limit, offset)).await?;
    Ok(Json(map_page(page, |e| EndpointOut::new(&e, None))))
}

/// Retrieve a webhook endpoint (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}/", tag = "webhooks", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The endpoint", body = EndpointOut), (status = 401), (status = 404)))]
pub async fn retrieve_endpoint(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointOut>> {
    let endpoint = endpoints::get(&state, &tenant, id_of(&id)?).await?;
    Ok(Json(EndpointOut::new(&endpoint, None)))
}

/// Change a webhook endpoint. Disabling it stops its pending deliveries (kept as failed, recoverable).
#[utoipa::path(patch, path = "/api/v1/webhooks/endpoints/{id}/", tag = "webhooks", params(("id" = String, Path)), request_body = EndpointIn,
    security(("bearer" = [])), responses((status = 200, description = "The endpoint", body = EndpointOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<EndpointIn>,
) -> ApiResult<Json<EndpointOut>> {
    let endpoint = endpoints::update(&state, &tenant, id_of(&id)?, input.into()).await?;
    Ok(Json(EndpointOut::new(&endpoint, None)))
}

/// Delete a webhook endpoint; its pending deliveries are cancelled.
#[utoipa::path(delete, path = "/api/v1/webhooks/endpoints/{id}/", tag = "webhooks", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    endpoints::delete(&state, &tenant, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown this once. In the `standard` format the old one keeps signing for 24 h.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/rotate-secret/", tag = "webhooks", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The new secret", body = SecretOut), (status = 401), (status = 404)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let secret = endpoints::rotate(&state, &tenant, id_of(&id)?).await?;
    Ok(Json(SecretOut { secret }))
}

/// Send a `webhook.test` event to this endpoint.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/test/", tag = "webhooks", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 202, description = "Queued", body = TestSentOut), (status = 400), (status = 401), (status = 404)))]
pub async fn test_endpoint(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<TestSentOut>)> {
    let event = endpoints::send_test(&state, &tenant, id_of(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(TestSentOut { event_id: event.to_string() })))
}

/// Body of `POST …/{id}/recover/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverIn {
    /// ISO 8601: every failed delivery of events since then is queued again.
    pub since: Option<String>,
}

/// Queue again every failed delivery to this (enabled) endpoint since a time.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/recover/", tag = "webhooks", params(("id" = String, Path)), request_body = RecoverIn,
    security(("bearer" = [])), responses((status = 202, description = "Queued", body = QueuedOut), (status = 400), (status = 401), (status = 404)))]
pub async fn recover(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<RecoverIn>,
) -> ApiResult<(StatusCode, Json<QueuedOut>)> {
    let id = id_of(&id)?;
    let since = match input.since.as_deref() {
        None => return Err(ApiError::field("since", "This field is required.")),
        Some(s) => input::instant(s).ok_or_else(|| ApiError::field("since", "Enter an ISO 8601 datetime."))?,
    };
    let queued = endpoints::recover(&state, &tenant, id, since).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedOut { queued })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// An event type, e.g. `order.created`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The merchant's customer id.
    pub customer_id: Option<String>,
    /// ISO 8601 or YYYY-MM-DD: events at or after.
    pub created_after: Option<String>,
    /// ISO 8601 or YYYY-MM-DD: events before.
    pub created_before: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List events, newest first (kept for the configured retention, 30 days by default).
#[utoipa::path(get, path = "/api/v1/webhooks/events/", tag = "webhooks", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of events", body = Page<EventOut>), (status = 400), (status = 401)))]
pub async fn list_events(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<EventsQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<EventOut>>> {
    let time = |field: &str, v: Option<&str>| -> ApiResult<_> {
        v.filter(|v| !v.trim().is_empty())
            .map(|v| input::instant(v).ok_or_else(|| ApiError::field(field, "Enter an ISO 8601 datetime or a date.")))
            .transpose()
    };
    let query = EventQuery {
        event_type: q.event_type.filter(|t| !t.is_empty()),
        customer_id: q.customer_id.filter(|c| !c.is_empty()),
        from: time("created_after", q.created_after.as_deref())?,
        before: time("created_before", q.created_before.as_deref())?,
    };
    let page = paged(&parts, |limit, offset| state.store.query_events(&tenant, &query, limit, offset)).await?;
    Ok(Json(map_page(page, EventOut::new)))
}

/// Retrieve an event.
#[utoipa::path(get, path = "/api/v1/webhooks/events/{id}/", tag = "webhooks", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The event", body = EventOut), (status = 401), (status = 404)))]
pub async fn retrieve_event(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<EventOut>> {
    let event = state.store.find_event(&tenant, id_of(&id)?).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(EventOut::new(event)))
}

/// Every attempt to deliver an event, oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks/events/{id}/attempts/", tag = "webhooks", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The attempts, all on one page", body = Page<AttemptOut>), (status = 401), (status = 404)))]
pub async fn event_attempts(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<AttemptOut>>> {
    let id = id_of(&id)?;
    state.store.find_event(&tenant, id).await?.ok_or_else(ApiError::not_found)?;
    let attempts = state.store.webhook_attempts(&tenant, id).await?;
    let results: Vec<AttemptOut> = attempts.into_iter().map(AttemptOut::new).collect();
    Ok(Json(Page { count: results.len() as u64, next: None, previous: None, results }))
}

/// Body of `POST /webhooks/events/{id}/resend/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResendIn {
    /// One endpoint; absent: every enabled endpoint subscribed to the event's type.
    pub endpoint_id: Option<String>,
}

/// Send an event again (with the same `webhook-id`).
#[utoipa::path(post, path = "/api/v1/webhooks/events/{id}/resend/", tag = "webhooks", params(("id" = String, Path)), request_body = ResendIn,
    security(("bearer" = [])), responses((status = 202, description = "Queued", body = QueuedOut), (status = 400), (status = 401), (status = 404)))]
pub async fn resend(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<ResendIn>,
) -> ApiResult<(StatusCode, Json<QueuedOut>)> {
    let event = id_of(&id)?;
    let endpoint = input
        .endpoint_id
        .map(|e| uuid::Uuid::parse_str(&e).map_err(|_| ApiError::field("endpointId", "Must be a valid UUID.")))
        .transpose()?;
    let queued = endpoints::resend(&state, &tenant, event, endpoint).await?;
    Ok((StatusCode::ACCEPTED, Json(QueuedOut { queued })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// YYYY-MM-DD, on the last attempt; clamped to the trailing 30 days.
    pub start_date: Option<String>,
    /// YYYY-MM-DD, inclusive.
    pub end_date: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// The delivery log: one row per event and endpoint, last attempt first, within the trailing 30 days.
#[utoipa::path(get, path = "/api/v1/webhook/logs/", tag = "webhooks", params(LogsQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of log rows", body = Page<WebhookLogOut>), (status = 400), (status = 401)))]
pub async fn webhook_logs(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<LogsQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<WebhookLogOut>>> {
    let day = |field: &str, v: Option<&str>| -> ApiResult<_> {
        v.filter(|v| !v.is_empty())
            .map(|v| {
                kelviq_core::timefmt::parse_date(v)
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
                    .ok_or_else(|| ApiError::field(field, "Enter a valid date (YYYY-MM-DD)."))
            })
            .transpose()
    };
    let now = state.clock.now();
    let window_start = now - Duration::days(LOG_WINDOW_DAYS);
    let from = day("start_date", q.start_date.as_deref())?.map_or(window_start, |s| s.max(window_start));
    let before = day("end_date", q.end_date.as_deref())?.map_or(now + Duration::seconds(1), |e| e + Duration::days(1));
    let page = paged(&parts, |limit, offset| state.store.webhook_logs(&tenant, from, before, limit, offset)).await?;
    Ok(Json(map_page(page, WebhookLogOut::new)))
}
