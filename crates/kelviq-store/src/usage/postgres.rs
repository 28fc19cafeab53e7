//! PostgreSQL's usage path: events counted in the statement that stores
//! them; or, while this process owns usage, stored with their additions
//! unfolded and fenced by the writer's epoch.

use crate::{usage_binds, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::meters::COUNTER_MAX;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;

use super::events::*;
use super::*;

/// Stores a group of plain events of one tenant, adds their counts to the
/// counters and announces the change, in one statement (PostgreSQL); answers
/// the keys that were already stored. $1 the organisation's id and $2 the
/// environment's bit ([`crate::usage_binds`]), $3 now, $4 the events and $5
/// their additions as JSON, $6 the change topic, $7 its subject (none:
/// nothing to announce), $8 the change's time.
pub(super) const APPEND_COUNTED: &str = concat!(
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
}

impl Work {
    /// PostgreSQL: one statement per tenant, its rows sent as one JSON
    /// document (a bound value per row costs far more in the protocol and
    /// the planner than reading the document does).
    pub(super) async fn insert_events_pg(&mut self, rows: &[EventRow<'_>], now: DateTime<Utc>) -> Result<Vec<usize>> {
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

    /// [`Work::add_counters`] on PostgreSQL: a JSON document per tenant.
    pub(super) async fn add_counters_pg(&mut self, rows: &[AddRow<'_>], now: DateTime<Utc>) -> Result<()> {
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
}

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
