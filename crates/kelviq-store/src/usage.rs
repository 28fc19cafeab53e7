//! Usage metering storage: counters, raw events, idempotency keys and
//! entitlement overrides. Writes go through a [`Work`], which the server's
//! ingest loop commits for many requests at once (group commit).

use crate::changes::record_quiet_change;
use crate::{tenant_binds, usage_binds, usage_tenant, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::meters::{add_counter, COUNTER_MAX};
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Topic of usage changes; the subject is `{org}:{env}:` followed by the
/// customer ids, one per line.
pub const TOPIC_USAGE: &str = "usage";

/// A stored counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub feature: String,
    pub period_start: i64,
    pub value: i64,
    pub value_at: i64,
    pub alerts: String,
}

fn counter_from_row(r: &sqlx::any::AnyRow) -> Result<Counter> {
    // An old version could overflow a SQLite counter into a REAL: read it
    // back saturated rather than fail every read of that customer.
    let value = match r.try_get::<i64, _>("value") {
        Ok(v) => v.clamp(-COUNTER_MAX, COUNTER_MAX),
        Err(e) => match r.try_get::<f64, _>("value") {
            Ok(f) if !f.is_nan() => f.clamp(-COUNTER_MAX as f64, COUNTER_MAX as f64) as i64,
            _ => return Err(e.into()),
        },
    };
    Ok(Counter {
        feature: r.try_get("feature")?,
        period_start: r.try_get("period_start")?,
        value,
        value_at: r.try_get("value_at")?,
        alerts: r.try_get("alerts")?,
    })
}

/// What to do to a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterChange {
    Set(i64),
    Add(i64),
    /// Lowers the value by this much (a negative `DELTA` report), never below
    /// zero; an order-sensitive change, unlike an addition.
    Reduce(i64),
    Max(i64),
    /// The value of an event at this instant (microseconds); older events lose.
    Latest(i64, i64),
    /// A distinct value for a UNIQUE_COUNT meter.
    Unique(String),
}

/// The new value of a counter row that `excluded.value` adds to, saturated
/// at ±[`kelviq_core::meters::COUNTER_MAX`] (2^61) without overflowing on
/// the way: the added value is within the bound (callers clamp it), so
/// neither the limits it is compared with nor the sum of the last branch
/// can leave an `i64`, even for a row stored out of bounds by an old version.
macro_rules! saturating_counter_add {
    () => {
        "CASE WHEN usage_counters.value >= 2305843009213693952 - excluded.value THEN 2305843009213693952 \
         WHEN usage_counters.value <= -2305843009213693952 - excluded.value THEN -2305843009213693952 \
         ELSE usage_counters.value + excluded.value END"
    };
}

/// Stores a group of plain events of one tenant, adds their counts to the
/// counters and announces the change, in one statement (PostgreSQL); answers
/// the keys that were already stored. $1 the organisation's id and $2 the
/// environment's bit ([`crate::usage_binds`]), $3 now, $4 the events and $5
/// their additions as JSON, $6 the change topic, $7 its subject (none:
/// nothing to announce), $8 the change's time.
const APPEND_COUNTED: &str = concat!(
    "\
    WITH e AS MATERIALIZED (\
        SELECT * FROM json_to_recordset($4::json) AS e(k text, c text, n text, t bigint, r text, p text)), \
    tn AS MATERIALIZED (SELECT seq * 2 + $2 AS n FROM organizations WHERE id = $1), \
    ins AS (\
        INSERT INTO usage_events (tenant, idempotency_key, customer_id, event_name, event_at, \
        resource_id, properties, received_at, unfolded) \
        SELECT tn.n, e.k, e.c, e.n, e.t, e.r, e.p, $3, '' FROM e, tn \
        ON CONFLICT DO NOTHING RETURNING idempotency_key), \
    adds AS (\
        SELECT a.c, a.f, a.s, LEAST(GREATEST(SUM(a.d), -2305843009213693952), 2305843009213693952)::bigint AS d \
        FROM json_to_recordset($5::json) AS a(k text, c text, f text, s bigint, d bigint) \
        JOIN ins ON ins.idempotency_key = a.k GROUP BY a.c, a.f, a.s), \
    counted AS (\
        INSERT INTO usage_counters (tenant, customer_id, feature, period_start, value, \
        value_at, alerts, updated_at) \
        SELECT tn.n, adds.c, adds.f, adds.s, adds.d, 0, '', $3 FROM adds, tn \
        ON CONFLICT (customer_id, feature, period_start, tenant) \
        DO UPDATE SET value = ",
    saturating_counter_add!(),
    ", updated_at = excluded.updated_at), \
    announced AS (\
        INSERT INTO change_feed (topic, subject, created_at) \
        SELECT $6, $7::text, $8 WHERE $7::text IS NOT NULL AND EXISTS (SELECT 1 FROM adds)) \
    SELECT e.k FROM e WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.idempotency_key = e.k)"
);

