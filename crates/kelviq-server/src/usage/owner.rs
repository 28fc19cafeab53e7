//! Which process defers usage counters on PostgreSQL.
//!
//! Deferring counters (leaving each event's additions to a fold, as SQLite
//! always does) is only sound while one process writes usage: its pending
//! sums are in its memory alone. So on PostgreSQL the process holding the
//! usage lock exclusively ([`kelviq_store::UsageLock`]) defers, and every
//! other process counts each event in its own transaction and announces it
//! on the change feed. A process starting while another owns usage asks it
//! to hand over and waits; the owner folds what it deferred and only then
//! lets go. A process that finds itself alone again takes ownership back.
//!
//! Every change of mode happens between the writers' groups (holding the
//! writers' gate) and goes through [`kelviq_store::Work::take_usage`], which
//! reads the database, not memory: it folds whatever was deferred and not
//! yet folded, whoever deferred it, and starts a new epoch, so a deposed
//! owner's later deferred writes store nothing. The same step takes the
//! counters over again when a deferred write failed in a way that may have
//! committed, or when the lock's connection was lost.

use super::handle::{system_tenant, writer_of, Step};
use crate::state::AppState;
use kelviq_store::{HandoverListener, UsageLock};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// What taking the counters over does with the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    /// Keep the role the lock gives (connecting and taking it if it was lost).
    Keep,
    /// Stop deferring and give up ownership.
    HandOver,
    /// Own usage if no other process holds the lock.
    TakeOver,
}

/// Seconds between attempts to take ownership back.
const TAKEOVER_EVERY: u64 = 5;

struct Owner {
    state: AppState,
    url: String,
    writers: usize,
    lock: Option<UsageLock>,
}

impl Owner {
    fn owns(&self) -> bool {
        self.lock.as_ref().is_some_and(UsageLock::owns)
    }

    async fn alive(&mut self) -> bool {
        match &mut self.lock {
            Some(lock) => lock.ping().await.is_ok(),
            None => false,
        }
    }

    /// With no writer in a group: makes sure the lock is held, then takes
    /// the counters over from the database in the role it gives. `forget`
    /// drops every cached customer state (what is stored may differ from
    /// what this process last knew).
    async fn settle(&mut self, intent: Intent, forget: bool) -> anyhow::Result<()> {
        if !self.alive().await {
            self.lock = None;
            let mut lock = UsageLock::connect(&self.url).await?;
            if !lock.try_own().await? {
                lock.share().await?;
            }
            self.lock = Some(lock);
        } else if intent == Intent::TakeOver && !self.lock.as_mut().expect("alive").try_own().await? {
            return Ok(());
        }
        let own = self.owns() && intent != Intent::HandOver;
        let ingest = &self.state.ingest;
        // Odd until the sums are cleared: state built meanwhile may see
        // them both in the rows and in memory, and is built again.
        ingest.turn_generations();
        let taken = async {
            let mut w = self.state.store.begin(&system_tenant()).await?;
            let taken = w.take_usage(self.state.clock.now(), own.then_some(self.writers), &writer_of).await?;
            w.commit().await?;
            Ok::<_, kelviq_store::StoreError>(taken)
        }
        .await;
        if taken.is_ok() {
            ingest.clear_pending();
        }
        ingest.turn_generations();
        let (folded, epoch) = taken?;
        ingest.mode.epoch.store(epoch, Ordering::SeqCst);
        ingest.mode.deferring.store(own, Ordering::SeqCst);
        metrics::gauge!("usage_counters_deferred").set(if own { 1.0 } else { 0.0 });
        metrics::gauge!("usage_epoch").set(epoch as f64);
        if forget {
            self.state.entitlements.clear();
        }
        if intent == Intent::HandOver {
            self.lock.as_mut().expect("held").release_exclusive().await?;
        }
        tracing::info!(
            ?intent,
            deferring = own,
            epoch,
            folded_events = folded,
            "usage counters taken over: {}",
            if own { "this process defers them" } else { "each event is counted as it is stored" }
        );
        Ok(())
    }

    /// [`Owner::settle`] with the writers held at the gate: until it
    /// succeeds or the process stops, or (not `patient`) once. Failures
    /// show in readiness.
    async fn settle_at_gate(&mut self, intent: Intent, forget: bool, patient: bool, stop: &mut watch::Receiver<bool>) {
        let mode = self.state.ingest.mode.clone();
        let _gate = mode.gate.write().await;
        let mut delay = Duration::from_millis(100);
        loop {
            let settled = self.settle(intent, forget).await;
            self.state.ingest.record(0, Step::TakeOver, settled.is_ok());
            let Err(e) = settled else { return };
            if !patient || *stop.borrow() {
                tracing::warn!(error = %e, ?intent, "usage counters: taking over failed; the next start does it");
                return;
            }
            tracing::warn!(error = %e, ?intent, "usage counters: taking over failed; trying again");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Takes the usage lock (waiting for an owner to hand over) and the
/// counters, before any writer starts; then watches the lock in a task.
pub async fn start(
    state: &AppState,
    writers: usize,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<oneshot::Receiver<()>> {
    let mut owner = Owner { state: state.clone(), url: state.config.effective_database_url(), writers, lock: None };
    owner.settle(Intent::Keep, false).await?;
    let (requests_tx, mut requests) = tokio::sync::mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let _ = state.ingest.mode.resync.set(requests_tx);
    let (done_tx, done) = oneshot::channel();
    tokio::spawn(async move {
        let mut listener: Option<HandoverListener> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            if listener.is_none() {
                match HandoverListener::connect(&owner.url).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "usage lock: cannot listen for handover requests"),
                }
            }
            let owns = owner.owns() && listener.is_some();
            tokio::select! {
                _ = stop.changed() => break,
                Some(first) = requests.recv() => {
                    let mut waiting = vec![first];
                    owner.settle_at_gate(Intent::Keep, true, true, &mut stop).await;
                    while let Ok(more) = requests.try_recv() {
                        waiting.push(more);
                    }
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
                asked = async { listener.as_mut().expect("checked").asked().await }, if owns => match asked {
                    Ok(()) => owner.settle_at_gate(Intent::HandOver, false, true, &mut stop).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "usage lock: the handover listener failed");
                        listener = None;
                    }
                },
                _ = tick.tick() => {
                    ticks += 1;
                    if !owner.alive().await {
                        tracing::warn!("usage lock: its connection was lost; taking the counters over again");
                        owner.settle_at_gate(Intent::Keep, true, true, &mut stop).await;
                    } else if !owner.owns() && ticks.is_multiple_of(TAKEOVER_EVERY) {
                        owner.settle_at_gate(Intent::TakeOver, false, true, &mut stop).await;
                    }
                }
            }
        }
        // Stopping: an owner folds what it deferred and stops deferring, so
        // the counter rows are complete (once; if that fails, the next
        // process to take the lock folds from the events).
        if owner.owns() {
            owner.settle_at_gate(Intent::HandOver, false, false, &mut stop).await;
        }
        let _ = done_tx.send(());
    });
    Ok(done)
}

/// Has the counters taken over again from the database (PostgreSQL): after
/// a deferred write failed in a way that may have committed, before the
/// writer writes or folds anything else. Call it outside the writers' gate.
pub async fn resync(state: &AppState) {
    let Some(requests) = state.ingest.mode.resync.get() else { return };
    let (done, settled) = oneshot::channel();
    if requests.send(done).is_ok() {
        let _ = settled.await;
    }
}
