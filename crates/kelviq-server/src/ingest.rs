//! The usage writer: raw events, usage reports and consumes are applied by
//! a writer task that commits many requests per transaction (group commit)
//! and answers each only once its transaction is durable. A group that fails
//! is retried request by request, so one bad request cannot sink the others.
//! SQLite has one writer; on PostgreSQL several commit at once, each for its
//! own share of the customers, so a customer's changes stay in order and no
//! two writers change the same counter (a request spanning customers is
//! split between writers and its answers put back in order).
//!
//! Raw events are the usage journal. On SQLite, whose log writes whole pages,
//! adding every event to its counter row at once would rewrite a page per
//! customer per commit; instead an event records the additions it makes
//! (`unfolded`), this process keeps their sums in memory ([`Pending`]) where
//! entitlement state is built, and the writer folds them into the counters
//! about once a second. After a crash, the start folds whatever the journal
//! holds past the last fold. On PostgreSQL, which several processes share,
//! counters change in the event's own transaction.
//!
//! On SQLite a group of plain events (every change an addition, no alerts:
//! the common case) only appends to the journal, which the writer does on
//! its own connection ([`EventJournal`]) without leaving its thread, and a
//! thread of answers syncs the log ([`WalSync`]: one sync for every group
//! committed since the last), updates this process's state and replies,
//! while the writer builds and commits the next groups. Anything else goes
//! through the store, whose commits sync themselves.

use crate::app::AppState;
use crate::entitlements::Counters;
use crate::http::error::{ApiError, ApiResult};
use crate::tenant_map::TenantMap;
use chrono::{DateTime, Utc};
use kelviq_core::entitlements::crossed_alerts;
use kelviq_core::events::{customer_summary, OutboxEvent};
use kelviq_core::timefmt::{from_micros, iso_seconds};
use kelviq_core::{Environment, Tenant};
use kelviq_store::{
    AddRow, Backend, CounterChange, EventJournal, EventRow, KeptConnection, StoredEvent, WalSync, Work,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most requests (events, reports, consumes) one transaction carries.
const MAX_ITEMS: usize = 20_000;
/// Pending counters that trigger a fold before the interval is over.
const FOLD_MAX: usize = 200_000;

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

/// A validated raw event.
#[derive(Debug, Clone)]
pub struct EventData {
    pub key: String,
    pub event_name: String,
    pub at: DateTime<Utc>,
    pub resource_id: Option<String>,
    /// The properties, as JSON text.
    pub properties: String,
}

/// What a request asks of the writer.
#[derive(Debug)]
pub enum Op {
    /// A raw event: stored once per key; counted when it is new.
    Event { event: EventData, targets: Vec<Target> },
    /// A usage report (or an admin reset), optionally deduplicated by key;
    /// the answer is kept with the key.
    Report { key: Option<String>, targets: Vec<Target>, response: Value },
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
    pub response: Value,
}

/// One request of a job.
#[derive(Debug)]
pub struct Item {
    pub customer_id: String,
    pub op: Op,
}

/// A counter's new state: its value, or (when other changes may not be
/// known to this process) how much was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Value(i64),
    Delta(i64),
}

/// What the writer did with one item.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub duplicate: bool,
    /// Reports and consumes: the answer (the first one, for a repeated key).
    pub response: Value,
    /// Events with a repeated key: the event as first received.
    pub original: Option<StoredEvent>,
    /// An event's key was first used for another event (see [`same_event`]):
    /// nothing was counted, and the request is refused.
    pub key_reused: bool,
    /// (feature, period start, change) of every counter changed.
    pub counters: Vec<(String, i64, Counted)>,
}

impl Outcome {
    fn fresh(response: Value, counters: Vec<(String, i64, Counted)>) -> Outcome {
        Outcome { duplicate: false, response, original: None, key_reused: false, counters }
    }

    fn repeated(response: Value, original: Option<StoredEvent>) -> Outcome {
        Outcome { duplicate: true, response, original, key_reused: false, counters: Vec::new() }
    }
}

/// Whether an event sent again with its key is the one first stored under
/// it: the same customer, name, resource and properties (compared as maps
/// when their texts differ). Not its time: a client that retries may stamp
/// the event again.
fn same_event(original: &StoredEvent, item: &Item) -> bool {
    let Op::Event { event, .. } = &item.op else { return false };
    let map = |text: &str| serde_json::from_str::<serde_json::Map<String, Value>>(text).ok();
    original.customer_id == item.customer_id
        && original.event_name == event.event_name
        && original.resource_id == event.resource_id
        && (original.properties == event.properties
            || map(&original.properties).is_some_and(|p| Some(p) == map(&event.properties)))
}

#[derive(Debug)]
struct Job {
    tenant: Tenant,
    now: DateTime<Utc>,
    items: Vec<Item>,
    reply: Option<oneshot::Sender<Result<Vec<Outcome>, String>>>,
}

/// Counter additions: (feature, period start, delta).
type Additions = Vec<(String, i64, i64)>;

/// Counter additions committed with their events but not yet in the
/// counter rows, while this process defers counters (SQLite always; on
/// PostgreSQL while it owns usage). One share per writer, each changed and
/// folded by its writer only. State built from the database adds them.
#[derive(Default)]
pub struct Pending {
    shares: OnceLock<Vec<Share>>,
}

#[derive(Default)]
struct Share {
    sums: Mutex<TenantMap<Counters>>,
    /// Odd while a fold commits: the rows may then hold what the sums hold.
    generation: AtomicU64,
}

impl Pending {
    fn shares(&self) -> &[Share] {
        self.shares.get().map_or(&[], Vec::as_slice)
    }

    fn share(&self, writer: usize) -> &Share {
        &self.shares()[writer]
    }

    /// The share of a customer, once the writers run.
    fn of(&self, tenant: &Tenant, customer_id: &str) -> Option<&Share> {
        let shares = self.shares();
        (!shares.is_empty()).then(|| &shares[writer_of(tenant.org_id, tenant.env, customer_id, shares.len())])
    }

