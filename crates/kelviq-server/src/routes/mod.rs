//! One module per resource, each with its own `router()`.

pub mod catalog;
pub mod customers;
pub mod health;
pub mod media;
pub mod openapi;
pub mod plans;

use crate::app::AppState;
use axum::Router;

/// Everything under `/api/v1`.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(customers::router())
        .merge(catalog::router())
        .merge(plans::router())
        .merge(media::router())
        .merge(openapi::router())
}
