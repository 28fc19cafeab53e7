//! Follows the store's change feed so that every server process learns of
//! changes made by the others (or by the CLI) within a tick: woken by
//! `LISTEN kelviq_changes` on PostgreSQL, polling every 100 ms on SQLite.

use crate::state::AppState;
use kelviq_store::{
    change_subject, usage_wake_payload, Change, ChangeListener, StoreError, TOPIC_API_KEY, TOPIC_CATALOG,
    TOPIC_ENTITLEMENTS, TOPIC_LICENSE, TOPIC_TEST_CLOCK, TOPIC_USAGE,
};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// How far back each read looks again: PostgreSQL transactions may commit
/// in another order than their sequence numbers were drawn.
const LOOKBACK: i64 = 256;
/// How often the feed is read without a wake-up.
const TICK: Duration = Duration::from_millis(100);
/// How often the feed is read at least, whatever wake-ups come (PostgreSQL).
const BACKSTOP: Duration = Duration::from_secs(1);
/// How long feed rows are kept: an hour, but usage rows (one per usage
/// commit on PostgreSQL, so about 2 GB an hour under sustained ingestion)
/// only minutes ([`Retention`]).
const RETENTION_MINUTES: i64 = 60;

/// How long usage rows are kept, how often the feed is pruned, and after how
/// long without reading it a follower may have missed usage rows (and so
/// forgets every customer's state instead).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Retention {
    usage: Duration,
    prune_every: Duration,
    stalled_after: Duration,
}

impl Retention {
    /// Pruning runs three times per usage retention (at most once a minute,
    /// at least once a second). A row a follower has not read is kept at
    /// least `usage` after it was stamped, by the pruning process's clock:
    /// a follower whose previous read began less than `usage` ago has missed
    /// nothing. A fifth of the retention is left for the clocks of several
    /// machines to differ and for the stamped transaction to commit.
    fn new(usage_seconds: u64) -> Retention {
        let usage = Duration::from_secs(usage_seconds.max(2));
        Retention {
            usage,
            prune_every: (usage / 3).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            stalled_after: usage * 4 / 5,
        }
    }
}

/// Acts on one change.
fn dispatch(state: &AppState, change: &Change) {
    if change.topic == TOPIC_API_KEY {
        state.keys.evict(&change.subject);
    } else if change.topic == TOPIC_LICENSE {
        state.licenses.cache.evict(&change.subject);
    } else if change.topic == TOPIC_CATALOG {
        state.entitlements.clear();
        state.licenses.cache.clear();
        crate::usage::meters::forget_all_catalogs();
    } else if change.topic == TOPIC_TEST_CLOCK {
        if let Some((org, env)) = change.subject.split_once(':') {
            if let (Ok(org), Ok(env)) = (org.parse(), env.parse()) {
                crate::clock::forget_offset(state, org, env);
            }
        }
    } else if change.topic == TOPIC_ENTITLEMENTS || change.topic == TOPIC_USAGE {
        if let Some(subject) = change_subject(&change.subject) {
            // A customer's purchases changed: their licenses' state with them.
            if change.topic == TOPIC_ENTITLEMENTS {
                if let Ok(env) = subject.env.parse() {
                    for c in &subject.customers {
                        state.licenses.cache.evict_customer(subject.org, env, c);
                    }
                }
            }
            // This process already applied its own usage writes in place.
            if subject.origin.as_deref() == Some(&*state.origin) {
                return;
            }
            let Ok(env) = subject.env.parse() else { return };
            for c in &subject.customers {
                state.entitlements.evict(subject.org, env, c);
            }
        }
    }
}

/// Remembers which changes were already acted on (within the lookback).
struct Seen {
    order: VecDeque<i64>,
    set: HashSet<i64>,
}