    /// Marks every share as folding (odd) or done (even).
    fn turn_generations(&self) {
        for share in self.shares() {
            share.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Share {
    fn lock(&self) -> std::sync::MutexGuard<'_, TenantMap<Counters>> {
        self.sums.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contains(&self, k: &CounterKey) -> bool {
        let tenant = Tenant { org_id: k.0, org_seq: 0, env: k.1 };
        self.lock().get(&tenant, &k.2).is_some_and(|c| c.iter().any(|(f, s, _)| f == k.3 && s == k.4))
    }

    /// How many customers have pending sums.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every customer's sums: (tenant, customer, sums).
    fn snapshot(&self) -> Vec<(Tenant, String, Counters)> {
        self.lock()
            .iter()
            .map(|(org, env, c, v)| (Tenant { org_id: org, org_seq: 0, env }, c.to_string(), v.clone()))
            .collect()
    }
}

/// The writer (of `n`) whose share a customer is in. Stable across
/// processes and versions: recovery assigns stored events to fold marks by it.
pub fn writer_of(org: uuid::Uuid, env: Environment, customer_id: &str, n: usize) -> usize {
    (crate::tenant_map::customer_hash(org, env, customer_id) % n.max(1) as u64) as usize
}

/// How this process keeps usage counters.
#[derive(Default)]
pub(crate) struct Mode {
    /// Whether fresh events' additions are left to folds (SQLite always; on
    /// PostgreSQL while this process owns usage).
    pub(crate) deferring: std::sync::atomic::AtomicBool,
    /// The usage epoch this process's deferred writes belong to.
    pub(crate) epoch: std::sync::atomic::AtomicI64,
    /// Writers hold it shared for each group; a change of mode holds it
    /// exclusively, between groups.
    pub(crate) gate: tokio::sync::RwLock<()>,
    /// Asks the usage owner task (PostgreSQL) to take the counters over
    /// again from the database; answered when done.
    pub(crate) resync: OnceLock<mpsc::UnboundedSender<oneshot::Sender<()>>>,
}

impl Mode {
    /// How writer `writer`'s next group runs.
    fn turn(&self, writer: usize) -> Turn {
        Turn { writer, defer: self.deferring.load(Ordering::SeqCst), epoch: self.epoch.load(Ordering::SeqCst) }
    }
}

/// The handle requests send jobs through; the writers start with the server.
#[derive(Clone, Default)]
pub struct Ingest {
    /// One queue per writer; a customer's items always go to the same one.
    tx: Arc<OnceLock<Vec<mpsc::Sender<Job>>>>,
    pending: Arc<Pending>,
    pub(crate) mode: Arc<Mode>,
    /// Since when each writer's groups, or its folds, have failed (none:
    /// the last one committed).
    failing: Arc<Mutex<HashMap<(usize, Step), Instant>>>,
}

/// What the usage path commits: a writer's group of requests, or its fold
/// of the additions it deferred into the counter rows; or (PostgreSQL) the
/// process taking the counters over from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Group,
    Fold,
    TakeOver,
}

/// How long a writer may fail every group before readiness says it stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

impl Ingest {
    /// Applies the items, durably, each customer's in order, and says what
    /// happened to each. Items go to their customers' writers; each writer
    /// commits them in one transaction (usually shared with other requests).
    /// What has failed every time for [`STALL_AFTER`] or longer: a writer's
    /// groups or folds, or taking the counters over.
    pub fn stalled(&self) -> Vec<String> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let mut stalled: Vec<String> = failing
            .iter()
            .filter(|(_, since)| since.elapsed() >= STALL_AFTER)
            .map(|((writer, step), _)| match step {
                Step::Group => format!("usage writer {writer}: every write"),
                Step::Fold => format!("usage writer {writer}: every fold"),
                Step::TakeOver => "taking the usage counters over".to_string(),
            })
            .collect();
        stalled.sort_unstable();
        stalled
    }

    /// Records how a writer's group or fold (or a takeover, writer 0) ended.
    pub(crate) fn record(&self, writer: usize, step: Step, ok: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            failing.remove(&(writer, step));
        } else {
            failing.entry((writer, step)).or_insert_with(Instant::now);
        }
        let writers: HashSet<usize> = failing.keys().map(|(w, _)| *w).collect();
        metrics::gauge!("usage_writers_failing").set(writers.len() as f64);
    }

    pub async fn submit(&self, tenant: Tenant, now: DateTime<Utc>, items: Vec<Item>) -> ApiResult<Vec<Outcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let senders = self.tx.get().ok_or_else(|| ApiError::Unavailable("The usage writer is not running.".into()))?;
        if senders.len() == 1 {
            return send(&senders[0], tenant, now, items).await;
        }
        let writers: Vec<usize> =
            items.iter().map(|i| writer_of(tenant.org_id, tenant.env, &i.customer_id, senders.len())).collect();
        if writers.iter().all(|&w| w == writers[0]) {
            return send(&senders[writers[0]], tenant, now, items).await;
        }
        // Split by writer, then take each item's answer from its writer's, in order.
        let mut shares: Vec<Vec<Item>> = senders.iter().map(|_| Vec::new()).collect();
        for (item, &w) in items.into_iter().zip(&writers) {
            shares[w].push(item);
        }
        let tenant = &tenant;
        let answers =
            futures::future::try_join_all(shares.into_iter().zip(senders).map(|(share, sender)| async move {
                if share.is_empty() {
                    Ok(Vec::new())
                } else {
                    send(sender, tenant.clone(), now, share).await
                }
            }))
            .await?;
        let mut answers: Vec<_> = answers.into_iter().map(Vec::into_iter).collect();
        writers
            .iter()
            .map(|&w| {
                answers[w].next().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the usage writer gave no answer")))
            })
            .collect()
    }

    /// [`Ingest::submit`] for one item.
    pub async fn submit_one(
        &self,
        tenant: Tenant,
        now: DateTime<Utc>,
        customer_id: String,
        op: Op,
    ) -> ApiResult<Outcome> {
        let mut outcomes = self.submit(tenant, now, vec![Item { customer_id, op }]).await?;
        outcomes.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the usage writer gave no answer")))
    }

    /// The fold generation of a customer's share: read before and after
    /// building its state from the database; the state holds iff both reads
    /// are equal and even.
    pub fn fold_generation(&self, tenant: &Tenant, customer_id: &str) -> u64 {
        self.pending.of(tenant, customer_id).map_or(0, |s| s.generation.load(Ordering::SeqCst))
    }

    /// The additions of a customer not yet in the counter rows.
    pub fn pending_of(&self, tenant: &Tenant, customer_id: &str) -> Counters {
        self.pending
            .of(tenant, customer_id)
            .and_then(|s| s.lock().get(tenant, customer_id).cloned())
            .unwrap_or_default()
    }

    /// Empties every share's sums (their additions are now in the rows).
    pub(crate) fn clear_pending(&self) {
        for share in self.pending.shares() {
            share.lock().clear();
        }
    }

    /// See [`Pending::turn_generations`].
    pub(crate) fn turn_generations(&self) {
        self.pending.turn_generations()
    }
}