/// Stores a group of one tenant's events with their additions unfolded,
/// if the writer still defers in its epoch (its mark's row is read with a
/// share lock: a takeover waits for this statement, and this one for a
/// takeover to commit, then finds the row gone). Answers the keys stored
/// before, and a NULL if the writer no longer defers. $1 the organisation's
/// id and $2 the environment's bit, $3 the events as JSON, $4 now, $5 the
/// epoch, $6 the writer.
const APPEND_DEFERRED: &str = "\
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

/// What [`Store::append_counted_events`] did.
#[derive(Debug, Default)]
pub struct CountedAppend {
    /// Indexes of the rows whose keys were stored before.
    pub skipped: Vec<usize>,
    /// The statement ran twice (see [`Store::append_counted_events`]).
    pub retried: bool,
}

impl Store {
    /// PostgreSQL: stores one tenant's events and applies each new event's
    /// `unfolded` additions to the counters (so the rows keep none), and
    /// announces the customers to the other processes, all in one statement:
    /// one round trip, its own transaction, committed when this returns.
    /// A key the tenant stored before is skipped and adds nothing; returns
    /// the indexes of the skipped rows. (Keys must be distinct within the call.)
    /// A statement whose connection the database closed runs once more on
    /// another; then `retried` is set, as the first run may have committed
    /// (its answer lost) and its rows then count as skipped.
    pub async fn append_counted_events(
        &self,
        kept: &mut crate::KeptConnection,
        tenant: &Tenant,
        rows: &[EventRow<'_>],
        origin: &str,
        now: DateTime<Utc>,
        stamped: DateTime<Utc>,
    ) -> Result<CountedAppend> {
        #[derive(serde::Serialize)]
        struct Add<'a> {
            k: &'a str,
            c: &'a str,
            f: &'a str,
            s: i64,
            d: i64,
        }
        debug_assert_eq!(self.backend(), crate::Backend::Postgres, "append_counted_events is PostgreSQL's");
        if rows.is_empty() {
            return Ok(CountedAppend::default());
        }
        let docs: Vec<EventDoc<'_>> = rows.iter().map(|r| EventDoc::of(r, false)).collect();
        let adds: Vec<Add<'_>> = rows
            .iter()
            .flat_map(|r| r.unfolded.iter().map(|(f, s, d)| Add { k: r.key, c: r.customer_id, f, s: *s, d: *d }))
            .collect();
        // The customers whose counters the events change (if they are new).
        let mut customers: Vec<&str> = rows.iter().filter(|r| !r.unfolded.is_empty()).map(|r| r.customer_id).collect();
        customers.sort_unstable();
        customers.dedup();
        let subject = (!customers.is_empty()).then(|| usage_subject(tenant, origin, &customers));
        let announces = subject.is_some();
        let (org, env) = usage_binds(tenant);
        let events = serde_json::to_string(&docs).expect("events serialise");
        let additions = serde_json::to_string(&adds).expect("additions serialise");
        // The statement is its own transaction, and a key already stored is
        // skipped with its additions: run again after the connection was
        // lost, it counts nothing twice (events it did commit come back as
        // stored before).
        let mut retried = false;
        let answer = loop {
            let answer = sqlx::query(APPEND_COUNTED)
                .bind(&org)
                .bind(env)
                .bind(to_micros(now))
                .bind(&events)
                .bind(&additions)
                .bind(TOPIC_USAGE)
                .bind(&subject)
                .bind(to_micros(stamped))
                .fetch_all(kept.get(self.write_pool()).await?)
                .await;
            kept.used(&answer);
            match answer {
                Err(e) if !retried && crate::connection_lost(&e) => {
                    tracing::warn!(error = %e, "usage writer: the database closed the connection; running the statement again on another");
                    retried = true;
                }
                answer => break answer,
            }
        };
        let skipped_keys: std::collections::HashSet<String> =
            answer?.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
        if announces && skipped_keys.len() < rows.len() {
            self.waker.wake(Some(origin));
        }
        let skipped = (0..rows.len()).filter(|&i| skipped_keys.contains(rows[i].key)).collect();
        Ok(CountedAppend { skipped, retried })
    }

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

