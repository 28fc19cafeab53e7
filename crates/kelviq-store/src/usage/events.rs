//! Raw events: the rows, their stored form, and the statements that store them.

use crate::{Result, Work};
use chrono::{DateTime, Utc};
use kelviq_core::meters::COUNTER_MAX;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A raw event stored in bulk.
pub struct EventRow<'a> {
    pub tenant: &'a Tenant,
    pub customer_id: &'a str,
    pub event_name: &'a str,
    pub key: &'a str,
    pub at: DateTime<Utc>,
    pub resource_id: Option<&'a str>,
    /// The properties, as JSON text.
    pub properties: &'a str,
    /// Counter additions (feature, period start, delta) this event makes that
    /// the same transaction does not apply to the counters.
    pub unfolded: &'a [(String, i64, i64)],
}

/// A stored raw event, as it was first received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub key: String,
    pub customer_id: String,
    pub event_name: String,
    pub at: DateTime<Utc>,
    pub resource_id: Option<String>,
    /// JSON text.
    pub properties: String,
}

/// A counter increment applied in bulk.
pub struct AddRow<'a> {
    pub tenant: &'a Tenant,
    pub customer_id: &'a str,
    pub feature: &'a str,
    pub period_start: i64,
    pub delta: i64,
}

/// `feature<TAB>period_start<TAB>delta` lines.
pub(crate) fn encode_unfolded(adds: &[(String, i64, i64)]) -> String {
    let mut out = String::new();
    write_unfolded(&mut out, adds);
    out
}

/// [`encode_unfolded`] into a buffer.
pub(crate) fn write_unfolded(out: &mut String, adds: &[(String, i64, i64)]) {
    use std::fmt::Write;
    for (feature, start, delta) in adds {
        let _ = writeln!(out, "{feature}\t{start}\t{delta}");
    }
}

pub(super) fn decode_unfolded(text: &str) -> impl Iterator<Item = (&str, i64, i64)> {
    text.lines().filter_map(|l| {
        let mut cells = l.split('\t');
        Some((cells.next()?, cells.next()?.parse().ok()?, cells.next()?.parse().ok()?))
    })
}

/// Rows per multi-row statement (well under both backends' bind limits).
pub(super) const CHUNK: usize = 256;

/// Up to this many rows, a statement has exactly as many rows as it is given.
pub(super) const EXACT: usize = 16;

/// Splits rows into statements of at most [`CHUNK`] rows: up to [`EXACT`]
/// rows in one statement of that size, more in statements whose sizes are
/// powers of two, so that a few prepared statements serve every batch.
pub(super) fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = match rest.len() {
            n if n <= EXACT => n,
            n if n >= CHUNK => CHUNK,
            n => 1 << (usize::BITS - 1 - n.leading_zeros()),
        };
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
    }
    out
}

/// The `n`th bind parameter (from 1): anonymous on SQLite, whose numbered
/// parameters cost a name lookup per bind.
pub(super) fn param(backend: crate::Backend, n: usize) -> String {
    match backend {
        crate::Backend::Sqlite => "?".to_string(),
        crate::Backend::Postgres => format!("${n}"),
    }
}

/// The text of a multi-row statement, built once per (statement, backend,
/// rows) for the life of the process.
pub(super) fn statement_text(
    name: &'static str,
    backend: crate::Backend,
    rows: usize,
    build: impl FnOnce() -> String,
) -> Arc<str> {
    type Texts = Mutex<HashMap<(&'static str, crate::Backend, usize), Arc<str>>>;
    static TEXTS: OnceLock<Texts> = OnceLock::new();
    let texts = TEXTS.get_or_init(Default::default);
    if let Some(t) = texts.lock().unwrap_or_else(|e| e.into_inner()).get(&(name, backend, rows)) {
        return t.clone();
    }
    let text: Arc<str> = build().into();
    texts.lock().unwrap_or_else(|e| e.into_inner()).insert((name, backend, rows), text.clone());
    text
}

/// The change feed's subject for usage changes of these customers, written
/// by process `origin` (read back by [`change_subject`]).
pub(super) fn usage_subject<S: AsRef<str>>(tenant: &Tenant, origin: &str, customers: &[S]) -> String {
    let mut subject = format!("{}:{}:@{origin}", tenant.org_id, tenant.env.as_str());
    for c in customers {
        subject.push('\n');
        subject.push_str(c.as_ref());
    }
    subject
}

/// An event as a row of the JSON documents PostgreSQL reads with
/// `json_to_recordset`, with its unfolded additions (`u`) or without.
#[derive(serde::Serialize)]
pub(super) struct EventDoc<'a> {
    k: &'a str,
    c: &'a str,
    n: &'a str,
    t: i64,
    r: Option<&'a str>,
    p: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<String>,
}