/// Sends one job to one writer and waits for its answer.
async fn send(
    sender: &mpsc::Sender<Job>,
    tenant: Tenant,
    now: DateTime<Utc>,
    items: Vec<Item>,
) -> ApiResult<Vec<Outcome>> {
    let (reply, answer) = oneshot::channel();
    let job = Job { tenant, now, items, reply: Some(reply) };
    sender.send(job).await.map_err(|_| ApiError::Unavailable("The server is shutting down.".into()))?;
    match answer.await {
        Ok(Ok(outcomes)) => Ok(outcomes),
        Ok(Err(e)) => Err(ApiError::Internal(anyhow::anyhow!("usage write failed: {e}"))),
        Err(_) => Err(ApiError::Unavailable("The server is shutting down.".into())),
    }
}

/// The running writers.
pub struct Writer {
    stop: tokio::sync::watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
}

impl Writer {
    /// Stops the writers after the groups they are applying (every answered
    /// request's group has committed; what is unfolded stays in the journal).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for done in self.done {
            let _ = done.await;
        }
    }
}

/// Takes the usage counters over (folding what an earlier process left
/// unfolded), then starts the writers.
///
/// On SQLite the writer runs on a thread of its own, with the journal's
/// connection: its transaction waits on nothing but the database, and on a
/// busy machine each of its steps would otherwise queue behind the requests
/// it is serving. On PostgreSQL the usage lock decides whether this process
/// defers counters ([`crate::usage_owner`]).
pub async fn start(state: AppState) -> anyhow::Result<Writer> {
    let sqlite = state.store.backend() == Backend::Sqlite;
    // SQLite has one writer connection. On PostgreSQL several writers commit
    // at once, each for its own customers (so no two of them ever change the
    // same counter), leaving a share of the pool to readers.
    let writers =
        if sqlite { 1 } else { state.config.usage_writers.min(state.config.db_max_connections / 2).max(1) } as usize;
    let _ = state.ingest.pending.shares.set((0..writers).map(|_| Share::default()).collect());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut done = Vec::new();
    if sqlite {
        let mut w = state.store.begin(&system_tenant()).await?;
        let (replayed, epoch) = w.take_usage(state.clock.now(), Some(1), &writer_of).await?;
        w.commit().await?;
        state.ingest.mode.epoch.store(epoch, Ordering::SeqCst);
        state.ingest.mode.deferring.store(true, Ordering::SeqCst);
        if replayed > 0 {
            tracing::info!(events = replayed, "usage journal: folded the counts of events stored before the last stop");
        }
    } else {
        done.push(crate::usage_owner::start(&state, writers, stopped.clone()).await?);
    }
    let mut senders = Vec::new();
    for writer in 0..writers {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        senders.push(tx);
        let (done_tx, done_rx) = oneshot::channel();
        done.push(done_rx);
        let (state, stopped) = (state.clone(), stopped.clone());
        let journal = state.store.open_journal()?;
        let run = async move {
            run(state, writer, rx, stopped, journal).await;
            let _ = done_tx.send(());
        };
        if sqlite {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            std::thread::Builder::new().name("kelviq-usage-writer".into()).spawn(move || runtime.block_on(run))?;
        } else {
            tokio::spawn(run);
        }
    }
    let _ = state.ingest.tx.set(senders);
    Ok(Writer { stop, done })
}

/// The tenant a unit of work starts with when it spans tenants.
pub(crate) fn system_tenant() -> Tenant {
    Tenant { org_id: uuid::Uuid::nil(), org_seq: 0, env: Environment::Sandbox }
}

/// What a writer's group runs under: its share, and how counters are kept.
#[derive(Clone, Copy)]
struct Turn {
    writer: usize,
    defer: bool,
    epoch: i64,
}

