//! Liveness, readiness and metrics.

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::wire::ops::HealthOut;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is serving", body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut { status: "ok".into(), database: None })
}

/// The database answers and usage has not stalled (no usage writer has
/// failed every group, or every fold, and taking the counters over has not
/// failed, for 5 seconds).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready to serve", body = HealthOut),
    (status = 503, description = "The database does not answer, or a usage writer has stalled"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthOut>, ApiError> {
    let stalled = state.ingest.stalled();
    if !stalled.is_empty() {
        let what = stalled.join("; ");
        crate::http::reqlog::in_span(|| tracing::warn!(failing = %what, "readiness: usage is stalled"));
        return Err(ApiError::Unavailable(format!("Usage is stalled, failing for a while: {what}.")));
    }
    match state.store.ping().await {
        Ok(()) => Ok(Json(HealthOut { status: "ok".into(), database: Some(state.store.backend().name().into()) })),
        Err(e) => {
            crate::http::reqlog::in_span(|| tracing::warn!(error = %e, "readiness check failed"));
            Err(ApiError::Unavailable("Database unavailable.".into()))
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], crate::http::metrics::render())
}