    /// Every counter of a customer for the given periods (feature, period start).
    pub async fn counters(&self, tenant: &Tenant, customer_id: &str) -> Result<Vec<Counter>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (org, env) = usage_binds(tenant);
        let rows = sqlx::query(SQL.get_or_init(|| {
            format!(
                "SELECT feature, period_start, value, value_at, alerts FROM usage_counters \
                 WHERE customer_id = $3 AND tenant = {}",
                usage_tenant("$1", "$2")
            )
        }))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(counter_from_row).collect()
    }

    /// A customer's overrides: feature identifier → document.
    pub async fn overrides(&self, tenant: &Tenant, customer_id: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT feature, doc FROM entitlement_overrides WHERE org_id = $1 AND environment = $2 AND customer_id = $3 \
             ORDER BY feature",
        )
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("feature")?, crate::json_col(r, "doc")?))).collect()
    }

    /// How many raw events the tenant has stored (for tests and operators).
    pub async fn count_events(&self, tenant: &Tenant, customer_id: Option<&str>) -> Result<i64> {
        let (org, env) = usage_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM usage_events WHERE tenant = {} AND ($3 = '' OR customer_id = $3)",
            usage_tenant("$1", "$2")
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id.unwrap_or(""))
        .fetch_one(self.read_pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}

impl Work {
    /// Works for another tenant from here on (one group commit spans tenants).
    pub fn switch_tenant(&mut self, tenant: &Tenant) {
        self.set_tenant(tenant.clone());
    }

    /// The answer first given for an idempotency key, if it was used.
    pub async fn find_key(&mut self, kind: &str, key: &str) -> Result<Option<String>> {
        let (org, env) = tenant_binds(self.tenant());
        let existing = sqlx::query(
            "SELECT response FROM ingest_keys WHERE org_id = $1 AND environment = $2 AND kind = $3 AND idempotency_key = $4",
        )
        .bind(&org)
        .bind(env)
        .bind(kind)
        .bind(key)
        .fetch_optional(&mut **self.tx())
        .await?;
        existing.map(|row| Ok(row.try_get("response")?)).transpose()
    }

    /// Records the answer given for an idempotency key.
    pub async fn save_key(&mut self, kind: &str, key: &str, response: &str, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(self.tenant());
        sqlx::query(
            "INSERT INTO ingest_keys (org_id, environment, kind, idempotency_key, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&org)
        .bind(env)
        .bind(kind)
        .bind(key)
        .bind(response)
        .bind(to_micros(now))
        .execute(&mut **self.tx())
        .await?;
        Ok(())
    }

    /// A counter, locked for the rest of the work (`None`: never written).
    pub async fn lock_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
    ) -> Result<Option<Counter>> {
        let number = self.own_usage_tenant_number().await?;
        let row = sqlx::query(&format!(
            "SELECT feature, period_start, value, value_at, alerts FROM usage_counters \
             WHERE customer_id = $2 AND feature = $3 AND period_start = $4 AND tenant = $1{}",
            self.backend().for_update()
        ))
        .bind(number)
        .bind(customer_id)
        .bind(feature)
        .bind(period_start)
        .fetch_optional(&mut **self.tx())
        .await?;
        row.as_ref().map(counter_from_row).transpose()
    }

