//! The usage writer: usage reports, raw events and consumes are applied by
//! one task that commits many requests per transaction (group commit) and
//! answers each only once its transaction is durable. A batch that fails is
//! retried request by request, so one bad request cannot sink the others.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use kelviq_core::entitlements::crossed_alerts;
use kelviq_core::events::{customer_summary, OutboxEvent};
use kelviq_core::timefmt::{from_micros, iso_seconds};
use kelviq_core::Tenant;
use kelviq_store::{AddRow, CounterChange, KeyClaim, RawRow, Work};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Most requests one transaction carries.
const MAX_BATCH: usize = 1024;

/// A feature's usage-alert settings, for the writer to check crossings.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub kind: String,
    pub thresholds: Vec<i64>,
    pub limit: Option<i64>,
    pub feature: Value,
    pub subscription_id: Option<uuid::Uuid>,
    pub period_end: Option<DateTime<Utc>>,
}

/// One counter a request changes.
#[derive(Debug, Clone)]
pub struct Target {
    pub feature: String,
    pub period_start: i64,
    pub change: CounterChange,
    pub alerts: Option<AlertSpec>,
}

/// What a request asks of the writer.
#[derive(Debug)]
pub enum Op {
    /// A usage report or an event: optionally deduplicated by key, an
    /// optional raw event to store, counters to change.
    Record { key: Option<(&'static str, String)>, raw: Option<RawEvent>, targets: Vec<Target> },
    /// Deduct `value` if the limit allows it.
    Consume(ConsumeOp),
}

#[derive(Debug)]
pub struct ConsumeOp {
    pub key: String,
    pub feature: String,
    pub period_start: i64,
    pub value: i64,
    pub limit: Option<i64>,
    pub hard: bool,
    pub alerts: Option<AlertSpec>,
}

#[derive(Debug, Clone)]
pub struct RawEvent {
    pub event_name: String,
    pub key: String,
    pub at: DateTime<Utc>,
    pub resource_id: Option<String>,
    pub properties: Value,
}

#[derive(Debug)]
pub struct Job {
    pub tenant: Tenant,
    pub customer_id: String,
    pub op: Op,
    /// The answer to give (and to store with the key).
    pub response: Value,
    pub now: DateTime<Utc>,
    reply: Option<oneshot::Sender<Result<Outcome, String>>>,
}

/// What the writer did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The answer: the new one, or the one first given for a repeated key.
    pub response: Value,
    pub duplicate: bool,
    /// (feature, period start, value after) of every counter changed.
    pub counters: Vec<(String, i64, i64)>,
}

/// The handle requests send jobs through; the writer starts with the server.
#[derive(Clone, Default)]
pub struct Ingest {
    tx: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl Ingest {
    /// Applies one job, durably, and returns what happened.
    pub async fn submit(
        &self,
        tenant: Tenant,
        customer_id: String,
        op: Op,
        response: Value,
        now: DateTime<Utc>,
    ) -> ApiResult<Outcome> {
        let sender = self.tx.get().ok_or_else(|| ApiError::Unavailable("The usage writer is not running.".into()))?;
        let (reply, answer) = oneshot::channel();
        let job = Job { tenant, customer_id, op, response, now, reply: Some(reply) };
        sender.send(job).await.map_err(|_| ApiError::Unavailable("The server is shutting down.".into()))?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(ApiError::Internal(anyhow::anyhow!("usage write failed: {e}"))),
            Err(_) => Err(ApiError::Unavailable("The server is shutting down.".into())),
        }
    }
}

/// Starts the writer; it ends when every sender is gone.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<Job>(16 * MAX_BATCH);
    let _ = state.ingest.tx.set(tx);
    tokio::spawn(run(state, rx))
}

async fn run(state: AppState, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        metrics::histogram!("ingest_batch_size").record(size as f64);
        let started = std::time::Instant::now();
        let applied = apply(&state, &mut batch).await;
        metrics::histogram!("ingest_batch_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(size, ms = started.elapsed().as_secs_f64() * 1000.0, "usage batch committed");
        match applied {
            Ok(outcomes) => deliver(&state, batch, outcomes.into_iter().map(Ok).collect()),
            Err(e) if size > 1 => {
                tracing::warn!(error = %e, size, "usage batch failed; retrying its requests one by one");
                for job in batch {
                    let mut one = vec![job];
                    let result = apply(&state, &mut one).await;
                    let results = match result {
                        Ok(o) => o.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e.to_string())],
                    };
                    deliver(&state, one, results);
                }
            }
            Err(e) => deliver(&state, batch, vec![Err(e.to_string())]),
        }
    }
}

/// Updates this process's state and answers each request.
fn deliver(state: &AppState, batch: Vec<Job>, results: Vec<Result<Outcome, String>>) {
    for (mut job, result) in batch.into_iter().zip(results) {
        if let Ok(o) = &result {
            if !o.counters.is_empty() {
                state.entitlements.apply_counters(&job.tenant, &job.customer_id, &o.counters);
            }
        }
        if let Some(reply) = job.reply.take() {
            let _ = reply.send(result);
        }
    }
}

