//! The dispatcher: claims due deliveries from the database, keeps a queue
//! per endpoint so that one slow or dead endpoint holds at most its own
//! share of the attempts in flight, sends them, and hands each result to a
//! writer that records them in batches.
//!
//! A claimed delivery is leased to this process, which renews the lease
//! while it holds it; if the process dies, the lease ends within an
//! attempt's timeout and a few seconds, and any process takes it again
//! (at least once). Deliveries
//! this process already holds are never started twice, even when a moved
//! clock ends their lease early.

use super::send::attempt;
use crate::state::AppState;
use kelviq_store::{Claimed, Finished};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The most deliveries one claim takes.
const CLAIM_BATCH: usize = 256;
/// The most deliveries this process holds (in flight and waiting).
const MAX_HELD: usize = 2048;
/// The most results written in one transaction.
const WRITE_BATCH: usize = 1024;
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// A delivery that waited longer than this in its endpoint's queue reads
/// its endpoint again before it is sent.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// How long a stopping dispatcher waits for attempts in flight.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// A claim's lease lasts one attempt's timeout and this; the dispatcher
/// renews the leases it holds every [`RENEW_EVERY`], so a process that
/// dies gives its deliveries up this long after its last renewal.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// After a full claim, the next looks past the endpoints with a backlog
/// here for others' deliveries; with a long backlog that reads all of it,
/// so it waits this long after the last claim (nothing else calls for one).
const EXPLORE_AFTER: Duration = Duration::from_millis(100);

/// Starts the dispatcher; it runs until `stop` turns true.
pub fn spawn(state: AppState, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (results, writer) = start_writer(state.clone());
        Dispatcher::new(state, results).run(stop).await;
        let _ = writer.await;
    })
}

/// An endpoint's queue in this process.
#[derive(Default)]
struct Queue {
    /// Claimed deliveries waiting for a slot, with when they were claimed.
    waiting: VecDeque<(Instant, Claimed)>,
    in_flight: usize,
    /// The earliest a rate-limited endpoint may get its next message.
    next_at: Option<Instant>,
}

struct Dispatcher {
    state: AppState,
    queues: HashMap<uuid::Uuid, Queue>,
    /// Seqs of the deliveries this process holds.
    held: HashSet<i64>,
    /// Held deliveries claimed again while in flight (a resend gave their
    /// lease back; a process never re-takes its own lease otherwise): sent
    /// again once the attempt ends.
    reclaimed: HashMap<i64, Claimed>,
    in_flight: usize,
    done_tx: mpsc::UnboundedSender<(uuid::Uuid, Finished)>,
    done_rx: mpsc::UnboundedReceiver<(uuid::Uuid, Finished)>,
    results: mpsc::Sender<Finished>,
    /// The last claim was full: more may be due.
    more_due: bool,
    last_prune: Option<Instant>,
    last_claim: Instant,
    /// When leases were last renewed, and whether any were.
    last_renew: Instant,
    leases_held: bool,
}

impl Dispatcher {
    fn new(state: AppState, results: mpsc::Sender<Finished>) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Dispatcher {
            state,
            queues: HashMap::new(),
            held: HashSet::new(),
            reclaimed: HashMap::new(),
            in_flight: 0,
            done_tx,
            done_rx,
            results,
            more_due: true,
            last_prune: None,
            last_claim: Instant::now(),
            last_renew: Instant::now(),
            leases_held: false,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let poll = self.state.webhooks.settings.poll_interval;
        let bell = self.state.store.webhook_bell().clone();
        let mut claim_now = true;
        loop {
            if *stop.borrow() {
                break;
            }
            let explore = self.more_due && self.last_claim.elapsed() >= EXPLORE_AFTER;
            if claim_now || explore {
                claim_now = false;
                self.last_claim = Instant::now();
                if let Err(e) = self.claim().await {
                    if self.state.store.is_closed() {
                        break;
                    }
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; trying again shortly");
                    self.more_due = false;
                }
            }
            let (wait_rate, drained) = self.start_ready();
            if drained {
                claim_now = true;
                continue;
            }
            self.prune_now_and_then().await;
            self.renew_now_and_then().await;
            let mut sleep = wait_rate.map_or(poll, |w| w.min(poll));
            if self.more_due {
                sleep = sleep.min(EXPLORE_AFTER.saturating_sub(self.last_claim.elapsed()));
            }
            tokio::select! {
                done = self.done_rx.recv() => {
                    if let Some((endpoint, finished)) = done {
                        self.finished(endpoint, finished).await;
                    }
                    // Ready for more of what is due, but without a claim per result.
                    while let Ok((endpoint, finished)) = self.done_rx.try_recv() {
                        self.finished(endpoint, finished).await;
                    }
                }
                _ = bell.rung() => claim_now = true,
                _ = tokio::time::sleep(sleep) => claim_now = !self.more_due && (wait_rate.is_none() || sleep == poll),
                _ = stop.changed() => {}
            }
        }
        self.stop().await;
    }