    /// Applies a change to a counter; returns the value before and after and
    /// the alerts already announced this period.
    pub async fn change_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        change: &CounterChange,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64, String)> {
        let current = self.lock_counter(customer_id, feature, period_start).await?;
        let alerts = current.as_ref().map(|c| c.alerts.clone()).unwrap_or_default();
        let before = current.as_ref().map_or(0, |c| c.value);
        let value_at = current.as_ref().map_or(i64::MIN, |c| c.value_at);
        let (after, at) = match change {
            CounterChange::Set(v) => (*v, value_at),
            CounterChange::Add(n) => (add_counter(before, *n), value_at),
            CounterChange::Reduce(n) => (add_counter(before, -*n).max(0), value_at),
            CounterChange::Max(n) => (if current.is_some() { before.max(*n) } else { *n }, value_at),
            CounterChange::Latest(v, t) if *t >= value_at => (*v, *t),
            CounterChange::Latest(..) => (before, value_at),
            CounterChange::Unique(value) => {
                let (org, env) = tenant_binds(self.tenant());
                let inserted = sqlx::query(
                    "INSERT INTO meter_uniques (org_id, environment, customer_id, feature, period_start, value) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(org)
                .bind(env)
                .bind(customer_id)
                .bind(feature)
                .bind(period_start)
                .bind(value)
                .execute(&mut **self.tx())
                .await?;
                (add_counter(before, inserted.rows_affected() as i64), value_at)
            }
        };
        if current.is_some() && after == before && at == value_at {
            return Ok((before, after, alerts));
        }
        self.write_counter(customer_id, feature, period_start, after, at, current.map(|c| c.alerts), now).await?;
        Ok((before, after, alerts))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        value: i64,
        value_at: i64,
        existing_alerts: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let number = self.own_usage_tenant_number().await?;
        let q = if existing_alerts.is_some() {
            sqlx::query(
                "UPDATE usage_counters SET value = $1, value_at = $2, updated_at = $3 \
                 WHERE tenant = $4 AND customer_id = $5 AND feature = $6 AND period_start = $7",
            )
        } else {
            sqlx::query(
                "INSERT INTO usage_counters (value, value_at, updated_at, tenant, customer_id, feature, \
                 period_start, alerts) VALUES ($1, $2, $3, $4, $5, $6, $7, '')",
            )
        };
        q.bind(value)
            .bind(value_at)
            .bind(to_micros(now))
            .bind(number)
            .bind(customer_id)
            .bind(feature)
            .bind(period_start)
            .execute(&mut **self.tx())
            .await?;
        Ok(())
    }

    /// Remembers which usage alerts were announced this period.
    pub async fn set_counter_alerts(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        alerts: &str,
    ) -> Result<()> {
        let number = self.own_usage_tenant_number().await?;
        sqlx::query(
            "UPDATE usage_counters SET alerts = $1 \
             WHERE tenant = $2 AND customer_id = $3 AND feature = $4 AND period_start = $5",
        )
        .bind(alerts)
        .bind(number)
        .bind(customer_id)
        .bind(feature)
        .bind(period_start)
        .execute(&mut **self.tx())
        .await?;
        Ok(())
    }

    /// Tells every other server process that these customers' usage changed
    /// (`origin` names this process, which updates its own state in place);
    /// they are woken once the work commits.
    pub async fn usage_changed(&mut self, customers: &[String], origin: &str, now: DateTime<Utc>) -> Result<()> {
        if customers.is_empty() {
            return Ok(());
        }
        let subject = usage_subject(self.tenant(), origin, customers);
        self.wake = Some(origin.to_string());
        record_quiet_change(self.tx(), TOPIC_USAGE, &subject, now).await
    }

    /// Sets (or, with `None`, removes) a customer's override of a feature.
    pub async fn put_override(
        &mut self,
        customer_id: &str,
        feature: &str,
        doc: Option<&serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (org, env) = tenant_binds(self.tenant());
        let deleted = sqlx::query(
            "DELETE FROM entitlement_overrides WHERE org_id = $1 AND environment = $2 AND customer_id = $3 AND feature = $4",
        )
        .bind(&org)
        .bind(env)
        .bind(customer_id)
        .bind(feature)
        .execute(&mut **self.tx())
        .await?;
        if let Some(doc) = doc {
            sqlx::query(
                "INSERT INTO entitlement_overrides (org_id, environment, customer_id, feature, doc, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&org)
            .bind(env)
            .bind(customer_id)
            .bind(feature)
            .bind(doc.to_string())
            .bind(to_micros(now))
            .execute(&mut **self.tx())
            .await?;
        }
        self.changed_customer(customer_id);
        Ok(deleted.rows_affected() > 0)
    }
}

/// A parsed [`TOPIC_USAGE`] or entitlements change subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSubject {
    pub org: uuid::Uuid,
    pub env: String,
    /// The process that made the change, when it says.
    pub origin: Option<String>,
    pub customers: Vec<String>,
}

