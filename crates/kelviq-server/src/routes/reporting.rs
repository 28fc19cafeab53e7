//! Usage reporting (spec §1.4): pre-aggregated usage (`SET`/`DELTA`), raw
//! events feeding RAW_EVENTS meters, and a batch of events.

use crate::http::error::ApiResult;
use crate::http::extract::{Body, JsonBytes, ServerCaller};
use crate::state::AppState;
use crate::usage::report::{self, BatchIn, EventIn, UsageIn};
use crate::wire::usage::{BatchOut, EventOut, UsageReportOut};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/report/usage", post(report_usage))
        .route("/report/event", post(report_event))
        .route("/report/events/batch", post(report_events_batch))
}

/// Report usage of a meter feature: `SET` replaces, `DELTA` adds.
#[utoipa::path(post, path = "/api/v1/report/usage/", tag = "reporting", request_body = UsageIn, security(("bearer" = [])),
    responses((status = 200, description = "The report, with `orgId`, `eventName`, `idempotencyKey`, `timestamp`", body = UsageReportOut), (status = 400), (status = 401)))]
pub async fn report_usage(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<UsageIn>,
) -> ApiResult<Json<UsageReportOut>> {
    Ok(Json(report::report_usage(&state, tenant, input).await?))
}

/// Report a raw event; a repeated `idempotencyKey` answers as the first time and counts nothing.
#[utoipa::path(post, path = "/api/v1/report/event/", tag = "reporting", request_body = EventIn, security(("bearer" = [])),
    responses((status = 200, description = "The event, with `orgId`", body = EventOut), (status = 400), (status = 401)))]
pub async fn report_event(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<EventIn>,
) -> ApiResult<Json<EventOut>> {
    Ok(Json(report::report_event(&state, tenant, input).await?))
}

/// Up to 1000 events in one request; each gets its own result.
#[utoipa::path(post, path = "/api/v1/report/events/batch/", tag = "reporting", request_body = BatchIn, security(("bearer" = [])),
    responses((status = 200, description = "`{accepted, duplicates, rejected, results: [{idempotencyKey, status, errors?}]}`", body = BatchOut), (status = 400), (status = 401)))]
pub async fn report_events_batch(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<BatchOut>> {
    Ok(Json(report::report_events_batch(&state, tenant, &body).await?))
}
