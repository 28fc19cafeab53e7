//! SQLite's usage path (and PostgreSQL's while one process owns usage):
//! events stored with their additions unfolded, left to folds.

use crate::{usage_binds, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;

use super::events::*;

/// Stores a group of one tenant's events with their additions unfolded,
/// if the writer still defers in its epoch (its mark's row is read with a
/// share lock: a takeover waits for this statement, and this one for a
/// takeover to commit, then finds the row gone). Answers the keys stored
/// before, and a NULL if the writer no longer defers. $1 the organisation's
/// id and $2 the environment's bit, $3 the events as JSON, $4 now, $5 the
/// epoch, $6 the writer.
pub(super) const APPEND_DEFERRED: &str = "\
    WITH f AS MATERIALIZED (SELECT epoch FROM usage_fold_marks WHERE writer = $6 FOR KEY SHARE), \
    e AS MATERIALIZED (\
        SELECT * FROM json_to_recordset($3::json) AS e(k text, c text, n text, t bigint, r text, p text, u text)), \
    tn AS MATERIALIZED (SELECT seq * 2 + $2 AS n FROM organizations WHERE id = $1), \
    ins AS (\
        INSERT INTO usage_events (tenant, idempotency_key, customer_id, event_name, event_at, \
        resource_id, properties, received_at, unfolded) \
        SELECT tn.n, e.k, e.c, e.n, e.t, e.r, e.p, $4, e.u FROM e, tn, f WHERE f.epoch = $5 \
        ON CONFLICT DO NOTHING RETURNING idempotency_key) \
    SELECT e.k FROM e WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.idempotency_key = e.k) \
        AND EXISTS (SELECT 1 FROM f WHERE f.epoch = $5) \
    UNION ALL SELECT NULL WHERE NOT EXISTS (SELECT 1 FROM f WHERE f.epoch = $5)";

impl Store {
    /// PostgreSQL, while this process defers counters: stores one tenant's
    /// events with the additions they make left to its next fold (so the
    /// counter rows are not written per event), in one statement that is its
    /// own transaction, provided `writer` still defers in epoch `epoch` (else it
    /// stores nothing and fails with [`crate::StoreError::Fenced`]). Returns
    /// the indexes of the rows whose keys the tenant stored before. Not run
    /// again on a lost connection: whether it committed is then unknown,
    /// and only the database can say which events to count.
    pub async fn append_deferred_events(
        &self,
        kept: &mut crate::KeptConnection,
        tenant: &Tenant,
        rows: &[EventRow<'_>],
        now: DateTime<Utc>,
        writer: usize,
        epoch: i64,
    ) -> Result<Vec<usize>> {
        debug_assert_eq!(self.backend(), crate::Backend::Postgres, "append_deferred_events is PostgreSQL's");
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<EventDoc<'_>> = rows.iter().map(|r| EventDoc::of(r, true)).collect();
        let (org, env) = usage_binds(tenant);
        let answer = sqlx::query(APPEND_DEFERRED)
            .bind(&org)
            .bind(env)
            .bind(serde_json::to_string(&docs).expect("events serialise"))
            .bind(to_micros(now))
            .bind(epoch)
            .bind(writer as i64)
            .fetch_all(kept.get(self.write_pool()).await?)
            .await;
        kept.used(&answer);
        let mut skipped_keys = std::collections::HashSet::new();
        for r in answer? {
            match r.try_get::<Option<String>, _>(0)? {
                Some(key) => skipped_keys.insert(key),
                None => return Err(crate::StoreError::Fenced),
            };
        }
        Ok((0..rows.len()).filter(|&i| skipped_keys.contains(rows[i].key)).collect())
    }
}

impl Work {
    pub(super) async fn insert_events_sqlite(
        &mut self,
        rows: &[EventRow<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        let mut skipped = Vec::new();
        let mut offset = 0;
        // SQLite has one writer: the events stored before this call are those
        // up to the newest sequence number now (a skipped row may still
        // consume a number, so counting back from the last one is not enough).
        let stored_before: i64 = if rows.is_empty() {
            0
        } else {
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM usage_events")
                .fetch_one(&mut **self.tx())
                .await?
                .try_get(0)?
        };
        for chunk in statement_chunks(rows) {
            let mut numbers = Vec::with_capacity(chunk.len());
            for r in chunk {
                numbers.push(self.usage_tenant_number(r.tenant).await?);
            }
            let sql = statement_text("insert_events", self.backend(), chunk.len(), || {
                format!(
                    "INSERT INTO usage_events (tenant, idempotency_key, customer_id, event_name, event_at, \
                     resource_id, properties, received_at, unfolded) VALUES {} ON CONFLICT DO NOTHING",
                    placeholders(self.backend(), chunk.len(), &[None; 9])
                )
            });
            let mut q = sqlx::query(&sql);
            for (r, number) in chunk.iter().zip(numbers) {
                q = q
                    .bind(number)
                    .bind(r.key)
                    .bind(r.customer_id)
                    .bind(r.event_name)
                    .bind(to_micros(r.at))
                    .bind(r.resource_id)
                    .bind(r.properties)
                    .bind(to_micros(now))
                    .bind(encode_unfolded(r.unfolded));
            }
            let done = q.execute(&mut **self.tx()).await?;
            if done.rows_affected() < chunk.len() as u64 {
                let mut older = std::collections::HashSet::new();
                for (tenant, indexes) in by_tenant(chunk.iter().map(|r| r.tenant)) {
                    let keys: Vec<&str> = indexes.iter().map(|&i| chunk[i].key).collect();
                    for key in self.event_keys_before(tenant, &keys, stored_before + 1).await? {
                        older.insert((tenant.org_id, tenant.env, key));
                    }
                }
                for (i, r) in chunk.iter().enumerate() {
                    if older.contains(&(r.tenant.org_id, r.tenant.env, r.key.to_string())) {
                        skipped.push(offset + i);
                    }
                }
            }
            offset += chunk.len();
        }
        Ok(skipped)
    }
}