    /// Claims what is due into the endpoints' queues.
    async fn claim(&mut self) -> anyhow::Result<()> {
        let held = self.held.len();
        if held >= MAX_HELD {
            self.more_due = false;
            return Ok(());
        }
        // Endpoints with a backlog here are served from it first; the
        // moment one's backlog is gone, the dispatcher claims again.
        let busy: Vec<uuid::Uuid> =
            self.queues.iter().filter(|(_, q)| !q.waiting.is_empty()).map(|(id, _)| *id).take(500).collect();
        let limit = CLAIM_BATCH.min(MAX_HELD - held);
        let now = self.state.clock.now();
        let claimed =
            self.state.store.claim_deliveries(&self.state.origin, now, self.lease_end(), limit as i64, &busy).await?;
        self.leases_held |= !claimed.is_empty();
        self.more_due = claimed.len() == limit;
        for c in claimed {
            if !self.held.insert(c.seq) {
                // Still ours and in flight: its lease token is now this one.
                self.reclaimed.insert(c.seq, c);
                continue;
            }
            let endpoint = c.endpoint.as_ref().map_or(uuid::Uuid::nil(), |e| e.id);
            self.queues.entry(endpoint).or_default().waiting.push_back((Instant::now(), c));
        }
        Ok(())
    }

    /// Starts every waiting delivery its endpoint and the process have room
    /// for. Returns how long until a rate-limited endpoint may send again,
    /// and whether an endpoint's backlog ran out (time to claim more).
    fn start_ready(&mut self) -> (Option<Duration>, bool) {
        let mut drained = false;
        let settings = &self.state.webhooks.settings;
        let (cap, global) = (settings.endpoint_concurrency, settings.concurrency);
        let mut soonest: Option<Duration> = None;
        let now = Instant::now();
        for (endpoint, queue) in self.queues.iter_mut() {
            while self.in_flight < global && !queue.waiting.is_empty() {
                let (_, first) = queue.waiting.front().expect("not empty");
                let limits = first.endpoint.as_ref().map(|e| (e.fifo, e.rate_limit));
                let cap = match limits {
                    Some((true, _)) => 1,
                    _ => cap,
                };
                if queue.in_flight >= cap {
                    break;
                }
                if let Some(rate) = limits.and_then(|(_, r)| r).filter(|r| *r > 0) {
                    if let Some(at) = queue.next_at.filter(|at| *at > now) {
                        let wait = at - now;
                        soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
                        break;
                    }
                    queue.next_at = Some(now + Duration::from_secs(1) / rate as u32);
                }
                let (claimed_at, mut claimed) = queue.waiting.pop_front().expect("not empty");
                drained |= queue.waiting.is_empty();
                queue.in_flight += 1;
                self.in_flight += 1;
                let (state, done, endpoint) = (self.state.clone(), self.done_tx.clone(), *endpoint);
                tokio::spawn(async move {
                    // What waited here a while is sent as its endpoint is now
                    // (disabled, deleted or filtered meanwhile: not at all).
                    if claimed_at.elapsed() > STALE_AFTER {
                        if let Some(e) = &claimed.endpoint {
                            match state.store.find_webhook_endpoint(&claimed.tenant, e.id).await {
                                Ok(now) => claimed.endpoint = now,
                                Err(err) => tracing::warn!(error = %err, "re-reading a webhook endpoint failed"),
                            }
                        }
                    }
                    let finished = attempt(&state.webhooks, state.clock.as_ref(), claimed).await;
                    let _ = done.send((endpoint, finished));
                });
            }
        }
        metrics::gauge!("webhook_attempts_in_flight").set(self.in_flight as f64);
        (soonest, drained)
    }

