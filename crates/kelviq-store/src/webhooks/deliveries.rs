//! The delivery queue: fan-out of an event to its endpoints, claiming due
//! deliveries, recording attempts, resending and recovering.

use super::{endpoint_from_row, stop_pending, ENDPOINT_COLUMNS};
use crate::events::insert_event;
use crate::pending::{insert_row, Arg};
use crate::{tenant_binds, Backend, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::to_micros;
use kelviq_core::webhooks::{wants, DeliveryStatus, DisablePolicy, Endpoint, FIFO_MAX_WAIT};
use kelviq_core::{Environment, FieldErrors, Tenant};
use sqlx::{Any, Row, Transaction};

/// The tenant's enabled endpoints and the event types each wants (empty: all).
pub(crate) type Subscribers = Vec<(String, Vec<String>)>;

/// Reads the tenant's enabled endpoints, for [`fan_out`]; a unit of work
/// reads them once for all the events it writes.
pub(crate) async fn subscribers(tx: &mut Transaction<'_, Any>, tenant: &Tenant) -> Result<Subscribers> {
    let (org, env) = tenant_binds(tenant);
    let rows = sqlx::query(
        "SELECT id, event_types FROM webhook_endpoints \
         WHERE org_id = $1 AND environment = $2 AND enabled = 1 AND deleted_at IS NULL",
    )
    .bind(&org)
    .bind(env)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            let types: String = row.try_get("event_types")?;
            let types = serde_json::from_str(&types).map_err(|e| StoreError::Corrupt(format!("event_types: {e}")))?;
            Ok((row.try_get("id")?, types))
        })
        .collect()
}

/// Queues one delivery of `event` to each of `subscribers` that wants its
/// type, due at once. Returns how many.
pub(crate) async fn fan_out(
    tx: &mut Transaction<'_, Any>,
    tenant: &Tenant,
    subscribers: &Subscribers,
    event: &OutboxEvent,
) -> Result<usize> {
    let rows = delivery_rows(tenant, subscribers, event);
    let n = rows.len();
    for row in rows {
        insert_row(tx, DELIVERY_INSERT, row).await?;
    }
    Ok(n)
}

/// The statement head of a delivery's row (see [`delivery_rows`]).
pub(crate) const DELIVERY_INSERT: &str = "INSERT INTO webhook_deliveries (id, org_id, environment, event_id, \
     endpoint_id, event_type, status, attempts, round_attempts, next_attempt_at, created_at)";

/// The deliveries of `event` to those of `subscribers` that want its type,
/// as rows for [`DELIVERY_INSERT`].
pub(crate) fn delivery_rows(tenant: &Tenant, subscribers: &Subscribers, event: &OutboxEvent) -> Vec<Vec<Arg>> {
    let (org, env) = tenant_binds(tenant);
    subscribers
        .iter()
        .filter(|(_, types)| wants(types, &event.event_type))
        .map(|(endpoint, _)| {
            new_delivery(&org, env, &event.id.to_string(), endpoint, &event.event_type, None, event.created_at)
        })
        .collect()
}

/// A new delivery's row; a new event is due at once (0: before any retry,
/// whatever the clocks).
fn new_delivery(
    org: &str,
    env: &str,
    event_id: &str,
    endpoint_id: &str,
    event_type: &str,
    due: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
) -> Vec<Arg> {
    vec![
        Arg::Text(uuid::Uuid::new_v4().to_string()),
        Arg::Text(org.to_string()),
        Arg::Text(env.to_string()),
        Arg::Text(event_id.to_string()),
        Arg::Text(endpoint_id.to_string()),
        Arg::Text(event_type.to_string()),
        Arg::Text("PENDING".into()),
        Arg::Int(0),
        Arg::Int(0),
        Arg::Int(due.map_or(0, to_micros)),
        Arg::Int(to_micros(created)),
    ]
}

/// A delivery this process claimed: it alone may attempt it until its lease ends.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub tenant: Tenant,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    /// The envelope, exactly as stored (and as it is sent).
    pub payload: String,
    /// The endpoint as it is now (`None`: deleted).
    pub endpoint: Option<Endpoint>,
    /// Attempts since the last resend or recovery.
    pub round_attempts: u32,
    pub lease_token: String,
}

/// How an attempt ended, for [`Store::finish_deliveries`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed; the next attempt is due then.
    Retry(DateTime<Utc>),
    /// Failed, and it was the last attempt.
    Exhausted,
    /// 410 Gone: the endpoint is disabled.
    Gone,
    /// Not attempted: its endpoint was disabled meanwhile (kept as failed).
    EndpointDisabled,
    /// Not attempted: its endpoint was deleted, or no longer wants the type.
    Dropped,
}

