//! SQLite's usage path: events stored in bulk through one statement per
//! chunk, their additions left unfolded for the writer's folds (the writer
//! itself appends through the journal connection, `journal.rs`).

use crate::{Result, Work};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::to_micros;
use sqlx::Row;

use super::events::*;

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