    async fn finished(&mut self, endpoint: uuid::Uuid, finished: Finished) {
        self.in_flight -= 1;
        if let Some(q) = self.queues.get_mut(&endpoint) {
            q.in_flight -= 1;
            if q.in_flight == 0 && q.waiting.is_empty() && q.next_at.is_none_or(|at| at <= Instant::now()) {
                self.queues.remove(&endpoint);
            }
        }
        match self.reclaimed.remove(&finished.seq) {
            Some(again) => {
                let endpoint = again.endpoint.as_ref().map_or(uuid::Uuid::nil(), |e| e.id);
                self.queues.entry(endpoint).or_default().waiting.push_back((Instant::now(), again));
            }
            None => {
                self.held.remove(&finished.seq);
            }
        }
        if self.results.send(finished).await.is_err() {
            tracing::warn!("the webhook result writer has stopped");
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.state.webhooks.settings.timeout + LEASE_MARGIN).unwrap_or(chrono::Duration::MAX)
    }

    /// Where a lease taken or renewed now ends.
    fn lease_end(&self) -> chrono::DateTime<chrono::Utc> {
        self.state.clock.now() + self.lease()
    }

    /// Keeps the leases of what this process holds from ending while it
    /// lives: the deliveries waiting here, in flight, and those whose
    /// results wait for the writer.
    async fn renew_now_and_then(&mut self) {
        let holds = self.leases_held || !self.held.is_empty();
        if !holds || self.last_renew.elapsed() < RENEW_EVERY {
            return;
        }
        self.last_renew = Instant::now();
        // Only those past half their lease: a busy drain renews nothing.
        let half_left = self.state.clock.now() + self.lease() / 2;
        match self.state.store.renew_leases(&self.state.origin, self.lease_end(), half_left).await {
            Ok(n) => self.leases_held = n > 0 || !self.held.is_empty(),
            Err(e) => tracing::warn!(error = %e, "renewing webhook delivery leases failed"),
        }
    }

    async fn prune_now_and_then(&mut self) {
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let before = self.state.clock.now() - self.state.webhooks.settings.retention;
        match self.state.store.prune_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned events past their retention"),
            Err(e) => tracing::warn!(error = %e, "pruning old events failed"),
        }
    }

    /// Lets the attempts in flight finish (for a while), and gives back what waits.
    async fn stop(mut self) {
        let deadline = Instant::now() + STOP_WAIT;
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline.into(), self.done_rx.recv()).await {
                Ok(Some((endpoint, finished))) => self.finished(endpoint, finished).await,
                _ => break,
            }
        }
        let waiting: Vec<(i64, String)> = self
            .queues
            .values()
            .flat_map(|q| q.waiting.iter().map(|(_, c)| c))
            .chain(self.reclaimed.values())
            .map(|c| (c.seq, c.lease_token.clone()))
            .collect();
        if !waiting.is_empty() {
            if let Err(e) = self.state.store.release_deliveries(&waiting).await {
                tracing::warn!(error = %e, "giving back waiting webhook deliveries failed; their lease will end");
            }
        }
    }
}

/// The writer: records finished attempts in batches, retrying on errors.
fn start_writer(state: AppState) -> (mpsc::Sender<Finished>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Finished>(MAX_HELD);
    let task = tokio::spawn(async move {
        let disable = state.webhooks.settings.disable;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(_) => break,
                }
            }
            loop {
                match state.store.finish_deliveries(&batch, disable).await {
                    Ok(disabled) => {
                        // What these results held back (a fifo endpoint's
                        // next delivery) may be claimed now.
                        if batch.iter().any(|f| f.fifo) {
                            state.store.webhook_bell().ring();
                        }
                        for (tenant, endpoint) in disabled {
                            tracing::warn!(org = %tenant.org_id, env = tenant.env.as_str(), endpoint = %endpoint.id,
                                reason = endpoint.disabled_reason.as_deref().unwrap_or(""), "webhook endpoint disabled");
                        }
                        break;
                    }
                    Err(e) if state.store.is_closed() => {
                        tracing::warn!(error = %e, results = batch.len(), "stopping with webhook results unwritten; those deliveries will be attempted again");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "recording webhook attempts failed; trying again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            batch.clear();
        }
    });
    (tx, task)
}