async fn run(
    state: AppState,
    writer: usize,
    mut rx: mpsc::Receiver<Job>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut journal: Option<EventJournal>,
) {
    let sqlite = state.store.backend() == Backend::Sqlite;
    let fold_interval = Duration::from_millis(state.config.usage_fold_interval_ms.max(1));
    let mut last_fold = Instant::now();
    let mut answers = Answers::new(&state, journal.as_ref());
    // On PostgreSQL, groups of plain events run on a connection kept while
    // the writer is busy (see `KeptConnection`).
    let mut kept = KeptConnection::default();
    let mode = state.ingest.mode.clone();
    loop {
        let first = tokio::select! {
            _ = stop.changed() => return,
            next = tokio::time::timeout(fold_interval, rx.recv()) => match next {
                Ok(Some(job)) => Some(job),
                Ok(None) => return,
                Err(_) => None,
            },
        };
        let mut batch: Vec<Job> = first.into_iter().collect();
        let mut items: usize = batch.iter().map(|j| j.items.len()).sum();
        while items < MAX_ITEMS {
            match rx.try_recv() {
                Ok(job) => {
                    items += job.items.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        // Until answered, a state built from the database is not cached for
        // these customers: it may or may not hold this group's changes.
        for job in &batch {
            for item in &job.items {
                state.entitlements.writing(&job.tenant, &item.customer_id);
            }
        }
        let gate = mode.gate.read().await;
        let turn = mode.turn(writer);
        let pending = state.ingest.pending.share(writer).len();
        let fold = turn.defer && pending > 0 && (last_fold.elapsed() >= fold_interval || pending >= FOLD_MAX);
        if batch.is_empty() && !fold {
            kept.release();
            continue;
        }
        metrics::histogram!("ingest_batch_size").record(items as f64);
        let started = Instant::now();
        let applied = apply_guarded(&state, turn, &batch, fold, journal.as_mut(), &mut kept, &answers).await;
        metrics::histogram!("ingest_batch_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(items, fold, ms = started.elapsed().as_secs_f64() * 1000.0, "usage batch committed");
        // A deferred group that failed on PostgreSQL may have committed (its
        // answer lost): its events are then stored without their sums here,
        // so the counters are taken over again from the database before
        // anything else is written or folded; its requests are then retried
        // (what it stored reads as stored before). Data the database
        // refused committed nothing, and would be refused again.
        let resyncs = |turn: Turn, e: &Failed| !sqlite && turn.defer && !e.refused_data;
        if !batch.is_empty() {
            state.ingest.record(writer, Step::Group, applied.is_ok());
        }
        // A fold that keeps failing leaves the counter rows behind (and the
        // sums growing in memory) even while every request is answered.
        if fold {
            state.ingest.record(writer, Step::Fold, applied.as_ref().is_ok_and(|a| a.folded));
        }
        match applied {
            Ok(a) => {
                if a.folded {
                    last_fold = Instant::now();
                }
                answers.deliver(batch, a)
            }
            // A failed fold fails no request: the group is retried without it.
            Err(e) if fold || batch.len() > 1 || resyncs(turn, &e) => {
                tracing::warn!(error = %e, jobs = batch.len(), fold, "usage batch failed; retrying its requests one by one");
                drop(gate);
                if resyncs(turn, &e) {
                    crate::usage_owner::resync(&state).await;
                }
                for job in batch {
                    let one = vec![job];
                    let gate = mode.gate.read().await;
                    let turn = mode.turn(writer);
                    let applied = apply_guarded(&state, turn, &one, false, journal.as_mut(), &mut kept, &answers).await;
                    state.ingest.record(writer, Step::Group, applied.is_ok());
                    match applied {
                        Ok(a) => answers.deliver(one, a),
                        Err(e) => {
                            answers.fail(one, &e.message);
                            drop(gate);
                            if resyncs(turn, &e) {
                                crate::usage_owner::resync(&state).await;
                            }
                        }
                    }
                }
            }
            Err(e) => answers.fail(batch, &e.message),
        }
    }
}

/// Why a group failed.
#[derive(Debug)]
struct Failed {
    message: String,
    /// The database refused the data (a data exception or an integrity
    /// violation): nothing was written, and the same data fails again.
    refused_data: bool,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ApplyError> for Failed {
    fn from(e: ApplyError) -> Failed {
        let refused_data = match &e {
            kelviq_store::StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
            }
            _ => false,
        };
        Failed { message: e.to_string(), refused_data }
    }
}

/// Where committed groups are answered. With the journal (SQLite), on a
/// thread of its own: the writer begins its next transaction while the
/// last ones' requests are answered (the journal's commits synced to disk,
/// the state and the pending sums updated, then the replies sent), in the
/// order the groups committed.
struct Answers {
    state: AppState,
    thread: Option<(std::sync::mpsc::Sender<Answer>, std::thread::JoinHandle<()>)>,
    /// Without the thread: the writer syncs the journal's commits itself.
    sync: Option<WalSync>,
}

enum Answer {
    Group(Vec<Job>, Applied),
    /// Sent back once every group handed over before it is answered.
    Settled(oneshot::Sender<()>),
}

impl Answers {
    /// With the journal, the answers have a thread, which syncs its commits.
    fn new(state: &AppState, journal: Option<&EventJournal>) -> Answers {
        let Some(journal) = journal else {
            return Answers { state: state.clone(), thread: None, sync: None };
        };
        let (tx, rx) = std::sync::mpsc::channel::<Answer>();
        let answering = state.clone();
        let mut sync = journal.wal_sync();
        let thread = std::thread::Builder::new().name("kelviq-usage-answers".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                // Everything handed over by now: one sync makes all of it durable.
                let mut answers = vec![first];
                answers.extend(rx.try_iter());
                let synced = if answers.iter().any(|a| matches!(a, Answer::Group(_, applied) if applied.unsynced)) {
                    sync_journal(&mut sync)
                } else {
                    Ok(())
                };
                for answer in answers {
                    match answer {
                        Answer::Group(batch, applied) => {
                            // A bug answering one group must not stop the answers to the next.
                            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                deliver(&answering, batch, applied, synced.as_ref().err().map(String::as_str))
                            }));
                            if answered.is_err() {
                                tracing::error!("answering a committed usage group failed; see the panic above");
                            }
                        }
                        Answer::Settled(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            }
        });
        match thread {
            Ok(thread) => Answers { state: state.clone(), thread: Some((tx, thread)), sync: None },
            Err(e) => {
                tracing::warn!(error = %e, "no thread for usage answers; the writer answers itself");
                Answers { state: state.clone(), thread: None, sync: Some(journal.wal_sync()) }
            }
        }
    }

    fn deliver(&mut self, batch: Vec<Job>, applied: Applied) {
        match &self.thread {
            None => {
                let synced = match &mut self.sync {
                    Some(sync) if applied.unsynced => sync_journal(sync),
                    _ => Ok(()),
                };
                deliver(&self.state, batch, applied, synced.as_ref().err().map(String::as_str))
            }
            Some((tx, _)) => {
                if let Err(std::sync::mpsc::SendError(Answer::Group(batch, applied))) =
                    tx.send(Answer::Group(batch, applied))
                {
                    // Committed, but nobody will sync it now: never acknowledged.
                    deliver(&self.state, batch, applied, Some("the usage answers stopped"))
                }
            }
        }
    }

    fn fail(&self, batch: Vec<Job>, e: &str) {
        fail(&self.state, batch, e)
    }

    /// Waits until every group handed over is answered: the pending sums
    /// then hold every commit's (a fold or an ordered change reads them).
    async fn settled(&self) {
        if let Some((tx, _)) = &self.thread {
            let (done, settled) = oneshot::channel();
            if tx.send(Answer::Settled(done)).is_ok() {
                let _ = settled.await;
            }
        }
    }
}

impl Drop for Answers {
    /// Answers what was handed over before the writer reports it stopped.
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.thread.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// Ends the in-flight marks of a job's writes (see [`crate::entitlements::Engine::writing`]).
fn written(state: &AppState, job: &Job) {
    for item in &job.items {
        state.entitlements.written(&job.tenant, &item.customer_id);
    }
}

/// Drops the cached states of a job's customers: the next check builds them
/// from the database.
fn rebuild(state: &AppState, job: &Job) {
    for item in &job.items {
        state.entitlements.evict(job.tenant.org_id, job.tenant.env, &item.customer_id);
    }
}

fn fail(state: &AppState, batch: Vec<Job>, e: &str) {
    for mut job in batch {
        // A failure can follow a commit whose answer was lost (the
        // connection closed): the database is the one to ask.
        rebuild(state, &job);
        written(state, &job);
        if let Some(reply) = job.reply.take() {
            let _ = reply.send(Err(e.to_string()));
        }
    }
}

/// Applies a group: plain events through the journal's connection when
/// there is one (after a fold of its own when one is due), or while
/// deferring on PostgreSQL with one statement; plain events of one tenant
/// counted at once on PostgreSQL with one statement; anything else with
/// [`apply`]. A bug fails the group rather than stopping the writer.
async fn apply_guarded(
    state: &AppState,
    turn: Turn,
    batch: &[Job],
    fold: bool,
    journal: Option<&mut EventJournal>,
    kept: &mut KeptConnection,
    answers: &Answers,
) -> Result<Applied, Failed> {
    use futures::FutureExt;
    let applied = async {
        match journal {
            Some(journal) if !batch.is_empty() && plain_events(batch) => {
                let folded = fold && {
                    answers.settled().await;
                    apply(state, turn, &[], true).await?.folded
                };
                Ok(Applied { folded, ..append_plain(state, batch, journal).await? })
            }
            None if turn.defer && single_tenant(batch) && plain_events(batch) => {
                let folded = fold && {
                    kept.release();
                    apply(state, turn, &[], true).await?.folded
                };
                Ok(Applied { folded, ..append_statement(state, batch, kept, Some(turn)).await? })
            }
            None if !turn.defer && single_tenant(batch) && plain_events(batch) => {
                append_statement(state, batch, kept, None).await
            }
            _ => {
                // The pool's connections are left to `apply` and to readers.
                kept.release();
                answers.settled().await;
                apply(state, turn, batch, fold).await
            }
        }
    };
    match std::panic::AssertUnwindSafe(applied).catch_unwind().await {
        Ok(applied) => applied.map_err(|e: ApplyError| Failed::from(e)),
        Err(_) => {
            Err(Failed { message: "the usage writer failed; see the server log".to_string(), refused_data: false })
        }
    }
}

/// What one transaction did.
struct Applied {
    /// Per job, per item.
    outcomes: Vec<Vec<Outcome>>,
    /// Additions committed in the journal only (SQLite), for [`Pending`].
    deferred: Vec<Deferred>,
    folded: bool,
    /// The group's customers are built again from the database: an
    /// attempt whose answer was lost may have counted some of its events,
    /// which then read as stored before and change nothing here.
    rebuild: bool,
    /// Committed by the journal, which leaves the sync to its caller: no
    /// answer before [`WalSync::sync`].
    unsynced: bool,
}

type ApplyError = kelviq_store::StoreError;

/// An addition left to the next fold: (job, item, feature, period start, delta).
type Deferred = (usize, usize, String, i64, i64);

/// Syncs the journal's commits to disk, timed.
fn sync_journal(sync: &mut WalSync) -> Result<(), String> {
    let started = Instant::now();
    let synced = sync.sync();
    metrics::histogram!("ingest_sync_seconds").record(started.elapsed().as_secs_f64());
    synced.map_err(|e| {
        tracing::error!(error = %e, "syncing the usage journal failed: its last groups are answered with errors");
        format!("the usage journal could not be synced to disk: {e}")
    })
}

/// Updates this process's state and answers each request; with `unsynced`
/// (why the group's commit is not known to be on disk), each request is
/// answered with that error instead: the state still takes the group's
/// changes, which the database shows, but nothing is acknowledged, and a
/// retry is answered from what the journal stored.
fn deliver(state: &AppState, batch: Vec<Job>, applied: Applied, unsynced: Option<&str>) {
    let unsynced = unsynced.filter(|_| applied.unsynced);
    // A group is one writer's: its customers are all in that writer's share.
    let share = applied
        .deferred
        .first()
        .and_then(|(j, i, ..)| state.ingest.pending.of(&batch[*j].tenant, &batch[*j].items[*i].customer_id));
    if let Some(share) = share {
        let mut sums = share.lock();
        for (j, i, feature, start, delta) in &applied.deferred {
            let job = &batch[*j];
            let customers = sums.tenant_mut(&job.tenant);
            let customer_id = job.items[*i].customer_id.as_str();
            match customers.get_mut(customer_id) {
                Some(c) => c.add(feature, *start, *delta),
                None => customers.entry(customer_id.into()).or_default().add(feature, *start, *delta),
            }
        }
    }
    for (mut job, outcomes) in batch.into_iter().zip(applied.outcomes) {
        let changed = job.items.iter().zip(&outcomes).filter(|(_, o)| !o.counters.is_empty());
        state
            .entitlements
            .apply_counters(&job.tenant, changed.map(|(item, o)| (item.customer_id.as_str(), o.counters.as_slice())));
        if applied.rebuild {
            rebuild(state, &job);
        }
        written(state, &job);
        if let Some(reply) = job.reply.take() {
            let _ = reply.send(match unsynced {
                None => Ok(outcomes),
                Some(e) => Err(e.to_string()),
            });
        }
    }
}

/// A counter of one customer: (org, env, customer, feature, period start).
type CounterKey = (uuid::Uuid, Environment, String, String, i64);

fn counter_key(tenant: &Tenant, customer_id: &str, feature: &str, period_start: i64) -> CounterKey {
    (tenant.org_id, tenant.env, customer_id.to_string(), feature.to_string(), period_start)
}

/// The targets of an item (a consume's counter as an addition).
fn item_targets(item: &Item) -> Vec<(&str, i64, bool)> {
    match &item.op {
        Op::Event { targets, .. } | Op::Report { targets, .. } => targets
            .iter()
            .map(|t| {
                (t.feature.as_str(), t.period_start, matches!(t.change, CounterChange::Add(_)) && t.alerts.is_none())
            })
            .collect(),
        Op::Consume(c) => vec![(c.feature.as_str(), c.period_start, false)],
    }
}

/// Applies a group in one transaction. Events, plain additions and (on
/// PostgreSQL) counters are written with one statement per few hundred
/// rows; anything whose order matters (SET, MAX, LATEST, UNIQUE_COUNT,
/// alerts, consumes) runs item by item, in arrival order, for the counters
/// it touches.
async fn apply(state: &AppState, turn: Turn, batch: &[Job], mut fold: bool) -> Result<Applied, ApplyError> {
    let Turn { writer, defer, epoch } = turn;
    let pending = state.ingest.pending.share(writer);
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);

    // Counters some item changes in an order-sensitive way.
    let mut ordered: HashSet<CounterKey> = HashSet::new();
    for job in batch {
        for item in &job.items {
            for (feature, start, plain) in item_targets(item) {
                if !plain {
                    ordered.insert(counter_key(&job.tenant, &item.customer_id, feature, start));
                }
            }
        }
    }
    // An ordered change reads the counter row, so it must hold everything.
    if defer && !fold && ordered.iter().any(|k| pending.contains(k)) {
        fold = true;
    }

    let mut w = state.store.begin(&batch.first().map_or_else(system_tenant, |j| j.tenant.clone())).await?;
    if defer {
        w.fence_usage(writer, epoch).await?;
    }
    if fold {
        fold_pending(&mut w, pending, writer, now).await?;
    }

    // Events: each key's first occurrence in the group is stored unless its
    // tenant stored the key before; what it adds is counted later on SQLite.
    let is_ordered = |tenant: &Tenant, item: &Item, t: &Target| {
        !ordered.is_empty() && ordered.contains(&counter_key(tenant, &item.customer_id, &t.feature, t.period_start))
    };
    let deferrable = |tenant: &Tenant, item: &Item, t: &Target| {
        defer && matches!(t.change, CounterChange::Add(_)) && !is_ordered(tenant, item, t)
    };
    let plan = EventPlan::new(batch, deferrable);
    let skipped = w.insert_events(&plan.rows(batch), now).await?;
    let mut stored = HashMap::new();
    for (tenant, keys) in plan.earlier(batch, &skipped).values() {
        for e in w.find_events(tenant, keys).await? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
    }
    let seen = plan.seen(&skipped, stored);

    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(batch.len());
    let mut adds: HashMap<CounterKey, i64> = HashMap::new();
    let mut deferred = Vec::new();
    for (j, job) in batch.iter().enumerate() {
        let mut job_outcomes = Vec::with_capacity(job.items.len());
        w.switch_tenant(&job.tenant);
        for (i, item) in job.items.iter().enumerate() {
            let outcome = match &item.op {
                Op::Event { event, targets } => {
                    if let Some(repeated) = seen.repeated(batch, j, i, &job.tenant, event) {
                        repeated
                    } else {
                        let mut later = Vec::new();
                        let to = Counting { ordered: &ordered, adds: &mut adds, deferred: defer.then_some(&mut later) };
                        let counters = count(&mut w, job, item, targets, to).await?;
                        deferred.extend(later.into_iter().map(|(f, start, n)| (j, i, f, start, n)));
                        Outcome::fresh(Value::Null, counters)
                    }
                }
                Op::Report { key, targets, response } => {
                    let first = match key {
                        Some(k) => w.find_key("usage", k).await?,
                        None => None,
                    };
                    if let Some(first) = first {
                        Outcome::repeated(serde_json::from_str(&first).unwrap_or(Value::Null), None)
                    } else {
                        let to = Counting { ordered: &ordered, adds: &mut adds, deferred: None };
                        let counters = count(&mut w, job, item, targets, to).await?;
                        if let Some(k) = key {
                            w.save_key("usage", k, &response.to_string(), job.now).await?;
                        }
                        Outcome::fresh(response.clone(), counters)
                    }
                }
                Op::Consume(c) => consume(&mut w, job, item, c).await?,
            };
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }

    let tenants: HashMap<(uuid::Uuid, Environment), &Tenant> =
        batch.iter().map(|j| ((j.tenant.org_id, j.tenant.env), &j.tenant)).collect();
    let add_rows: Vec<AddRow<'_>> = adds
        .iter()
        .map(|(k, delta)| AddRow {
            tenant: tenants[&(k.0, k.1)],
            customer_id: &k.2,
            feature: &k.3,
            period_start: k.4,
            delta: *delta,
        })
        .collect();
    w.add_counters(&add_rows, now).await?;
    drop(add_rows);

    // Customers changed per tenant, announced once per tenant to the other
    // processes sharing the database (on SQLite one process serves: the
    // counts of its events are in its memory until folded).
    let mut changed: BTreeMap<(uuid::Uuid, &'static str), (&Tenant, Vec<&str>)> = BTreeMap::new();
    for (job, job_outcomes) in batch.iter().zip(&outcomes).filter(|_| !defer) {
        for (item, o) in job.items.iter().zip(job_outcomes) {
            if !o.counters.is_empty() {
                let entry = changed
                    .entry((job.tenant.org_id, job.tenant.env.as_str()))
                    .or_insert_with(|| (&job.tenant, Vec::new()));
                entry.1.push(&item.customer_id);
            }
        }
    }
    for (tenant, mut customers) in changed.into_values() {
        customers.sort_unstable();
        customers.dedup();
        let customers: Vec<String> = customers.into_iter().map(str::to_string).collect();
        w.switch_tenant(tenant);
        // Stamped with the server's time, not a tenant's test clock: the feed
        // is pruned by the server's time.
        w.usage_changed(&customers, &state.origin, state.clock.now()).await?;
    }
    if fold {
        // From here until the sums are cleared, the rows may hold what the
        // sums hold: state built meanwhile is built again.
        pending.generation.fetch_add(1, Ordering::SeqCst);
        let committed = w.commit().await;
        if committed.is_ok() {
            pending.lock().clear();
        }
        pending.generation.fetch_add(1, Ordering::SeqCst);
        committed?;
    } else {
        w.commit().await?;
    }
    Ok(Applied { outcomes, deferred, folded: fold, rebuild: false, unsynced: false })
}

/// A tenant's idempotency key of an event: (org, env, key).
type EventKey<'a> = (uuid::Uuid, Environment, &'a str);

/// The events of a group to store: each key's first occurrence, with the
/// additions it leaves to be counted later.
struct EventPlan<'b> {
    /// Where each key first occurs: (job, item).
    first_of: HashMap<EventKey<'b>, (usize, usize)>,
    /// (job, item, additions left unfolded) of each first occurrence, in order.
    firsts: Vec<(usize, usize, Additions)>,
}

impl<'b> EventPlan<'b> {
    fn new(batch: &'b [Job], deferrable: impl Fn(&Tenant, &Item, &Target) -> bool) -> EventPlan<'b> {
        let mut first_of = HashMap::new();
        let mut firsts = Vec::new();
        for (j, job) in batch.iter().enumerate() {
            for (i, item) in job.items.iter().enumerate() {
                if let Op::Event { event, targets } = &item.op {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        first_of.entry((job.tenant.org_id, job.tenant.env, event.key.as_str()))
                    {
                        e.insert((j, i));
                        let unfolded = targets
                            .iter()
                            .filter(|t| deferrable(&job.tenant, item, t))
                            .map(|t| match t.change {
                                CounterChange::Add(n) => (t.feature.clone(), t.period_start, n),
                                _ => unreachable!("only additions are deferred"),
                            })
                            .collect();
                        firsts.push((j, i, unfolded));
                    }
                }
            }
        }
        EventPlan { first_of, firsts }
    }

    /// The rows to insert, in the order of `firsts`.
    fn rows<'r>(&'r self, batch: &'r [Job]) -> Vec<EventRow<'r>> {
        self.firsts
            .iter()
            .filter_map(|(j, i, unfolded)| {
                let Op::Event { event, .. } = &batch[*j].items[*i].op else { return None };
                Some(EventRow {
                    tenant: &batch[*j].tenant,
                    customer_id: &batch[*j].items[*i].customer_id,
                    event_name: &event.event_name,
                    key: &event.key,
                    at: event.at,
                    resource_id: event.resource_id.as_deref(),
                    properties: &event.properties,
                    unfolded,
                })
            })
            .collect()
    }

    /// The keys, per tenant, of the rows (indexes into `firsts`) that were
    /// stored before this group.
    fn earlier(
        &self,
        batch: &'b [Job],
        skipped: &[usize],
    ) -> HashMap<(uuid::Uuid, Environment), (&'b Tenant, Vec<&'b str>)> {
        let mut earlier: HashMap<_, (&Tenant, Vec<&str>)> = HashMap::new();
        for n in skipped {
            let (j, i, _) = &self.firsts[*n];
            if let Op::Event { event, .. } = &batch[*j].items[*i].op {
                let tenant = &batch[*j].tenant;
                earlier.entry((tenant.org_id, tenant.env)).or_insert_with(|| (tenant, Vec::new())).1.push(&event.key);
            }
        }
        earlier
    }

    /// What the group knows of repeated keys once the rows are written.
    fn seen(self, skipped: &[usize], stored: HashMap<(uuid::Uuid, Environment, String), StoredEvent>) -> Seen<'b> {
        let was_stored = skipped.iter().map(|n| (self.firsts[*n].0, self.firsts[*n].1)).collect();
        Seen { first_of: self.first_of, was_stored, stored }
    }
}

/// Which events of a group repeat a key, and their first answers.
struct Seen<'b> {
    first_of: HashMap<EventKey<'b>, (usize, usize)>,
    /// First occurrences whose key a tenant stored before the group.
    was_stored: HashSet<(usize, usize)>,
    /// Those events, as stored.
    stored: HashMap<(uuid::Uuid, Environment, String), StoredEvent>,
}

impl Seen<'_> {
    /// The answer to event (job, item) if its key was seen before it: the
    /// event first stored, or the group's first one with that key.
    fn repeated(&self, batch: &[Job], j: usize, i: usize, tenant: &Tenant, event: &EventData) -> Option<Outcome> {
        let first = self.first_of[&(tenant.org_id, tenant.env, event.key.as_str())];
        let original = if self.was_stored.contains(&first) {
            let k = (tenant.org_id, tenant.env, event.key.clone());
            self.stored.get(&k).cloned()
        } else if first != (j, i) {
            Some(stored_form(&batch[first.0].items[first.1]))
        } else {
            return None;
        };
        let key_reused = original.as_ref().is_some_and(|o| !same_event(o, &batch[j].items[i]));
        Some(Outcome { key_reused, ..Outcome::repeated(Value::Null, original) })
    }
}