pub fn change_subject(subject: &str) -> Option<ChangeSubject> {
    let mut parts = subject.splitn(3, ':');
    let org = parts.next()?.parse().ok()?;
    let env = parts.next()?.to_string();
    let mut lines = parts.next()?.split('\n').peekable();
    let origin = lines.next_if(|l| l.starts_with('@')).map(|l| l[1..].to_string());
    Some(ChangeSubject { org, env, origin, customers: lines.map(str::to_string).collect() })
}

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

fn decode_unfolded(text: &str) -> impl Iterator<Item = (&str, i64, i64)> {
    text.lines().filter_map(|l| {
        let mut cells = l.split('\t');
        Some((cells.next()?, cells.next()?.parse().ok()?, cells.next()?.parse().ok()?))
    })
}

/// Rows per multi-row statement (well under both backends' bind limits).
const CHUNK: usize = 256;

/// Up to this many rows, a statement has exactly as many rows as it is given.
const EXACT: usize = 16;

/// Splits rows into statements of at most [`CHUNK`] rows: up to [`EXACT`]
/// rows in one statement of that size, more in statements whose sizes are
/// powers of two, so that a few prepared statements serve every batch.
fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
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
fn param(backend: crate::Backend, n: usize) -> String {
    match backend {
        crate::Backend::Sqlite => "?".to_string(),
        crate::Backend::Postgres => format!("${n}"),
    }
}

