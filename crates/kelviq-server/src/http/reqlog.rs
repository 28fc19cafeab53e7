//! Request bookkeeping: metrics, and the context (method, route,
//! organisation) that log lines written during a request carry.
//!
//! A `tracing` span per request cost the entitlement check about a fifth of
//! its server CPU (the span's fields are formatted when it is made and again
//! when the organisation is recorded, whether or not anything is logged).
//! Instead the context is a task-local value, set once per request, and a
//! `request` span is made from it only around the lines that are logged
//! ([`in_span`]): the output reads as before.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::cell::Cell;
use std::time::Instant;

/// What is known of the request being served.
pub struct RequestInfo {
    method: Method,
    route: Option<MatchedPath>,
    org: Cell<Option<i64>>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// Counts the request in the metrics and serves it with its log context.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let info = RequestInfo {
        method: req.method().clone(),
        route: req.extensions().get::<MatchedPath>().cloned(),
        org: Cell::new(None),
    };
    REQUEST
        .scope(info, async move {
            let response = next.run(req).await;
            let (status, seconds) = (response.status().as_u16(), started.elapsed().as_secs_f64());
            REQUEST.with(|r| {
                let route = r.route.as_ref().map_or("unmatched", MatchedPath::as_str);
                crate::http::metrics::record(route, &r.method, status, seconds);
            });
            if tracing::enabled!(tracing::Level::DEBUG) {
                in_span(|| tracing::debug!(status, ms = seconds * 1000.0, "request finished"));
            }
            response
        })
        .await
}

/// Records the organisation of the authenticated caller.
pub fn set_org(org_seq: i64) {
    let _ = REQUEST.try_with(|r| r.org.set(Some(org_seq)));
}

/// Runs `f` (which logs) inside a `request` span with the request's method,
/// route and organisation; outside a request, runs it as it is.
pub fn in_span<R>(f: impl FnOnce() -> R) -> R {
    let span = REQUEST.try_with(|r| {
        tracing::info_span!(
            "request",
            method = %r.method,
            route = r.route.as_ref().map_or("-", MatchedPath::as_str),
            org = r.org.get(),
        )
    });
    match span {
        Ok(span) => span.in_scope(f),
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_organisation_is_known_only_inside_its_request() {
        let info = RequestInfo { method: Method::GET, route: None, org: Cell::new(None) };
        let seen = REQUEST
            .scope(info, async {
                set_org(7);
                REQUEST.with(|r| r.org.get())
            })
            .await;
        assert_eq!(seen, Some(7));
        set_org(8); // outside a request: nothing to record, no panic
        assert!(REQUEST.try_with(|r| r.org.get()).is_err());
        assert_eq!(in_span(|| 3), 3);
    }
}
