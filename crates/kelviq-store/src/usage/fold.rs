//! Folding deferred additions into the counters, and taking them over.

use crate::{Result, Work};
use chrono::{DateTime, Utc};
use kelviq_core::meters::add_counter;
use kelviq_core::Tenant;
use sqlx::Row;
use std::collections::HashMap;

use super::events::*;

impl Work {
    /// Records that every event of `writer`'s share stored so far has its
    /// additions in the counters (its writer has just folded them, and is
    /// between transactions: any later event of its share gets a greater
    /// sequence number than any handed out by now).
    pub async fn mark_folded(&mut self, writer: usize) -> Result<()> {
        let sql =
            format!("UPDATE usage_fold_marks SET folded_seq = {} WHERE writer = $1", last_event_seq(self.backend()));
        sqlx::query(&sql).bind(writer as i64).execute(&mut **self.tx()).await?;
        Ok(())
    }

    /// PostgreSQL: fails with [`crate::StoreError::Fenced`] unless `writer`
    /// still defers in usage epoch `epoch`, and keeps it so until this
    /// transaction ends (a process taking the counters over waits for it,
    /// then refuses the writer).
    pub async fn fence_usage(&mut self, writer: usize, epoch: i64) -> Result<()> {
        if self.backend() == crate::Backend::Postgres {
            let now: Option<i64> = sqlx::query("SELECT epoch FROM usage_fold_marks WHERE writer = $1 FOR KEY SHARE")
                .bind(writer as i64)
                .fetch_optional(&mut **self.tx())
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            if now != Some(epoch) {
                return Err(crate::StoreError::Fenced);
            }
        }
        Ok(())
    }

    /// Takes over how usage counters are kept: folds the additions of every
    /// event stored after its writer's fold mark, if writers deferred (work
    /// lost when a process stopped before folding), then records the new
    /// way, `writers` deferring writers or none, under a new epoch, which it
    /// returns with how many events it folded. `share_of` is the share (of
    /// `n` writers) a customer belongs to. On PostgreSQL the fold row stays
    /// locked until the transaction ends, and the writers' marks are
    /// replaced: deferred writes of an earlier epoch still running finish
    /// first, and any later one is refused.
    pub async fn take_usage(
        &mut self,
        now: DateTime<Utc>,
        writers: Option<usize>,
        share_of: &(dyn Fn(uuid::Uuid, kelviq_core::Environment, &str, usize) -> usize + Sync),
    ) -> Result<(u64, i64)> {
        let lock = if self.backend() == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = sqlx::query(&format!("SELECT epoch, deferring FROM usage_folds WHERE id = 1{lock}"))
            .fetch_one(&mut **self.tx())
            .await?;
        let (epoch, deferring): (i64, i32) = (row.try_get(0)?, row.try_get(1)?);
        // Read (and on PostgreSQL locked) even when nobody deferred: the
        // lock is what waits for, then refuses, deferred writes in flight.
        let stored = sqlx::query(&format!("SELECT writer, folded_seq FROM usage_fold_marks{lock}"))
            .fetch_all(&mut **self.tx())
            .await?;
        let folded = match usize::try_from(deferring) {
            Ok(n) if n > 0 => {
                let mut marks = vec![0i64; n];
                for r in stored {
                    let writer: i64 = r.try_get(0)?;
                    if let Some(m) = usize::try_from(writer).ok().and_then(|w| marks.get_mut(w)) {
                        *m = r.try_get(1)?;
                    }
                }
                self.fold_after_marks(now, &marks, share_of).await?
            }
            _ => 0,
        };
        let epoch = epoch + 1;
        sqlx::query("UPDATE usage_folds SET epoch = $1, deferring = $2 WHERE id = 1")
            .bind(epoch)
            .bind(writers.unwrap_or(0) as i32)
            .execute(&mut **self.tx())
            .await?;
        sqlx::query("DELETE FROM usage_fold_marks").execute(&mut **self.tx()).await?;
        let mark = format!(
            "INSERT INTO usage_fold_marks (writer, folded_seq, epoch) VALUES ($1, {}, $2)",
            last_event_seq(self.backend())
        );
        for writer in 0..writers.unwrap_or(0) {
            sqlx::query(&mark).bind(writer as i64).bind(epoch).execute(&mut **self.tx()).await?;
        }
        Ok((folded, epoch))
    }

