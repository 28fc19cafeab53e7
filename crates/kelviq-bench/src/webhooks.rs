//! The webhook measurement: signed deliveries per second to a receiver on
//! this machine (events written through the store, 500 per transaction,
//! the dispatcher draining them), the time from an event's commit to its
//! first attempt on an empty queue, and that time again with a second
//! endpoint that never answers.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use kelviq_core::events::OutboxEvent;
use kelviq_core::Tenant;
use kelviq_server::AppState;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arrival time of each webhook-id at the receiver.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

async fn receive(State(a): State<Arrivals>, uri: Uri, headers: HeaderMap) -> &'static str {
    if uri.path() == "/black-hole" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        a.0.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_insert_with(Instant::now);
    }
    "ok"
}

pub async fn run(state: &AppState, base: &str, key: &str, tenant: &Tenant, events: u64) -> anyhow::Result<()> {
    let arrivals = Arrivals::default();
    let app = axum::Router::new().fallback(receive).with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let make = |url: String| {
        let client = client.clone();
        async move {
            let res = client
                .post(format!("{base}/api/v1/webhooks/endpoints/"))
                .bearer_auth(key)
                .json(&json!({"url": url, "eventTypes": ["customer.updated"]}))
                .send()
                .await?;
            anyhow::ensure!(res.status() == 201, "creating the endpoint: {}", res.text().await?);
            anyhow::Ok(())
        }
    };
    make(format!("{receiver}/hook")).await?;

    // Throughput: events written in transactions of 500, drained as they come.
    let object = json!({"object": "customer", "customer_id": "bench", "name": "Bench"});
    let started = Instant::now();
    let mut ids = Vec::with_capacity(events as usize);
    for chunk in 0..events.div_ceil(500) {
        let mut work = state.store.begin(tenant).await?;
        for _ in 0..500.min(events - chunk * 500) {
            let e = OutboxEvent::new("customer.updated", object.clone(), None, state.clock.now());
            ids.push(e.id.to_string());
            work.event(&e).await?;
        }
        work.commit().await?;
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.0.lock().unwrap_or_else(|e| e.into_inner()).len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got: Vec<Instant> = arrivals.0.lock().unwrap_or_else(|e| e.into_inner()).values().copied().collect();
    let (first, last) = (got.iter().min().copied(), got.iter().max().copied());
    let drained = last.map_or(Duration::ZERO, |l| l - started);
    // Every result recorded: nothing left pending.
    while state.store.pending_deliveries().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recorded = started.elapsed();
    println!(
        "webhook deliveries: {:.0}/s ({} of {} signed deliveries in {:.2} s from the first write; written in {:.2} s; all results recorded after {:.2} s; first arrival after {:.0} ms)",
        got.len() as f64 / drained.as_secs_f64().max(1e-9),
        got.len(),
        ids.len(),
        drained.as_secs_f64(),
        written.as_secs_f64(),
        recorded.as_secs_f64(),
        first.map_or(0.0, |f| (f - started).as_secs_f64() * 1000.0)
    );

    let latency = commit_to_attempt(state, tenant, &arrivals, 300).await?;
    report_latency("webhook commit → first attempt, empty queue", &latency);
    make(format!("{receiver}/black-hole")).await?;
    let latency = commit_to_attempt(state, tenant, &arrivals, 300).await?;
    report_latency("webhook commit → first attempt, another endpoint black-holed", &latency);
    task.abort();
    Ok(())
}

/// Writes `n` events one commit at a time, 5 ms apart; the time from each
/// commit to its arrival at the receiver's live endpoint.
async fn commit_to_attempt(
    state: &AppState,
    tenant: &Tenant,
    arrivals: &Arrivals,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let object = json!({"object": "customer", "customer_id": "bench", "name": "Bench"});
    let mut committed = Vec::with_capacity(n);
    for _ in 0..n {
        let e = OutboxEvent::new("customer.updated", object.clone(), None, state.clock.now());
        let mut work = state.store.begin(tenant).await?;
        work.event(&e).await?;
        work.commit().await?;
        committed.push((e.id.to_string(), Instant::now()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let seen = arrivals.0.lock().unwrap_or_else(|e| e.into_inner());
            (committed.iter().all(|(id, _)| seen.contains_key(id)) || Instant::now() > deadline).then(|| {
                let mut ms: Vec<f64> = committed
                    .iter()
                    .filter_map(|(id, at)| {
                        seen.get(id).map(|got| got.saturating_duration_since(*at).as_secs_f64() * 1000.0)
                    })
                    .collect();
                ms.sort_by(f64::total_cmp);
                ms
            })
        };
        if let Some(ms) = done {
            return Ok(ms);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report_latency(name: &str, ms: &[f64]) {
    let at = |q: f64| ms.get(((ms.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
    println!("{name}: {} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms.len(), at(0.5), at(0.99), at(1.0));
}
