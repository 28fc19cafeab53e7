//! The change feed: what other server processes must learn about.

use crate::{Backend, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::to_micros;
use sqlx::{Any, Row, Transaction};
use std::sync::{Arc, Mutex};

/// Topic of API key changes; the subject is the key's secret hash.
pub const TOPIC_API_KEY: &str = "api_key";

/// The PostgreSQL channel that wakes followers of the feed.
pub const CHANGES_CHANNEL: &str = "kelviq_changes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub topic: String,
    pub subject: String,
}

/// Wakes the followers of the feed (on PostgreSQL) after commits whose
/// changes were recorded with [`record_quiet_change`]. PostgreSQL makes the
/// commits of transactions that NOTIFY take turns (a lock held until the
/// commit is flushed), which would make the usage writers commit one at a
/// time; a wake-up after the commit costs no flush, and wake-ups asked for
/// while one is on its way, or within [`WAKE_GAP`] of the last, are sent as one.
///
/// A wake-up names the process whose writes it announces
/// ([`usage_wake_payload`]), so that process's own follower, which has
/// applied them already, need not read the feed for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waker(Option<(tokio::sync::mpsc::Sender<()>, NextPayload)>);

/// The payload the next wake-up sends (`None`: the plain topic).
type NextPayload = Arc<Mutex<Option<String>>>;

/// The least time between two wake-ups: a wake-up costs the database and
/// every follower work, and under load the usage writers commit hundreds of
/// times a second; other processes still see a change within milliseconds.
const WAKE_GAP: std::time::Duration = std::time::Duration::from_millis(5);

impl Waker {
    /// Starts the task that sends the wake-ups over `pool`; it ends with the
    /// last handle of the store (or when the pool is closed).
    pub(crate) fn start(pool: &sqlx::AnyPool) -> Waker {
        // One wake-up waiting at most: those asked for meanwhile are the same one.
        let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
        let payload: NextPayload = Arc::default();
        let (pool, next) = (pool.clone(), payload.clone());
        tokio::spawn(async move {
            while woken.recv().await.is_some() && !pool.is_closed() {
                let payload = lock(&next).take().unwrap_or_else(|| crate::TOPIC_USAGE.to_string());
                let sent =
                    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANGES_CHANNEL).bind(payload).execute(&pool).await;
                if let Err(e) = sent {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "waking the change feed's followers failed; they read it within a second anyway");
                }
                // The commits of the next few milliseconds share one wake-up.
                tokio::time::sleep(WAKE_GAP).await;
            }
        });
        Waker(Some((wake, payload)))
    }

    /// Asks for a wake-up announcing the writes of process `origin` (of no
    /// one process when `None`). Wake-ups of different processes sent as one
    /// name none.
    pub(crate) fn wake(&self, origin: Option<&str>) {
        if let Some((w, payload)) = &self.0 {
            let asked = origin.map_or_else(|| crate::TOPIC_USAGE.to_string(), usage_wake_payload);
            {
                let mut next = lock(payload);
                *next = match next.take() {
                    Some(waiting) if waiting != asked => Some(crate::TOPIC_USAGE.to_string()),
                    _ => Some(asked),
                };
            }
            let _ = w.try_send(());
        }
    }
}

fn lock(payload: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    payload.lock().unwrap_or_else(|e| e.into_inner())
}

/// The payload of a wake-up announcing usage written by process `origin`.
pub fn usage_wake_payload(origin: &str) -> String {
    format!("{}@{origin}", crate::TOPIC_USAGE)
}

/// The statement head of a change's row: topic, subject, time.
pub(crate) const CHANGE_INSERT: &str = "INSERT INTO change_feed (topic, subject, created_at)";

/// Records a change inside the caller's transaction (it is seen only if the
/// transaction commits), without waking followers: the caller wakes them
/// with a [`Waker`] once the transaction has committed.
pub(crate) async fn record_quiet_change(
    tx: &mut Transaction<'_, Any>,
    topic: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(&format!("{CHANGE_INSERT} VALUES ($1, $2, $3)"))
        .bind(topic)
        .bind(subject)
        .bind(to_micros(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a change inside the caller's transaction (it is seen only if the
/// transaction commits) and, on PostgreSQL, queues a wake-up for followers.
pub(crate) async fn record_change(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    topic: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    match backend {
        // One round trip: the row and the wake-up.
        Backend::Postgres => {
            sqlx::query(
                "WITH row AS (INSERT INTO change_feed (topic, subject, created_at) VALUES ($1, $2, $3) RETURNING seq) \
                 SELECT pg_notify($4, $1) FROM row",
            )
            .bind(topic)
            .bind(subject)
            .bind(to_micros(now))
            .bind(CHANGES_CHANNEL)
            .execute(&mut **tx)
            .await?;
        }
        Backend::Sqlite => record_quiet_change(tx, topic, subject, now).await?,
    }
    Ok(())
}

impl Store {
    /// The newest position in the feed (0 when empty).
    pub async fn latest_change_seq(&self) -> Result<i64> {
        let row = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) AS seq FROM change_feed")
            .fetch_one(self.read_pool())
            .await?;
        Ok(row.try_get("seq")?)
    }

    /// The positions of the changes after `seq`, oldest first (reading only
    /// the key index: a follower looks back over changes it has seen).
    pub async fn change_seqs_after(&self, seq: i64, limit: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT seq FROM change_feed WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq)
            .bind(limit)
            .fetch_all(self.read_pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("seq")?)).collect()
    }

    /// The changes from position `first` to `last`, both included, oldest first.
    pub async fn changes_between(&self, first: i64, last: i64) -> Result<Vec<Change>> {
        let rows =
            sqlx::query("SELECT seq, topic, subject FROM change_feed WHERE seq >= $1 AND seq <= $2 ORDER BY seq")
                .bind(first)
                .bind(last)
                .fetch_all(self.read_pool())
                .await?;
        rows.iter()
            .map(|r| Ok(Change { seq: r.try_get("seq")?, topic: r.try_get("topic")?, subject: r.try_get("subject")? }))
            .collect()
    }

    /// Drops usage rows older than `usage_before` and the others older than
    /// `before` (the earlier time); followers only look back seconds. One
    /// range of the time index holds every row to drop.
    pub async fn prune_changes(&self, usage_before: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM change_feed WHERE created_at < $1 AND (topic = $2 OR created_at < $3)")
            .bind(to_micros(usage_before.max(before)))
            .bind(crate::TOPIC_USAGE)
            .bind(to_micros(before))
            .execute(self.write_pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// A PostgreSQL connection listening for change-feed wake-ups.
pub struct ChangeListener(sqlx::postgres::PgListener);

impl ChangeListener {
    pub async fn connect(url: &str) -> Result<Self> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Self(listener))
    }

    /// Waits up to `timeout` for a wake-up: `Ok(Some(payload))` when one
    /// came, `Ok(None)` when none did. A lost connection is re-established by
    /// the next wait.
    pub async fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<String>> {
        match tokio::time::timeout(timeout, self.0.recv()).await {
            Ok(Ok(n)) => Ok(Some(n.payload().to_string())),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }
}
