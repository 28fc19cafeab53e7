//! Cross-origin access for what a browser calls with a client key: the
//! entitlement check, the promotions edge answer and the product offering.
//! Any origin, the bearer key in `Authorization`, never cookies; other
//! routes get no `Access-Control-Allow-Origin`, so browsers keep them
//! same-origin. Outermost, so that it answers preflights before routing.

use axum::http::{header, request::Parts, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Whether a browser on another origin may call `path`.
pub fn browser_route(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == "/api/v1/entitlements"
        || path == "/api/v1/promotions"
        || path.starts_with("/api/v1/monetization/product-offering/")
}

pub fn layer() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|_: &HeaderValue, parts: &Parts| browser_route(parts.uri.path())))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600))
}