/// Whether every item of a group is an event whose changes are all plain
/// additions (no alerts): on SQLite such a group only appends to the journal.
fn plain_events(batch: &[Job]) -> bool {
    batch.iter().flat_map(|j| &j.items).all(|item| match &item.op {
        Op::Event { targets, .. } => {
            targets.iter().all(|t| matches!(t.change, CounterChange::Add(_)) && t.alerts.is_none())
        }
        _ => false,
    })
}

/// A group of plain events on SQLite, on the journal's own connection: the
/// events are appended and their additions left to the next fold.
async fn append_plain(state: &AppState, batch: &[Job], journal: &mut EventJournal) -> Result<Applied, ApplyError> {
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);
    let plan = EventPlan::new(batch, |_, _, _| true);
    let rows = plan.rows(batch);
    let turn = state.store.write_turn().await?;
    let mut tx = journal.begin()?;
    let skipped = tx.insert_events(&rows, now)?;
    drop(rows);
    let mut stored = HashMap::new();
    for (tenant, keys) in plan.earlier(batch, &skipped).values() {
        for e in tx.find_events(tenant, keys)? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
    }
    tx.commit()?;
    drop(turn);
    let mut deferred = Vec::new();
    let outcomes = plain_outcomes(batch, &plan.seen(&skipped, stored), Some(&mut deferred));
    Ok(Applied { outcomes, deferred, folded: false, rebuild: false, unsynced: true })
}