/// One finished claim.
#[derive(Debug, Clone)]
pub struct Finished {
    pub seq: i64,
    pub lease_token: String,
    pub tenant: Tenant,
    pub event_id: uuid::Uuid,
    pub endpoint_id: uuid::Uuid,
    /// Its endpoint is fifo: its end may let a newer delivery go.
    pub fifo: bool,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub response_excerpt: String,
    pub outcome: Outcome,
}

impl Store {
    /// Claims up to `limit` deliveries due at `now` whose lease (if any)
    /// has ended, leasing them to process `owner` until `lease_until`; skips
    /// the endpoints in `busy`. Two processes never hold the same delivery,
    /// and a process never re-takes a lease of its own that ran out (only a
    /// moved test clock does that: it still holds the delivery).
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        busy: &[uuid::Uuid],
    ) -> Result<Vec<Claimed>> {
        // A token per claim, prefixed by its owner: a result is applied only
        // to the claim it came from, and a process knows its own leases.
        let token = format!("{owner}:{}", uuid::Uuid::new_v4().simple());
        let mine = format!("{owner}:%");
        let skip = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let not_busy = if busy.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = busy.iter().map(|id| format!("'{id}'")).collect();
            format!(" AND d.endpoint_id NOT IN ({})", list.join(", "))
        };
        // A fifo endpoint's delivery waits while an older one to it is
        // pending (in flight or to be retried), unless it has waited long
        // enough; whichever process holds the older one. A rate-limited
        // endpoint's deliveries are held by one process at a time, so its
        // limit holds across processes. (The fifo and rate-limited endpoints
        // are read once per claim, before any per-candidate look at other
        // deliveries, whose cost grows with the backlog.)
        let claimed = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET lease_until = $1, lease_token = $2 WHERE seq IN (\
             SELECT d.seq FROM webhook_deliveries d WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $3 \
             AND (d.lease_until IS NULL OR (d.lease_until <= $3 AND d.lease_token NOT LIKE $6)){not_busy} \
             AND (d.created_at <= $5 OR d.endpoint_id NOT IN (SELECT id FROM webhook_endpoints WHERE fifo = 1) \
                 OR NOT EXISTS (SELECT 1 FROM webhook_deliveries o \
                 WHERE o.endpoint_id = d.endpoint_id AND o.status = 'PENDING' AND o.seq < d.seq)) \
             AND (d.endpoint_id NOT IN (SELECT id FROM webhook_endpoints WHERE rate_limit > 0) \
                 OR NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.endpoint_id = d.endpoint_id \
                 AND o.next_attempt_at IS NOT NULL AND o.lease_token NOT LIKE $6 AND o.lease_until > $3)) \
             ORDER BY d.next_attempt_at, d.seq LIMIT $4{skip}) \
             RETURNING seq"
        ))
        .bind(to_micros(lease_until))
        .bind(&token)
        .bind(to_micros(now))
        .bind(limit)
        .bind(to_micros(now - FIFO_MAX_WAIT))
        .bind(&mine)
        .fetch_all(self.write_pool())
        .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let seqs: Vec<String> =
            claimed.iter().map(|r| r.try_get::<i64, _>("seq").map(|s| s.to_string())).collect::<Result<_, _>>()?;
        let columns: String = ENDPOINT_COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ");
        let rows = sqlx::query(&format!(
            "SELECT d.seq, d.id AS delivery_id, d.org_id, d.environment, d.event_id, d.event_type, d.round_attempts, \
             o.seq AS org_seq, e.payload, w.deleted_at, {columns} \
             FROM webhook_deliveries d JOIN organizations o ON o.id = d.org_id \
             JOIN events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id \
             WHERE d.seq IN ({}) AND d.lease_token = $1 ORDER BY d.next_attempt_at, d.seq",
            seqs.join(", ")
        ))
        .bind(&token)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|row| {
                let env: String = row.try_get("environment")?;
                let deleted: Option<i64> = row.try_get("deleted_at")?;
                Ok(Claimed {
                    seq: row.try_get("seq")?,
                    id: crate::uuid_col(row, "delivery_id")?,
                    tenant: Tenant {
                        org_id: crate::uuid_col(row, "org_id")?,
                        org_seq: row.try_get("org_seq")?,
                        env: env.parse::<Environment>().map_err(StoreError::Corrupt)?,
                    },
                    event_id: crate::uuid_col(row, "event_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    endpoint: if deleted.is_some() { None } else { Some(endpoint_from_row(row)?) },
                    round_attempts: row.try_get::<i64, _>("round_attempts")? as u32,
                    lease_token: token.clone(),
                })
            })
            .collect()
    }

    /// Extends to `until` the leases of process `owner` that end before
    /// `ending_before` (claimed, in flight, or finished with the result not
    /// yet written). Returns how many.
    pub async fn renew_leases(&self, owner: &str, until: DateTime<Utc>, ending_before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $1 \
             WHERE next_attempt_at IS NOT NULL AND lease_token LIKE $2 AND lease_until < $3",
        )
        .bind(to_micros(until))
        .bind(format!("{owner}:%"))
        .bind(to_micros(ending_before))
        .execute(self.write_pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Gives claimed deliveries back untouched (a process stopping).
    pub async fn release_deliveries(&self, claimed: &[(i64, String)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (seq, token) in claimed {
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL WHERE seq = $1 AND lease_token = $2",
            )
            .bind(seq)
            .bind(token)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records finished attempts in one transaction: each attempt, its
    /// delivery (when this process still holds its lease) and its endpoint's
    /// health. An endpoint failing since before the policy's cutoff or answering 410
    /// is disabled, and exactly one `endpoint.disabled` event is written
    /// (delivered to the tenant's other endpoints that want it). Returns the
    /// endpoints it disabled.
    pub async fn finish_deliveries(
        &self,
        finished: &[Finished],
        disable: DisablePolicy,
    ) -> Result<Vec<(Tenant, Endpoint)>> {
        let mut work = self.begin(&finished.first().map(|f| f.tenant.clone()).ok_or(StoreError::NotFound)?).await?;
        // PostgreSQL pays a round trip per statement, SQLite a parse per
        // distinct statement: many rows per statement there, one here.
        let rows = match self.backend {
            Backend::Postgres => ROWS_PER_STATEMENT,
            Backend::Sqlite => 1,
        };
        for chunk in finished.chunks(rows) {
            record_attempts(&mut work.tx, chunk).await?;
            update_deliveries(&mut work.tx, chunk).await?;
        }
        let mut disabled = Vec::new();
        // Endpoints a success in this batch brought back, not yet written.
        let mut recovered = std::collections::HashSet::new();
        for f in finished {
            let tx = &mut work.tx;
            let endpoint = f.endpoint_id.to_string();
            let reason = match f.outcome {
                Outcome::Succeeded => {
                    // Once per endpoint and batch, unless a failure follows.
                    recovered.insert(endpoint.clone());
                    None
                }
                Outcome::Retry(_) | Outcome::Exhausted => {
                    if recovered.remove(&endpoint) {
                        clear_failing(tx, &endpoint).await?;
                    }
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
                    )
                    .bind(to_micros(f.attempted_at))
                    .bind(&endpoint)
                    .execute(&mut **tx)
                    .await?;
                    Some("failing")
                }
                Outcome::Gone => Some("gone"),
                Outcome::EndpointDisabled | Outcome::Dropped => None,
            };
            let Some(reason) = reason else { continue };
            // Only one of any number of concurrent failures finds it enabled.
            let failing_long = if reason == "gone" {
                String::new()
            } else {
                " AND failing_since IS NOT NULL AND failing_since <= $3".to_string()
            };
            let row = sqlx::query(&format!(
                "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, modified_at = $4 \
                 WHERE id = $2 AND enabled = 1 AND deleted_at IS NULL{failing_long} RETURNING {ENDPOINT_COLUMNS}"
            ))
            .bind(reason)
            .bind(&endpoint)
            .bind(to_micros(disable.cutoff(f.attempted_at)))
            .bind(to_micros(f.attempted_at))
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { continue };
            let ep = endpoint_from_row(&row)?;
            stop_pending(tx, ep.id, DeliveryStatus::Failed).await?;
            let notice = kelviq_core::events::endpoint_disabled(&ep, &f.tenant, f.attempted_at);
            if insert_event(tx, &f.tenant, &notice).await? > 0 {
                work.webhooks_queued = true;
            }
            disabled.push((f.tenant.clone(), ep));
        }
        for endpoint in &recovered {
            clear_failing(&mut work.tx, endpoint).await?;
        }
        work.commit().await?;
        Ok(disabled)
    }

    /// Queues an event again: to one endpoint (which must be enabled and
    /// want its type), or (`None`) to every enabled endpoint that wants it.
    /// Returns how many deliveries.
    pub async fn resend_event(
        &self,
        tenant: &Tenant,
        event_id: uuid::Uuid,
        endpoint: Option<uuid::Uuid>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let (org, env) = tenant_binds(tenant);
        let mut work = self.begin(tenant).await?;
        let tx = &mut work.tx;
        let event_type: String =
            sqlx::query("SELECT event_type FROM events WHERE id = $1 AND org_id = $2 AND environment = $3")
                .bind(event_id.to_string())
                .bind(&org)
                .bind(env)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get("event_type")?;
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND environment = $2 \
             AND deleted_at IS NULL AND ($3 = '' OR id = $3)"
        ))
        .bind(&org)
        .bind(env)
        .bind(endpoint.map(|e| e.to_string()).unwrap_or_default())
        .fetch_all(&mut **tx)
        .await?;
        let endpoints: Vec<Endpoint> = rows.iter().map(endpoint_from_row).collect::<Result<_>>()?;
        if endpoint.is_some() {
            match endpoints.first() {
                None => return Err(invalid("endpointId", "No such endpoint.")),
                Some(e) if !e.enabled => {
                    return Err(invalid("endpointId", "The endpoint is disabled; enable it first."))
                }
                Some(e) if !wants(&e.event_types, &event_type) => {
                    return Err(invalid("endpointId", "The endpoint does not subscribe to this event's type."))
                }
                Some(_) => {}
            }
        }
        let mut queued = 0;
        for e in endpoints.iter().filter(|e| e.enabled && wants(&e.event_types, &event_type)) {
            let again = sqlx::query(
                "UPDATE webhook_deliveries SET status = 'PENDING', next_attempt_at = $1, round_attempts = 0, \
                 lease_until = NULL, lease_token = NULL WHERE event_id = $2 AND endpoint_id = $3",
            )
            .bind(to_micros(now))
            .bind(event_id.to_string())
            .bind(e.id.to_string())
            .execute(&mut **tx)
            .await?;
            if again.rows_affected() == 0 {
                let (event, endpoint) = (event_id.to_string(), e.id.to_string());
                insert_row(
                    tx,
                    DELIVERY_INSERT,
                    new_delivery(&org, env, &event, &endpoint, &event_type, Some(now), now),
                )
                .await?;
            }
            queued += 1;
        }
        work.webhooks_queued = queued > 0;
        work.commit().await?;
        Ok(queued)
    }

    /// Queues again every failed delivery to an (enabled) endpoint of events
    /// since `since`. Returns how many.
    pub async fn recover_deliveries(
        &self,
        tenant: &Tenant,
        endpoint: uuid::Uuid,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let e = self.find_webhook_endpoint(tenant, endpoint).await?.ok_or(StoreError::NotFound)?;
        if !e.enabled {
            return Err(invalid("enabled", "The endpoint is disabled; enable it first."));
        }
        let (org, env) = tenant_binds(tenant);
        let mut work = self.begin(tenant).await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'PENDING', next_attempt_at = $1, round_attempts = 0, \
             lease_until = NULL, lease_token = NULL \
             WHERE endpoint_id = $2 AND org_id = $3 AND environment = $4 AND status = 'FAILED' AND created_at >= $5",
        )
        .bind(to_micros(now))
        .bind(endpoint.to_string())
        .bind(org)
        .bind(env)
        .bind(to_micros(since))
        .execute(&mut *work.tx)
        .await?;
        work.webhooks_queued = done.rows_affected() > 0;
        work.commit().await?;
        Ok(done.rows_affected())
    }

    /// Writes an event delivered to one endpoint only (a test event).
    pub async fn send_event_to(&self, tenant: &Tenant, endpoint: uuid::Uuid, event: &OutboxEvent) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut work = self.begin(tenant).await?;
        crate::events::write_event(&mut work.tx, tenant, event).await?;
        let (id, endpoint) = (event.id.to_string(), endpoint.to_string());
        let row = new_delivery(&org, env, &id, &endpoint, &event.event_type, None, event.created_at);
        insert_row(&mut work.tx, DELIVERY_INSERT, row).await?;
        work.webhooks_queued = true;
        work.commit().await?;
        Ok(())
    }

    /// How many deliveries wait (due or not), for metrics.
    pub async fn pending_deliveries(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL")
            .fetch_one(self.read_pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// Rows per multi-row statement on PostgreSQL (well under its bind limit).
const ROWS_PER_STATEMENT: usize = 256;

fn attempted(f: &Finished) -> bool {
    !matches!(f.outcome, Outcome::EndpointDisabled | Outcome::Dropped)
}

fn next_attempt(f: &Finished) -> Option<i64> {
    match f.outcome {
        Outcome::Retry(at) => Some(to_micros(at)),
        _ => None,
    }
}

/// `(CAST($1 AS t1), …), (…)`: `rows` rows of placeholders typed as `types`.
fn values_rows(rows: usize, types: &[&str]) -> String {
    let mut n = 0;
    (0..rows)
        .map(|_| {
            let row: Vec<String> = types
                .iter()
                .map(|t| {
                    n += 1;
                    format!("CAST(${n} AS {t})")
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `webhook_attempts` row per attempt made, in one statement.
async fn record_attempts(tx: &mut Transaction<'_, Any>, finished: &[Finished]) -> Result<()> {
    let made: Vec<&Finished> = finished.iter().filter(|f| attempted(f)).collect();
    if made.is_empty() {
        return Ok(());
    }
    let types = ["TEXT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT"];
    let sql = format!(
        "INSERT INTO webhook_attempts (id, delivery_seq, org_id, environment, event_id, endpoint_id, \
         attempted_at, status_code, latency_ms, response_excerpt, next_attempt_at) VALUES {}",
        values_rows(made.len(), &types)
    );
    let mut query = sqlx::query(&sql);
    for f in made {
        let (org, env) = tenant_binds(&f.tenant);
        query = query
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(f.seq)
            .bind(org)
            .bind(env)
            .bind(f.event_id.to_string())
            .bind(f.endpoint_id.to_string())
            .bind(to_micros(f.attempted_at))
            .bind(f.status_code.map(i64::from))
            .bind(f.latency_ms)
            .bind(f.response_excerpt.as_str())
            .bind(next_attempt(f));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Each delivery's new state, where this process still holds its lease, in
/// one statement.
async fn update_deliveries(tx: &mut Transaction<'_, Any>, finished: &[Finished]) -> Result<()> {
    // seq, lease token, status, next attempt, attempts made (0 or 1), status code, attempted at
    let types = ["BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"];
    // A result whose lease was taken meanwhile (a resend, or another
    // process after the lease ran out) leaves the schedule to the holder,
    // but the attempt it made still counts and shows in the log.
    let held = "webhook_deliveries.lease_token IS NOT NULL AND webhook_deliveries.lease_token = v.column2";
    let newer = "v.column5 = 1 AND (webhook_deliveries.last_attempt_at IS NULL \
                 OR webhook_deliveries.last_attempt_at <= v.column7)";
    let sql = format!(
        "UPDATE webhook_deliveries SET \
         status = CASE WHEN {held} THEN v.column3 ELSE status END, \
         next_attempt_at = CASE WHEN {held} THEN v.column4 ELSE next_attempt_at END, \
         round_attempts = CASE WHEN {held} THEN round_attempts + v.column5 ELSE round_attempts END, \
         lease_until = CASE WHEN {held} THEN NULL ELSE lease_until END, \
         lease_token = CASE WHEN {held} THEN NULL ELSE lease_token END, \
         attempts = attempts + v.column5, \
         last_status = CASE WHEN {newer} THEN v.column6 ELSE last_status END, \
         last_attempt_at = CASE WHEN {newer} THEN v.column7 ELSE last_attempt_at END \
         FROM (VALUES {}) AS v WHERE webhook_deliveries.seq = v.column1 AND (webhook_deliveries.lease_token = v.column2 \
         OR v.column5 = 1)",
        values_rows(finished.len(), &types),
        held = held,
        newer = newer,
    );
    let mut query = sqlx::query(&sql);
    for f in finished {
        let status = match f.outcome {
            Outcome::Succeeded => DeliveryStatus::Succeeded,
            Outcome::Retry(_) => DeliveryStatus::Pending,
            Outcome::Exhausted | Outcome::Gone | Outcome::EndpointDisabled => DeliveryStatus::Failed,
            Outcome::Dropped => DeliveryStatus::Cancelled,
        };
        query = query
            .bind(f.seq)
            .bind(f.lease_token.as_str())
            .bind(status.as_str())
            .bind(next_attempt(f))
            .bind(i64::from(attempted(f)))
            .bind(f.status_code.map(i64::from))
            .bind(to_micros(f.attempted_at));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// An endpoint answered: it is failing no more.
async fn clear_failing(tx: &mut Transaction<'_, Any>, endpoint: &str) -> Result<()> {
    sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
        .bind(endpoint)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn invalid(field: &str, message: &str) -> StoreError {
    StoreError::Invalid(FieldErrors::single(field, message))
}
