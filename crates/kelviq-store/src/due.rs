//! Due work: subscriptions whose renewal, trial end, retry or cancellation
//! falls due, found in due order and locked a batch at a time, and the
//! order ids a batch draws.

use crate::pending::placeholders;
use crate::selling::doc_from_row;
use crate::{tenant_binds, Backend, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use serde::de::DeserializeOwned;
use sqlx::Row;
use std::collections::HashSet;

/// Where a walk through the subscriptions due at one instant stands: the
/// instant and the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuePosition {
    pub at: DateTime<Utc>,
    pub pk: i64,
}

impl Store {
    /// Up to `limit` subscriptions due at one instant, read without a lock
    /// (what their work needs is read before it begins), each with its
    /// position. From the start: those due soonest at or before `until`.
    /// After a position: the next ones due at its instant, so that a long
    /// run never walks again over the rows it has renewed (on PostgreSQL
    /// their old index entries stay until a vacuum).
    pub async fn peek_due<T: DeserializeOwned>(
        &self,
        tenant: &Tenant,
        until: DateTime<Utc>,
        after: Option<DuePosition>,
        limit: i64,
    ) -> Result<Vec<(DuePosition, T)>> {
        let (org, env) = tenant_binds(tenant);
        let q = match after {
            None => sqlx::query(
                "SELECT pk, next_due_at, doc FROM subscriptions WHERE org_id = $1 AND environment = $2 AND next_due_at = \
                 (SELECT MIN(next_due_at) FROM subscriptions WHERE org_id = $1 AND environment = $2 \
                  AND next_due_at IS NOT NULL AND next_due_at <= $3) ORDER BY pk LIMIT $4",
            )
            .bind(org)
            .bind(env)
            .bind(to_micros(until))
            .bind(limit),
            Some(p) => sqlx::query(
                "SELECT pk, next_due_at, doc FROM subscriptions WHERE org_id = $1 AND environment = $2 \
                 AND next_due_at = $3 AND pk > $4 ORDER BY pk LIMIT $5",
            )
            .bind(org)
            .bind(env)
            .bind(to_micros(p.at))
            .bind(p.pk)
            .bind(limit),
        };
        let rows = q.fetch_all(self.read_pool()).await?;
        rows.iter()
            .map(|r| {
                let at = from_micros(r.try_get("next_due_at")?);
                Ok((DuePosition { at, pk: r.try_get("pk")? }, doc_from_row(r)?))
            })
            .collect()
    }

    /// The tenants with subscriptions due at or before `at`.
    pub async fn tenants_with_due_work(&self, at: DateTime<Utc>) -> Result<Vec<(uuid::Uuid, i64, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.org_id, o.seq, s.environment FROM subscriptions s \
             JOIN organizations o ON o.id = s.org_id WHERE s.next_due_at IS NOT NULL AND s.next_due_at <= $1",
        )
        .bind(to_micros(at))
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((crate::uuid_col(r, "org_id")?, r.try_get("seq")?, r.try_get("environment")?))).collect()
    }
}

impl Work {
    /// Those of the subscriptions `ids` still due at or before `at`, locked
    /// until the work ends, in row order; on PostgreSQL without those
    /// another process holds.
    pub async fn lock_due<T: DeserializeOwned>(&mut self, ids: &[String], at: DateTime<Utc>) -> Result<Vec<T>> {
        self.flush().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, env) = tenant_binds(&self.tenant);
        let skip = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "SELECT doc FROM subscriptions WHERE org_id = $1 AND environment = $2 AND next_due_at IS NOT NULL \
             AND next_due_at <= $3 AND id IN {} ORDER BY pk{skip}",
            placeholders(1, ids.len(), 4)
        );
        let q = sqlx::query(&sql).bind(org).bind(env).bind(to_micros(at));
        let rows = ids.iter().fold(q, |q, id| q.bind(id.as_str())).fetch_all(&mut *self.tx).await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// Whether an order or invoice id is taken already (or kept for another order of this work).
    pub async fn order_id_taken(&mut self, order_id: &str, invoice_id: &str) -> Result<bool> {
        let ids = [order_id.to_string(), invoice_id.to_string()];
        Ok(!self.order_ids_taken(&ids).await?.is_empty())
    }

    /// Those of `ids` taken as an order's or an invoice's id, or kept for
    /// another order of this work.
    pub async fn order_ids_taken(&mut self, ids: &[String]) -> Result<HashSet<String>> {
        let mut taken: HashSet<String> = HashSet::new();
        let kept = self.free_order_ids.iter().flat_map(|(_, o, i)| [o, i]);
        let pending = self.pending.iter().flat_map(|p| p.order_ids.iter());
        for id in kept.chain(pending) {
            if ids.contains(id) {
                taken.insert(id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(taken);
        }
        let list = placeholders(1, ids.len(), 1);
        let sql = format!("SELECT id, invoice_id FROM orders WHERE id IN {list} OR invoice_id IN {list}");
        let rows = ids.iter().fold(sqlx::query(&sql), |q, id| q.bind(id.as_str())).fetch_all(&mut *self.tx).await?;
        for row in &rows {
            for col in ["id", "invoice_id"] {
                let id: String = row.try_get(col)?;
                if ids.contains(&id) {
                    taken.insert(id);
                }
            }
        }
        Ok(taken)
    }

    /// Keeps order and invoice id pairs found free, drawn for orders made
    /// at `at` (to the second), for this work's next orders.
    pub fn keep_free_order_ids(&mut self, at: DateTime<Utc>, pairs: Vec<(String, String)>) {
        self.free_order_ids.extend(pairs.into_iter().map(|(o, i)| (at.timestamp(), o, i)));
    }

    /// A kept pair for an order made at `at` (to the second), if any.
    pub fn take_free_order_ids(&mut self, at: DateTime<Utc>) -> Option<(String, String)> {
        let at = at.timestamp();
        let i = self.free_order_ids.iter().position(|(s, _, _)| *s == at)?;
        let (_, o, inv) = self.free_order_ids.swap_remove(i);
        Some((o, inv))
    }
}