/// The answers to a plain group's events once stored: a repeated key's
/// first answer, or the additions a fresh event made (also listed in
/// `deferred`, when given, for the pending sums).
fn plain_outcomes(batch: &[Job], seen: &Seen<'_>, mut deferred: Option<&mut Vec<Deferred>>) -> Vec<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for (j, job) in batch.iter().enumerate() {
        let mut job_outcomes = Vec::with_capacity(job.items.len());
        for (i, item) in job.items.iter().enumerate() {
            let Op::Event { event, targets } = &item.op else { unreachable!("a plain group holds only events") };
            let outcome = seen.repeated(batch, j, i, &job.tenant, event).unwrap_or_else(|| {
                let mut counters = Vec::with_capacity(targets.len());
                for t in targets {
                    if let CounterChange::Add(n) = t.change {
                        if let Some(later) = deferred.as_deref_mut() {
                            later.push((j, i, t.feature.clone(), t.period_start, n));
                        }
                        counters.push((t.feature.clone(), t.period_start, Counted::Delta(n)));
                    }
                }
                Outcome::fresh(Value::Null, counters)
            });
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }
    outcomes
}

/// Whether a group is not empty and every job in it is of one tenant.
fn single_tenant(batch: &[Job]) -> bool {
    batch.first().is_some_and(|first| batch.iter().all(|j| j.tenant == first.tenant))
}