impl<'a> EventDoc<'a> {
    pub(super) fn of(r: &EventRow<'a>, unfolded: bool) -> EventDoc<'a> {
        EventDoc {
            k: r.key,
            c: r.customer_id,
            n: r.event_name,
            t: to_micros(r.at),
            r: r.resource_id,
            p: r.properties,
            u: unfolded.then(|| encode_unfolded(r.unfolded)),
        }
    }
}

/// Rows per JSON document.
pub(super) const JSON_CHUNK: usize = 5_000;

/// The indexes of each tenant's items, tenants in order of first appearance.
pub(super) fn by_tenant<'t>(tenants: impl Iterator<Item = &'t Tenant>) -> Vec<(&'t Tenant, Vec<usize>)> {
    let mut out: Vec<(&Tenant, Vec<usize>)> = Vec::new();
    for (i, t) in tenants.enumerate() {
        match out.iter_mut().find(|(u, _)| *u == t) {
            Some((_, v)) => v.push(i),
            None => out.push((t, vec![i])),
        }
    }
    out
}

/// `($1, $2, …), (…)` for PostgreSQL; anonymous `?` for SQLite, whose
/// numbered parameters cost a name lookup per bind (quadratic in a large
/// multi-row statement). `fixed` cells are written as they are.
pub(super) fn placeholders(backend: crate::Backend, rows: usize, cols: &[Option<&str>]) -> String {
    let binds = cols.iter().filter(|c| c.is_none()).count();
    (0..rows)
        .map(|r| {
            let mut n = r * binds;
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match c {
                    Some(fixed) => fixed.to_string(),
                    None => {
                        n += 1;
                        param(backend, n)
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Work {
    /// The stored events of a tenant among these keys.
    pub async fn find_events(&mut self, tenant: &Tenant, keys: &[&str]) -> Result<Vec<StoredEvent>> {
        let columns = "idempotency_key, customer_id, event_name, event_at, resource_id, properties";
        let mut found = Vec::new();
        for r in self.events_by_keys(tenant, keys, columns, None).await? {
            found.push(StoredEvent {
                key: r.try_get("idempotency_key")?,
                customer_id: r.try_get("customer_id")?,
                event_name: r.try_get("event_name")?,
                at: kelviq_core::timefmt::from_micros(r.try_get("event_at")?),
                resource_id: r.try_get("resource_id")?,
                properties: r.try_get("properties")?,
            });
        }
        Ok(found)
    }

    /// Which of these keys name events stored before sequence number `seq`.
    pub(super) async fn event_keys_before(&mut self, tenant: &Tenant, keys: &[&str], seq: i64) -> Result<Vec<String>> {
        let rows = self.events_by_keys(tenant, keys, "idempotency_key", Some(seq)).await?;
        rows.iter().map(|r| Ok(r.try_get("idempotency_key")?)).collect()
    }

    pub(super) async fn events_by_keys(
        &mut self,
        tenant: &Tenant,
        keys: &[&str],
        columns: &str,
        before_seq: Option<i64>,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let number = self.usage_tenant_number(tenant).await?;
        let mut found = Vec::new();
        for chunk in statement_chunks(keys) {
            let p: Vec<String> = (1..=chunk.len() + 2).map(|n| param(self.backend(), n)).collect();
            let sql = format!(
                "SELECT {columns} FROM usage_events WHERE tenant = {} AND seq < {} AND idempotency_key IN ({})",
                p[0],
                p[1],
                p[2..].join(", ")
            );
            let mut q = sqlx::query(&sql).bind(number).bind(before_seq.unwrap_or(i64::MAX));
            for k in chunk {
                q = q.bind(*k);
            }
            found.extend(q.fetch_all(&mut **self.tx()).await?);
        }
        Ok(found)
    }

    /// Stores raw events, skipping any whose key its tenant used before;
    /// returns the indexes of the skipped ones. (Keys must be distinct per
    /// tenant within the call.)
    pub async fn insert_events(&mut self, rows: &[EventRow<'_>], now: DateTime<Utc>) -> Result<Vec<usize>> {
        match self.backend() {
            crate::Backend::Sqlite => self.insert_events_sqlite(rows, now).await,
            crate::Backend::Postgres => self.insert_events_pg(rows, now).await,
        }
    }

    /// Adds to many counters (each at most once per call).
    pub async fn add_counters(&mut self, rows: &[AddRow<'_>], now: DateTime<Utc>) -> Result<()> {
        if self.backend() == crate::Backend::Postgres {
            return self.add_counters_pg(rows, now).await;
        }
        for chunk in statement_chunks(rows) {
            let mut numbers = Vec::with_capacity(chunk.len());
            for r in chunk {
                numbers.push(self.usage_tenant_number(r.tenant).await?);
            }
            let sql = statement_text("add_counters", self.backend(), chunk.len(), || {
                format!(
                    "INSERT INTO usage_counters (tenant, customer_id, feature, period_start, value, value_at, \
                     alerts, updated_at) VALUES {} ON CONFLICT (customer_id, feature, period_start, tenant) \
                     DO UPDATE SET value = {}, updated_at = excluded.updated_at",
                    placeholders(
                        self.backend(),
                        chunk.len(),
                        &[None, None, None, None, None, Some("0"), Some("''"), None]
                    ),
                    saturating_counter_add!()
                )
            });
            let mut q = sqlx::query(&sql);
            for (r, number) in chunk.iter().zip(numbers) {
                q = q
                    .bind(number)
                    .bind(r.customer_id)
                    .bind(r.feature)
                    .bind(r.period_start)
                    .bind(r.delta.clamp(-COUNTER_MAX, COUNTER_MAX))
                    .bind(to_micros(now));
            }
            q.execute(&mut **self.tx()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::change_subject;

    #[test]
    pub(super) fn chunks_cover_every_row_in_few_statement_sizes() {
        let mut sizes = std::collections::BTreeSet::new();
        for n in 0..2_000usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = statement_chunks(&rows);
            assert_eq!(chunks.concat(), rows, "{n} rows in order");
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
            if n <= EXACT {
                assert!(chunks.len() <= 1, "{n} rows in one statement");
            }
            sizes.extend(chunks.iter().map(|c| c.len()));
        }
        // 1..=16, then 32, 64, 128, 256: prepared statements stay few.
        assert_eq!(sizes.len(), EXACT + 4);
    }

    #[test]
    pub(super) fn usage_subjects_read_back() {
        let tenant = Tenant { org_id: uuid::Uuid::new_v4(), org_seq: 1, env: kelviq_core::Environment::Sandbox };
        let read = change_subject(&usage_subject(&tenant, "p1", &["ann", "bob"])).unwrap();
        assert_eq!(read.org, tenant.org_id);
        assert_eq!(read.env, "sandbox");
        assert_eq!(read.origin.as_deref(), Some("p1"));
        assert_eq!(read.customers, ["ann", "bob"]);
    }

    #[test]
    pub(super) fn unfolded_additions_read_back() {
        let adds = vec![("api_calls".to_string(), 0, 3), ("tokens".to_string(), 1_700_000_000_000_000, -2)];
        let text = encode_unfolded(&adds);
        let back: Vec<(String, i64, i64)> = decode_unfolded(&text).map(|(f, s, d)| (f.to_string(), s, d)).collect();
        assert_eq!(back, adds);
    }
}