    /// Applies the additions of the events after their share's mark.
    pub(super) async fn fold_after_marks(
        &mut self,
        now: DateTime<Utc>,
        marks: &[i64],
        share_of: &(dyn Fn(uuid::Uuid, kelviq_core::Environment, &str, usize) -> usize + Sync),
    ) -> Result<u64> {
        let n = marks.len();
        let mut sums: HashMap<(uuid::Uuid, kelviq_core::Environment, String, String, i64), i64> = HashMap::new();
        let last: i64 = sqlx::query(&format!("SELECT {}", last_event_seq(self.backend())))
            .fetch_one(&mut **self.tx())
            .await?
            .try_get(0)?;
        // Windows of sequence numbers: each a range read of the key (SQLite)
        // or of the block-range index (PostgreSQL), however many rows follow.
        const WINDOW: i64 = 20_000;
        let (mut after, mut events) = (marks.iter().copied().min().unwrap_or(0), 0u64);
        while after < last {
            let rows = sqlx::query(
                "SELECT e.seq, o.id AS org_id, e.tenant % 2 AS production, e.customer_id, e.unfolded \
                 FROM usage_events e JOIN organizations o ON o.seq = e.tenant / 2 \
                 WHERE e.seq > $1 AND e.seq <= $2 AND e.unfolded <> ''",
            )
            .bind(after)
            .bind(after + WINDOW)
            .fetch_all(&mut **self.tx())
            .await?;
            after += WINDOW;
            for r in &rows {
                let seq: i64 = r.try_get("seq")?;
                let org: String = r.try_get("org_id")?;
                let org: uuid::Uuid =
                    org.parse().map_err(|_| crate::StoreError::Corrupt(format!("organisation id {org}")))?;
                let production: i64 = r.try_get("production")?;
                let env = if production == 1 {
                    kelviq_core::Environment::Production
                } else {
                    kelviq_core::Environment::Sandbox
                };
                let customer: String = r.try_get("customer_id")?;
                if seq <= marks[share_of(org, env, &customer, n) % n] {
                    continue;
                }
                events += 1;
                let text: String = r.try_get("unfolded")?;
                for (feature, start, delta) in decode_unfolded(&text) {
                    let sum = sums.entry((org, env, customer.clone(), feature.to_string(), start)).or_insert(0);
                    *sum = add_counter(*sum, delta);
                }
            }
        }
        let tenants: HashMap<(uuid::Uuid, kelviq_core::Environment), Tenant> =
            sums.keys().map(|(org, env, ..)| ((*org, *env), Tenant { org_id: *org, org_seq: 0, env: *env })).collect();
        let rows: Vec<AddRow<'_>> = sums
            .iter()
            .map(|((org, env, customer, feature, start), delta)| AddRow {
                tenant: &tenants[&(*org, *env)],
                customer_id: customer,
                feature,
                period_start: *start,
                delta: *delta,
            })
            .collect();
        self.add_counters(&rows, now).await?;
        Ok(events)
    }
}

/// The greatest event sequence number handed out so far: on SQLite the
/// newest row's (one writer), on PostgreSQL the sequence's (without reading
/// the table; it covers numbers of transactions still running, which only
/// ever belong to other writers' shares).
pub(super) fn last_event_seq(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => "(SELECT COALESCE(MAX(seq), 0) FROM usage_events)",
        crate::Backend::Postgres => {
            "COALESCE(pg_sequence_last_value(pg_get_serial_sequence('usage_events', 'seq')::regclass), 0)"
        }
    }
}