impl Seen {
    fn insert(&mut self, seq: i64) -> bool {
        if !self.set.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > 4 * LOOKBACK as usize {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

async fn read(state: &AppState, last: &mut i64, seen: &mut Seen) -> Result<(), StoreError> {
    metrics::counter!("change_feed_reads_total").increment(1);
    loop {
        // The positions first, then only the changes not yet acted on (the
        // lookback would otherwise read its changes again on every wake-up).
        let seqs = state.store.change_seqs_after((*last - LOOKBACK).max(0), 1000).await?;
        let full = seqs.len() == 1000;
        let mut fresh = seqs.iter().filter(|s| !seen.set.contains(s));
        if let Some(&first) = fresh.next() {
            let newest = fresh.next_back().copied().unwrap_or(first);
            for change in state.store.changes_between(first, newest).await? {
                if seen.insert(change.seq) {
                    dispatch(state, &change);
                }
            }
        }
        if let Some(&newest) = seqs.last() {
            *last = (*last).max(newest);
        }
        if !full {
            return Ok(());
        }
    }
}

/// Runs until the task is aborted or the store closes.
pub async fn follow(state: AppState) {
    let mut last = match state.store.latest_change_seq().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the change feed; changes from other processes arrive only as caches expire");
            return;
        }
    };
    let mut seen = Seen { order: VecDeque::new(), set: HashSet::new() };
    let url = state.config.effective_database_url();
    let mut listener = if url.starts_with("postgres") {
        match ChangeListener::connect(&url).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "no LISTEN connection; following the change feed by polling");
                None
            }
        }
    } else {
        None
    };
    let retention = Retention::new(state.config.change_feed_usage_retention_seconds);
    let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let (prune_every, usage_kept) = (span(retention.prune_every), span(retention.usage));
    let mut prune_at = state.clock.now();
    // This process's own usage writes are in its state already: a wake-up
    // announcing only them needs no read (they are read anyway with the next
    // change of another process, or by the backstop).
    let own_wake = usage_wake_payload(&state.origin);
    // When the last read began, and the last that succeeded.
    let (mut read_at, mut read_ok_at) = (std::time::Instant::now(), std::time::Instant::now());
    loop {
        match listener.as_mut() {
            // A notification, or a poll after a second as a backstop.
            Some(l) => match l.wait(BACKSTOP).await {
                Ok(Some(payload)) if payload == own_wake && read_at.elapsed() < BACKSTOP => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; it reconnects");
                    tokio::time::sleep(TICK).await;
                }
            },
            None => tokio::time::sleep(TICK).await,
        }
        read_at = std::time::Instant::now();
        match read(&state, &mut last, &mut seen).await {
            Ok(()) => {
                let stalled = read_ok_at.elapsed();
                read_ok_at = read_at;
                if stalled >= retention.stalled_after {
                    tracing::warn!(
                        seconds = stalled.as_secs(),
                        "the change feed was not read for longer than usage changes are sure to be kept there: every customer's state is built again"
                    );
                    state.entitlements.clear();
                }
            }
            Err(e) => {
                // The server is stopping: nothing is left to follow.
                if state.store.is_closed() {
                    return;
                }
                // Wait before the next try: queued notifications would otherwise
                // turn a failing read into a busy loop that never yields, so the
                // task could not even be stopped.
                tracing::warn!(error = %e, "reading the change feed failed; retrying");
                tokio::time::sleep(TICK).await;
            }
        }
        let now = state.clock.now();
        if now >= prune_at {
            prune_at = now + prune_every;
            let usage_before = now - usage_kept;
            if let Err(e) =
                state.store.prune_changes(usage_before, now - chrono::Duration::minutes(RETENTION_MINUTES)).await
            {
                tracing::warn!(error = %e, "pruning the change feed failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_prunes_thrice_per_period_and_leaves_a_fifth_as_margin() {
        let default = Retention::new(300);
        assert_eq!(default.usage, Duration::from_secs(300));
        assert_eq!(default.prune_every, Duration::from_secs(60));
        assert_eq!(default.stalled_after, Duration::from_secs(240));
        let long = Retention::new(3600);
        assert_eq!(long.prune_every, Duration::from_secs(60), "at most once a minute");
        let short = Retention::new(3);
        assert_eq!(short.prune_every, Duration::from_secs(1));
        assert_eq!(short.stalled_after, Duration::from_millis(2400));
        assert!(short.stalled_after < short.usage);
    }
}
