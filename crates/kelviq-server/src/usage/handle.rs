//! The handle requests reach the usage writers through ([`Ingest`]): one
//! queue per writer, the sums each writer deferred, and how counters are kept.

use super::engine::Counters;
use super::items::*;
use super::tenant_map::TenantMap;
use crate::error::{ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use kelviq_core::{Environment, Tenant};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most requests (events, reports, consumes) one transaction carries.
pub(super) const MAX_ITEMS: usize = 20_000;
/// Pending counters that trigger a fold before the interval is over.
pub(super) const FOLD_MAX: usize = 200_000;

#[derive(Debug)]
pub(super) struct Job {
    pub(super) tenant: Tenant,
    pub(super) now: DateTime<Utc>,
    pub(super) items: Vec<Item>,
    pub(super) reply: Option<oneshot::Sender<Result<Vec<Outcome>, String>>>,
}

/// Counter additions: (feature, period start, delta).
pub(super) type Additions = Vec<(String, i64, i64)>;

/// Counter additions committed with their events but not yet in the
/// counter rows, while this process defers counters (SQLite always; on
/// PostgreSQL while it owns usage). One share per writer, each changed and
/// folded by its writer only. State built from the database adds them.
#[derive(Default)]
pub struct Pending {
    pub(super) shares: OnceLock<Vec<Share>>,
}

#[derive(Default)]
pub(super) struct Share {
    pub(super) sums: Mutex<TenantMap<Counters>>,
    /// Odd while a fold commits: the rows may then hold what the sums hold.
    pub(super) generation: AtomicU64,
}

impl Pending {
    pub(super) fn shares(&self) -> &[Share] {
        self.shares.get().map_or(&[], Vec::as_slice)
    }

    pub(super) fn share(&self, writer: usize) -> &Share {
        &self.shares()[writer]
    }

    /// The share of a customer, once the writers run.
    pub(super) fn of(&self, tenant: &Tenant, customer_id: &str) -> Option<&Share> {
        let shares = self.shares();
        (!shares.is_empty()).then(|| &shares[writer_of(tenant.org_id, tenant.env, customer_id, shares.len())])
    }

    /// Marks every share as folding (odd) or done (even).
    pub(super) fn turn_generations(&self) {
        for share in self.shares() {
            share.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Share {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, TenantMap<Counters>> {
        self.sums.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn contains(&self, k: &CounterKey) -> bool {
        let tenant = Tenant { org_id: k.0, org_seq: 0, env: k.1 };
        self.lock().get(&tenant, &k.2).is_some_and(|c| c.iter().any(|(f, s, _)| f == k.3 && s == k.4))
    }

    /// How many customers have pending sums.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every customer's sums: (tenant, customer, sums).
    pub(super) fn snapshot(&self) -> Vec<(Tenant, String, Counters)> {
        self.lock()
            .iter()
            .map(|(org, env, c, v)| (Tenant { org_id: org, org_seq: 0, env }, c.to_string(), v.clone()))
            .collect()
    }
}

/// The writer (of `n`) whose share a customer is in. Stable across
/// processes and versions: recovery assigns stored events to fold marks by it.
pub fn writer_of(org: uuid::Uuid, env: Environment, customer_id: &str, n: usize) -> usize {
    (crate::usage::tenant_map::customer_hash(org, env, customer_id) % n.max(1) as u64) as usize
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
    pub(super) fn turn(&self, writer: usize) -> Turn {
        Turn { writer, defer: self.deferring.load(Ordering::SeqCst), epoch: self.epoch.load(Ordering::SeqCst) }
    }
}

/// The handle requests send jobs through; the writers start with the server.
#[derive(Clone, Default)]
pub struct Ingest {
    /// One queue per writer; a customer's items always go to the same one.
    pub(super) tx: Arc<OnceLock<Vec<mpsc::Sender<Job>>>>,
    pub(super) pending: Arc<Pending>,
    pub(crate) mode: Arc<Mode>,
    /// Since when each writer's groups, or its folds, have failed (none:
    /// the last one committed).
    pub(super) failing: Arc<Mutex<HashMap<(usize, Step), Instant>>>,
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

    pub async fn submit(&self, tenant: Tenant, now: DateTime<Utc>, items: Vec<Item>) -> ServiceResult<Vec<Outcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let senders =
            self.tx.get().ok_or_else(|| ServiceError::Unavailable("The usage writer is not running.".into()))?;
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
                answers[w]
                    .next()
                    .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the usage writer gave no answer")))
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
    ) -> ServiceResult<Outcome> {
        let mut outcomes = self.submit(tenant, now, vec![Item { customer_id, op }]).await?;
        outcomes.pop().ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the usage writer gave no answer")))
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
pub(super) async fn send(
    sender: &mpsc::Sender<Job>,
    tenant: Tenant,
    now: DateTime<Utc>,
    items: Vec<Item>,
) -> ServiceResult<Vec<Outcome>> {
    let (reply, answer) = oneshot::channel();
    let job = Job { tenant, now, items, reply: Some(reply) };
    sender.send(job).await.map_err(|_| ServiceError::Unavailable("The server is shutting down.".into()))?;
    match answer.await {
        Ok(Ok(outcomes)) => Ok(outcomes),
        Ok(Err(e)) => Err(ServiceError::Internal(anyhow::anyhow!("usage write failed: {e}"))),
        Err(_) => Err(ServiceError::Unavailable("The server is shutting down.".into())),
    }
}

/// The tenant a unit of work starts with when it spans tenants.
pub(crate) fn system_tenant() -> Tenant {
    Tenant { org_id: uuid::Uuid::nil(), org_seq: 0, env: Environment::Sandbox }
}

/// What a writer's group runs under: its share, and how counters are kept.
#[derive(Clone, Copy)]
pub(super) struct Turn {
    pub(super) writer: usize,
    pub(super) defer: bool,
    pub(super) epoch: i64,
}

/// A counter of one customer: (org, env, customer, feature, period start).
pub(super) type CounterKey = (uuid::Uuid, Environment, String, String, i64);