/// A group of plain events of one tenant on PostgreSQL in one statement,
/// which is its own transaction (one round trip instead of five): stored,
/// counted and announced; or, with `deferring` (this process defers
/// counters), stored with their additions, which go to the writer's sums.
async fn append_statement(
    state: &AppState,
    batch: &[Job],
    kept: &mut KeptConnection,
    deferring: Option<Turn>,
) -> Result<Applied, ApplyError> {
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);
    let tenant = &batch[0].tenant;
    // Every addition is listed with its event.
    let plan = EventPlan::new(batch, |_, _, _| true);
    let rows = plan.rows(batch);
    let (skipped, retried) = match deferring {
        Some(turn) => {
            (state.store.append_deferred_events(kept, tenant, &rows, now, turn.writer, turn.epoch).await?, false)
        }
        None => {
            // The change row is stamped with the server's time (see `apply`).
            let appended =
                state.store.append_counted_events(kept, tenant, &rows, &state.origin, now, state.clock.now()).await?;
            (appended.skipped, appended.retried)
        }
    };
    drop(rows);
    let mut stored = HashMap::new();
    if let Some((tenant, keys)) = plan.earlier(batch, &skipped).values().next() {
        // Stored by committed work: the statement waited for any other
        // transaction inserting the same key to end.
        let mut w = state.store.begin(tenant).await?;
        for e in w.find_events(tenant, keys).await? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
        w.commit().await?;
    }
    let mut deferred = Vec::new();
    let later = deferring.is_some().then_some(&mut deferred);
    let outcomes = plain_outcomes(batch, &plan.seen(&skipped, stored), later);
    Ok(Applied { outcomes, deferred, folded: false, rebuild: retried, unsynced: false })
}

