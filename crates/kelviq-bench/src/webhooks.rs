//! The webhook measurement: signed deliveries per second to a receiver on
//! this machine, draining a backlog and while the events are written (500
//! per transaction), the time from an event's commit to its
//! first attempt on an empty queue, and that time again with a second
//! endpoint that never answers.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use kelviq_core::events::OutboxEvent;
use kelviq_core::Tenant;
use kelviq_server::AppState;
use kelviq_store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arrival time of each webhook-id at the receiver.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

impl Arrivals {
    fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

async fn receive(State(a): State<Arrivals>, uri: Uri, headers: HeaderMap) -> &'static str {
    if uri.path() == "/black-hole" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        a.0.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_insert_with(Instant::now);
    }
    "ok"
}

pub async fn run(
    state: &AppState,
    writer: &Store,
    base: &str,
    key: &str,
    tenant: &Tenant,
    events: u64,
) -> anyhow::Result<()> {
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

    // A backlog: written by another store (as another process would) while
    // the dispatcher sleeps, then drained from the moment it is woken.
    let before = arrivals.count();
    let (ids, written) = write_events(writer, state, tenant, events).await?;
    let woken = Instant::now();
    state.store.webhook_bell().ring();
    let drained = drain(state, &arrivals, before, &ids, woken).await?;
    println!("webhook deliveries, a backlog of {} (written in {:.2} s): {}", ids.len(), written.as_secs_f64(), drained);
    // The same number written and delivered at once, on the same cores.
    let (before, started) = (arrivals.count(), Instant::now());
    let (ids, written) = write_events(&state.store, state, tenant, events).await?;
    let drained = drain(state, &arrivals, before, &ids, started).await?;
    println!("webhook deliveries while the events are written (in {:.2} s): {}", written.as_secs_f64(), drained);

    let latency = commit_to_attempt(state, tenant, &arrivals, 300).await?;
    report_latency("webhook commit → first attempt, empty queue", &latency);
    make(format!("{receiver}/black-hole")).await?;
    let latency = commit_to_attempt(state, tenant, &arrivals, 300).await?;
    report_latency("webhook commit → first attempt, another endpoint black-holed", &latency);
    task.abort();
    Ok(())
}

/// Writes `n` events through `store`, 500 per transaction; their ids and
/// how long the writing took.
async fn write_events(
    store: &Store,
    state: &AppState,
    tenant: &Tenant,
    n: u64,
) -> anyhow::Result<(Vec<String>, Duration)> {
    let object = json!({"object": "customer", "customer_id": "bench", "name": "Bench"});
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n as usize);
    for chunk in 0..n.div_ceil(500) {
        let mut work = store.begin(tenant).await?;
        for _ in 0..500.min(n - chunk * 500) {
            let e = OutboxEvent::new("customer.updated", object.clone(), None, state.clock.now());
            ids.push(e.id.to_string());
            work.event(&e).await?;
        }
        work.commit().await?;
    }
    Ok((ids, started.elapsed()))
}

/// Waits until every one of `ids` has arrived (the receiver had seen
/// `before` webhook-ids when they were written) and every result is
/// recorded; the rate from `from` to the last arrival, as a sentence.
async fn drain(
    state: &AppState,
    arrivals: &Arrivals,
    before: usize,
    ids: &[String],
    from: Instant,
) -> anyhow::Result<String> {
    // Cheap while waiting (the map only grows, by one per new webhook-id);
    // which ids arrived is read once, at the end.
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.count() < before + ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got: Vec<Instant> = {
        let seen = arrivals.0.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter_map(|id| seen.get(id).copied()).collect()
    };
    let last = got.iter().max().copied().unwrap_or(from);
    while state.store.pending_deliveries().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = last.saturating_duration_since(from);
    Ok(format!(
        "{:.0}/s ({} of {} signed deliveries in {:.2} s; every result recorded after {:.2} s)",
        got.len() as f64 / took.as_secs_f64().max(1e-9),
        got.len(),
        ids.len(),
        took.as_secs_f64(),
        from.elapsed().as_secs_f64()
    ))
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
