//! The OpenAPI document, served.

use crate::state::AppState;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/openapi.json",
        get(|| async {
            Json(serde_json::from_str::<serde_json::Value>(&crate::openapi::document()).unwrap_or_default())
        }),
    )
}