/// Where a fresh item's changes go.
struct Counting<'a> {
    /// Counters changed in an order-sensitive way somewhere in the group.
    ordered: &'a HashSet<CounterKey>,
    /// Plain additions, written in bulk at the end of the group.
    adds: &'a mut HashMap<CounterKey, i64>,
    /// Where plain additions go instead when they are counted later (events on SQLite).
    deferred: Option<&'a mut Additions>,
}

/// Counts an item's targets: ordered changes at once, additions gathered.
async fn count(
    w: &mut Work,
    job: &Job,
    item: &Item,
    targets: &[Target],
    to: Counting<'_>,
) -> Result<Vec<(String, i64, Counted)>, ApplyError> {
    let Counting { ordered, adds, mut deferred } = to;
    let mut counters = Vec::new();
    for t in targets {
        let key = || counter_key(&job.tenant, &item.customer_id, &t.feature, t.period_start);
        match (&t.change, !ordered.is_empty() && ordered.contains(&key())) {
            (CounterChange::Add(n), false) => {
                match deferred.as_deref_mut() {
                    Some(later) => later.push((t.feature.clone(), t.period_start, *n)),
                    None => {
                        let sum = adds.entry(key()).or_insert(0);
                        *sum = kelviq_core::meters::add_counter(*sum, *n);
                    }
                }
                counters.push((t.feature.clone(), t.period_start, Counted::Delta(*n)));
            }
            _ => counters.push(change(w, job, item, t).await?),
        }
    }
    Ok(counters)
}

/// Adds a writer's pending sums to the counter rows and marks its share folded.
async fn fold_pending(w: &mut Work, pending: &Share, writer: usize, now: DateTime<Utc>) -> Result<(), ApplyError> {
    let snapshot = pending.snapshot();
    let rows: Vec<AddRow<'_>> = snapshot
        .iter()
        .flat_map(|(tenant, customer, sums)| {
            sums.iter().map(move |(feature, period_start, delta)| AddRow {
                tenant,
                customer_id: customer,
                feature,
                period_start,
                delta,
            })
        })
        .collect();
    w.add_counters(&rows, now).await?;
    w.mark_folded(writer).await?;
    Ok(())
}

/// An event of the group, in the form a stored one is read back.
fn stored_form(item: &Item) -> StoredEvent {
    match &item.op {
        Op::Event { event, .. } => StoredEvent {
            key: event.key.clone(),
            customer_id: item.customer_id.clone(),
            event_name: event.event_name.clone(),
            at: event.at,
            resource_id: event.resource_id.clone(),
            properties: event.properties.clone(),
        },
        _ => unreachable!("only events have stored forms"),
    }
}

/// An order-sensitive counter change, applied now.
async fn change(w: &mut Work, job: &Job, item: &Item, t: &Target) -> Result<(String, i64, Counted), ApplyError> {
    let (before, after, announced) =
        w.change_counter(&item.customer_id, &t.feature, t.period_start, &t.change, job.now).await?;
    if let Some(spec) = &t.alerts {
        alert(w, job, &item.customer_id, &t.feature, t.period_start, spec, before, after, &announced).await?;
    }
    Ok((t.feature.clone(), t.period_start, Counted::Value(after)))
}

/// A consume: check the limit and deduct in the same transaction, under the
/// counter's row lock, so concurrent consumes never overspend.
async fn consume(w: &mut Work, job: &Job, item: &Item, c: &ConsumeOp) -> Result<Outcome, ApplyError> {
    let ConsumeOp { key, feature, period_start, value, limit, hard, alerts, response } = c;
    if let Some(first) = w.find_key("consume", key).await? {
        return Ok(Outcome::repeated(serde_json::from_str(&first).unwrap_or(Value::Null), None));
    }
    let customer_id = &item.customer_id;
    let current = w.lock_counter(customer_id, feature, *period_start).await?.map_or(0, |c| c.value);
    let allowed = match limit {
        Some(l) if *hard => current + value <= *l,
        _ => true,
    };
    let mut counters = Vec::new();
    let usage = if allowed {
        let (before, after, announced) =
            w.change_counter(customer_id, feature, *period_start, &CounterChange::Add(*value), job.now).await?;
        if let Some(spec) = alerts {
            alert(w, job, customer_id, feature, *period_start, spec, before, after, &announced).await?;
        }
        counters.push((feature.clone(), *period_start, Counted::Value(after)));
        after
    } else {
        current
    };
    let mut response = response.clone();
    response["allowed"] = json!(allowed);
    response["currentUsage"] = json!(usage);
    response["usageLimit"] = json!(limit);
    response["remaining"] = json!(limit.map(|l| l - usage));
    w.save_key("consume", key, &response.to_string(), job.now).await?;
    Ok(Outcome::fresh(response, counters))
}

/// Writes one `feature.usage_alert` per threshold first crossed this period.
#[allow(clippy::too_many_arguments)]
async fn alert(
    w: &mut Work,
    job: &Job,
    customer_id: &str,
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
    let customer = w.lock_customer(customer_id).await?;
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
    w.set_counter_alerts(customer_id, feature, period_start, &done.join(";")).await
}