/// The text of a multi-row statement, built once per (statement, backend,
/// rows) for the life of the process.
fn statement_text(
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
fn usage_subject<S: AsRef<str>>(tenant: &Tenant, origin: &str, customers: &[S]) -> String {
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
struct EventDoc<'a> {
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
    fn of(r: &EventRow<'a>, unfolded: bool) -> EventDoc<'a> {
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
const JSON_CHUNK: usize = 5_000;

/// The indexes of each tenant's items, tenants in order of first appearance.
fn by_tenant<'t>(tenants: impl Iterator<Item = &'t Tenant>) -> Vec<(&'t Tenant, Vec<usize>)> {
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
fn placeholders(backend: crate::Backend, rows: usize, cols: &[Option<&str>]) -> String {
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
    async fn event_keys_before(&mut self, tenant: &Tenant, keys: &[&str], seq: i64) -> Result<Vec<String>> {
        let rows = self.events_by_keys(tenant, keys, "idempotency_key", Some(seq)).await?;
        rows.iter().map(|r| Ok(r.try_get("idempotency_key")?)).collect()
    }

    async fn events_by_keys(
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

    /// PostgreSQL: one statement per tenant, its rows sent as one JSON
    /// document (a bound value per row costs far more in the protocol and
    /// the planner than reading the document does).
    async fn insert_events_pg(&mut self, rows: &[EventRow<'_>], now: DateTime<Utc>) -> Result<Vec<usize>> {
        let mut skipped = Vec::new();
        for (tenant, indexes) in by_tenant(rows.iter().map(|r| r.tenant)) {
            for chunk in indexes.chunks(JSON_CHUNK) {
                let docs: Vec<EventDoc<'_>> = chunk.iter().map(|&i| EventDoc::of(&rows[i], true)).collect();
                let number = self.usage_tenant_number(tenant).await?;
                let stored: std::collections::HashSet<String> = sqlx::query(
                    "INSERT INTO usage_events (tenant, idempotency_key, customer_id, event_name, event_at, \
                     resource_id, properties, received_at, unfolded) \
                     SELECT $1, e.k, e.c, e.n, e.t, e.r, e.p, $2, e.u \
                     FROM json_to_recordset($3::json) AS e(k text, c text, n text, t bigint, r text, p text, u text) \
                     ON CONFLICT DO NOTHING RETURNING idempotency_key",
                )
                .bind(number)
                .bind(to_micros(now))
                .bind(serde_json::to_string(&docs).expect("events serialise"))
                .fetch_all(&mut **self.tx())
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
                skipped.extend(chunk.iter().filter(|&&i| !stored.contains(rows[i].key)));
            }
        }
        skipped.sort_unstable();
        Ok(skipped)
    }

    async fn insert_events_sqlite(&mut self, rows: &[EventRow<'_>], now: DateTime<Utc>) -> Result<Vec<usize>> {
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

    /// [`Work::add_counters`] on PostgreSQL: a JSON document per tenant.
    async fn add_counters_pg(&mut self, rows: &[AddRow<'_>], now: DateTime<Utc>) -> Result<()> {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            c: &'a str,
            f: &'a str,
            s: i64,
            d: i64,
        }
        for (tenant, indexes) in by_tenant(rows.iter().map(|r| r.tenant)) {
            for chunk in indexes.chunks(JSON_CHUNK) {
                let docs: Vec<Doc<'_>> = chunk
                    .iter()
                    .map(|&i| Doc {
                        c: rows[i].customer_id,
                        f: rows[i].feature,
                        s: rows[i].period_start,
                        d: rows[i].delta.clamp(-COUNTER_MAX, COUNTER_MAX),
                    })
                    .collect();
                let number = self.usage_tenant_number(tenant).await?;
                sqlx::query(concat!(
                    "INSERT INTO usage_counters (tenant, customer_id, feature, period_start, value, \
                     value_at, alerts, updated_at) \
                     SELECT $1, a.c, a.f, a.s, a.d, 0, '', $2 \
                     FROM json_to_recordset($3::json) AS a(c text, f text, s bigint, d bigint) \
                     ON CONFLICT (customer_id, feature, period_start, tenant) \
                     DO UPDATE SET value = ",
                    saturating_counter_add!(),
                    ", updated_at = excluded.updated_at"
                ))
                .bind(number)
                .bind(to_micros(now))
                .bind(serde_json::to_string(&docs).expect("counters serialise"))
                .execute(&mut **self.tx())
                .await?;
            }
        }
        Ok(())
    }

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
    async fn fold_after_marks(
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
fn last_event_seq(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => "(SELECT COALESCE(MAX(seq), 0) FROM usage_events)",
        crate::Backend::Postgres => {
            "COALESCE(pg_sequence_last_value(pg_get_serial_sequence('usage_events', 'seq')::regclass), 0)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_in_few_statement_sizes() {
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
    fn usage_subjects_read_back() {
        let tenant = Tenant { org_id: uuid::Uuid::new_v4(), org_seq: 1, env: kelviq_core::Environment::Sandbox };
        let read = change_subject(&usage_subject(&tenant, "p1", &["ann", "bob"])).unwrap();
        assert_eq!(read.org, tenant.org_id);
        assert_eq!(read.env, "sandbox");
        assert_eq!(read.origin.as_deref(), Some("p1"));
        assert_eq!(read.customers, ["ann", "bob"]);
    }

    #[test]
    fn unfolded_additions_read_back() {
        let adds = vec![("api_calls".to_string(), 0, 3), ("tokens".to_string(), 1_700_000_000_000_000, -2)];
        let text = encode_unfolded(&adds);
        let back: Vec<(String, i64, i64)> = decode_unfolded(&text).map(|(f, s, d)| (f.to_string(), s, d)).collect();
        assert_eq!(back, adds);
    }
}
