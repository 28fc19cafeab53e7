//! `POST /stripe/webhook/{environment}` (no key: the `Stripe-Signature`
//! authenticates): where a Stripe account's webhook endpoint points.

use crate::error::ServiceError;
use crate::http::error::{ApiError, ApiResult};
use crate::providers::stripe::webhook::{self, Refused};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/stripe/webhook/{environment}", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(environment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let env = match environment.as_str() {
        "sandbox" => kelviq_core::Environment::Sandbox,
        "production" => kelviq_core::Environment::Production,
        _ => return Err(ApiError::not_found()),
    };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match webhook::receive(&state, env, signature, &body).await {
        Ok(r) => Ok(Json(json!({"received": true, "id": r.event_id, "duplicate": !r.first}))),
        Err(Refused::Service(e)) => Err(e.into()),
        Err(refused) => Err(ServiceError::BadRequest(refused.to_string()).into()),
    }
}