/// A counter of one customer: (org, env, customer, feature, period start).
type CounterKey = (uuid::Uuid, &'static str, String, String, i64);

fn counter_key(job: &Job, t: &Target) -> CounterKey {
    (job.tenant.org_id, job.tenant.env.as_str(), job.customer_id.clone(), t.feature.clone(), t.period_start)
}

/// Applies a batch in one transaction. Keys, raw events and plain increments
/// are written with one statement per few hundred requests; anything whose
/// order matters (SET, MAX, LATEST, UNIQUE_COUNT, alerts, consumes) runs
/// request by request, in arrival order, for the counters it touches.
async fn apply(state: &AppState, batch: &mut [Job]) -> Result<Vec<Outcome>, kelviq_store::StoreError> {
    let first = &batch[0].tenant;
    let mut w = state.store.begin(first).await?;
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);

    // Counters some request changes in an order-sensitive way.
    let mut ordered: HashSet<CounterKey> = HashSet::new();
    for job in batch.iter() {
        match &job.op {
            Op::Record { targets, .. } => {
                for t in targets {
                    if !matches!(t.change, CounterChange::Add(_)) || t.alerts.is_some() {
                        ordered.insert(counter_key(job, t));
                    }
                }
            }
            Op::Consume(c) => {
                ordered.insert((
                    job.tenant.org_id,
                    job.tenant.env.as_str(),
                    job.customer_id.clone(),
                    c.feature.clone(),
                    c.period_start,
                ));
            }
        }
    }

    // Idempotency keys of records, claimed in bulk; a key repeated within
    // the batch is a duplicate of its first occurrence.
    let mut first_of: HashMap<(uuid::Uuid, &'static str, &'static str, String), usize> = HashMap::new();
    let mut claims = Vec::new();
    let mut claim_of = vec![None; batch.len()];
    let mut dup_of = vec![None; batch.len()];
    for (i, job) in batch.iter().enumerate() {
        if let Op::Record { key: Some((kind, key)), .. } = &job.op {
            match first_of.entry((job.tenant.org_id, job.tenant.env.as_str(), kind, key.clone())) {
                std::collections::hash_map::Entry::Occupied(e) => dup_of[i] = Some(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                    claim_of[i] = Some(claims.len());
                    claims.push(KeyClaim { tenant: &job.tenant, kind, key, response: job.response.to_string() });
                }
            }
        }
    }
    let fresh = w.claim_keys(&claims, now).await?;
    drop(claims);

    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut raws = Vec::new();
    let mut adds: HashMap<CounterKey, i64> = HashMap::new();
    let mut touched: Vec<Vec<CounterKey>> = vec![Vec::new(); batch.len()];
    for (i, job) in batch.iter().enumerate() {
        if dup_of[i].is_some() {
            continue;
        }
        if let Some(c) = claim_of[i] {
            if !fresh[c] {
                let (kind, key) = match &job.op {
                    Op::Record { key: Some(k), .. } => k.clone(),
                    _ => unreachable!("only keyed records are claimed"),
                };
                let first = w.find_key_for(&job.tenant, kind, &key).await?.unwrap_or_default();
                let response = serde_json::from_str(&first).unwrap_or(Value::Null);
                outcomes[i] = Some(Outcome { response, duplicate: true, counters: Vec::new() });
                continue;
            }
        }
        w.switch_tenant(&job.tenant);
        match &job.op {
            Op::Record { raw, targets, .. } => {
                if let Some(e) = raw {
                    raws.push(RawRow {
                        tenant: &job.tenant,
                        customer_id: &job.customer_id,
                        event_name: &e.event_name,
                        key: &e.key,
                        at: e.at,
                        resource_id: e.resource_id.as_deref(),
                        properties: e.properties.to_string(),
                    });
                }
                let mut counters = Vec::new();
                for t in targets {
                    let k = counter_key(job, t);
                    match (&t.change, ordered.contains(&k)) {
                        (CounterChange::Add(n), false) => {
                            *adds.entry(k.clone()).or_insert(0) += n;
                            touched[i].push(k);
                        }
                        _ => {
                            let (before, after, announced) = w
                                .change_counter(&job.customer_id, &t.feature, t.period_start, &t.change, job.now)
                                .await?;
                            if let Some(spec) = &t.alerts {
                                alert(&mut w, job, &t.feature, t.period_start, spec, before, after, &announced).await?;
                            }
                            counters.push((t.feature.clone(), t.period_start, after));
                        }
                    }
                }
                outcomes[i] = Some(Outcome { response: job.response.clone(), duplicate: false, counters });
            }
            Op::Consume(c) => outcomes[i] = Some(consume(&mut w, job, c).await?),
        }
    }
    w.insert_raw_events(&raws, now).await?;
    drop(raws);

    // The increments, one statement per few hundred counters.
    let keys: Vec<CounterKey> = adds.keys().cloned().collect();
    let tenants: HashMap<(uuid::Uuid, &'static str), Tenant> =
        batch.iter().map(|j| ((j.tenant.org_id, j.tenant.env.as_str()), j.tenant.clone())).collect();
    let rows: Vec<AddRow> = keys
        .iter()
        .map(|k| AddRow {
            tenant: &tenants[&(k.0, k.1)],
            customer_id: &k.2,
            feature: &k.3,
            period_start: k.4,
            delta: adds[k],
        })
        .collect();
    let values: HashMap<&CounterKey, i64> = keys.iter().zip(w.add_counters(&rows, now).await?).collect();
    drop(rows);
    for (i, t) in touched.iter().enumerate() {
        if let Some(o) = outcomes[i].as_mut() {
            for k in t {
                o.counters.push((k.3.clone(), k.4, values[k]));
            }
        }
    }

    // Duplicates within the batch answer as their first occurrence did.
    for i in 0..batch.len() {
        if let Some(first) = dup_of[i] {
            let response = outcomes[first].as_ref().map_or(Value::Null, |o| o.response.clone());
            outcomes[i] = Some(Outcome { response, duplicate: true, counters: Vec::new() });
        }
    }

    // Customers changed per tenant, announced once per tenant.
    let mut changed: BTreeMap<(uuid::Uuid, &'static str), (Tenant, Vec<String>)> = BTreeMap::new();
    for (job, o) in batch.iter().zip(&outcomes) {
        if o.as_ref().is_some_and(|o| !o.counters.is_empty()) {
            let entry = changed
                .entry((job.tenant.org_id, job.tenant.env.as_str()))
                .or_insert_with(|| (job.tenant.clone(), Vec::new()));
            if !entry.1.contains(&job.customer_id) {
                entry.1.push(job.customer_id.clone());
            }
        }
    }
    for (tenant, customers) in changed.values() {
        w.switch_tenant(tenant);
        w.usage_changed(customers, &state.origin, now).await?;
    }
    w.commit().await?;
    Ok(outcomes.into_iter().map(|o| o.expect("every request has an outcome")).collect())
}

/// A consume: check the limit and deduct in the same transaction, under the
/// counter's row lock, so concurrent consumes never overspend.
async fn consume(w: &mut Work, job: &Job, c: &ConsumeOp) -> Result<Outcome, kelviq_store::StoreError> {
    let ConsumeOp { key, feature, period_start, value, limit, hard, alerts } = c;
    if let Some(first) = w.find_key("consume", key).await? {
        let response = serde_json::from_str(&first).unwrap_or(Value::Null);
        return Ok(Outcome { response, duplicate: true, counters: Vec::new() });
    }
    let current = w.lock_counter(&job.customer_id, feature, *period_start).await?.map_or(0, |c| c.value);
    let allowed = match limit {
        Some(l) if *hard => current + value <= *l,
        _ => true,
    };
    let mut counters = Vec::new();
    let usage = if allowed {
        let (before, after, announced) =
            w.change_counter(&job.customer_id, feature, *period_start, &CounterChange::Add(*value), job.now).await?;
        if let Some(spec) = alerts {
            alert(w, job, feature, *period_start, spec, before, after, &announced).await?;
        }
        counters.push((feature.clone(), *period_start, after));
        after
    } else {
        current
    };
    let mut response = job.response.clone();
    response["allowed"] = json!(allowed);
    response["currentUsage"] = json!(usage);
    response["usageLimit"] = json!(limit);
    response["remaining"] = json!(limit.map(|l| l - usage));
    w.save_key("consume", key, &response.to_string(), job.now).await?;
    Ok(Outcome { response, duplicate: false, counters })
}

/// Writes one `feature.usage_alert` per threshold first crossed this period.
#[allow(clippy::too_many_arguments)]
async fn alert(
    w: &mut Work,
    job: &Job,
    feature: &str,
    period_start: i64,
    spec: &AlertSpec,
    before: i64,
    after: i64,
    announced: &str,
) -> Result<(), kelviq_store::StoreError> {
    let crossed = crossed_alerts(&spec.kind, &spec.thresholds, spec.limit, before, after);
    let mut done: Vec<String> = announced.split(';').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let fresh: Vec<i64> = crossed.into_iter().filter(|t| !done.contains(&format!("{}:{t}", spec.kind))).collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let customer = w.lock_customer(&job.customer_id).await?;
    for t in &fresh {
        let object = json!({
            "object": "feature_usage_alert",
            "organization": job.tenant.org_id.to_string(),
            "feature": spec.feature,
            "customer": customer.as_ref().map(customer_summary),
            "usage_limit": spec.limit,
            "current_usage": after,
            "threshold_type": spec.kind,
            "threshold_value": t,
            "period_start_time": (period_start > 0).then(|| iso_seconds(from_micros(period_start))),
            "period_end_time": spec.period_end.map(iso_seconds),
            "subscription_id": spec.subscription_id.map(|i| i.to_string()),
        });
        w.event(&OutboxEvent::new("feature.usage_alert", object, None, job.now)).await?;
        done.push(format!("{}:{t}", spec.kind));
    }
    w.set_counter_alerts(&job.customer_id, feature, period_start, &done.join(";")).await
}
