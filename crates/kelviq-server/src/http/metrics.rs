//! Prometheus metrics: request counts and latencies by route template.

use axum::http::Method;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (metrics are per process, whatever the number of
/// apps a test starts in it).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program;
            // then our handle simply renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A route's metric handles: per (method, status), the request counter and
/// the duration histogram (labelled by method and route).
type Handles = RwLock<HashMap<String, Vec<(Method, u16, Counter, Histogram)>>>;

/// Counts a request and its duration, registering its labels once (a lookup
/// of the labels in the registry on every request costs several allocations).
pub fn record(route: &str, method: &Method, status: u16, seconds: f64) {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        handle(); // the recorder is installed before any handle is taken
        Handles::default()
    });
    let known = |v: &&(Method, u16, Counter, Histogram)| v.0 == *method && v.1 == status;
    if let Some((_, _, counter, histogram)) =
        handles.read().unwrap_or_else(|e| e.into_inner()).get(route).and_then(|v| v.iter().find(known))
    {
        counter.increment(1);
        histogram.record(seconds);
        return;
    }
    let labels = [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    let counter = metrics::counter!("http_requests_total", &labels);
    let histogram = metrics::histogram!("http_request_duration_seconds", &labels[..2]);
    counter.increment(1);
    histogram.record(seconds);
    let mut handles = handles.write().unwrap_or_else(|e| e.into_inner());
    let entries = handles.entry(route.to_owned()).or_default();
    if !entries.iter().any(|v| known(&v)) {
        entries.push((method.clone(), status, counter, histogram));
    }
}

pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}
