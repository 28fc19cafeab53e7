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

use super::apply::*;
use super::handle::*;
use crate::state::AppState;
use kelviq_store::{Backend, EventJournal, KeptConnection, WalSync};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The running writers.
pub struct Writer {
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    pub(super) done: Vec<oneshot::Receiver<()>>,
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
/// defers counters ([`super::owner`]).
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
        done.push(crate::usage::owner::start(&state, writers, stopped.clone()).await?);
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

pub(super) async fn run(
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
                    crate::usage::owner::resync(&state).await;
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
                                crate::usage::owner::resync(&state).await;
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
pub(super) struct Failed {
    pub(super) message: String,
    /// The database refused the data (a data exception or an integrity
    /// violation): nothing was written, and the same data fails again.
    pub(super) refused_data: bool,
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
pub(super) struct Answers {
    pub(super) state: AppState,
    pub(super) thread: Option<(std::sync::mpsc::Sender<Answer>, std::thread::JoinHandle<()>)>,
    /// Without the thread: the writer syncs the journal's commits itself.
    pub(super) sync: Option<WalSync>,
}

pub(super) enum Answer {
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

/// Ends the in-flight marks of a job's writes (see [`crate::usage::engine::Engine::writing`]).
pub(super) fn written(state: &AppState, job: &Job) {
    for item in &job.items {
        state.entitlements.written(&job.tenant, &item.customer_id);
    }
}

/// Drops the cached states of a job's customers: the next check builds them
/// from the database.
pub(super) fn rebuild(state: &AppState, job: &Job) {
    for item in &job.items {
        state.entitlements.evict(job.tenant.org_id, job.tenant.env, &item.customer_id);
    }
}

pub(super) fn fail(state: &AppState, batch: Vec<Job>, e: &str) {
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
pub(super) async fn apply_guarded(
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

/// Syncs the journal's commits to disk, timed.
pub(super) fn sync_journal(sync: &mut WalSync) -> Result<(), String> {
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
pub(super) fn deliver(state: &AppState, batch: Vec<Job>, applied: Applied, unsynced: Option<&str>) {
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
