//! What was sent: the webhook log (one row per event and endpoint), every
//! attempt of an event, the events themselves, and their retention.

use crate::{tenant_binds, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::Row;

/// One row of `GET /webhook/logs/`: an event's delivery to one endpoint.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub endpoint_id: uuid::Uuid,
    pub event_type: String,
    pub status: String,
    pub last_status: Option<i64>,
    pub attempts: i64,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// One attempt of an event's delivery.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: uuid::Uuid,
    pub endpoint_id: uuid::Uuid,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Filters of the events API.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub customer_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl Store {
    /// The deliveries last attempted in `[from, before)`, most recent first,
    /// and how many there are.
    pub async fn webhook_logs(
        &self,
        tenant: &Tenant,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<LogRow>)> {
        let (org, env) = tenant_binds(tenant);
        let filter = "d.org_id = $1 AND d.environment = $2 AND d.last_attempt_at >= $3 AND d.last_attempt_at < $4";
        let rows = sqlx::query(&format!(
            "SELECT COUNT(*) OVER () AS n, d.id, d.event_id, d.endpoint_id, d.event_type, d.status, d.last_status, \
             d.attempts, d.last_attempt_at, d.created_at, e.payload FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE {filter} ORDER BY d.last_attempt_at DESC, d.seq DESC LIMIT $5 OFFSET $6"
        ))
        .bind(&org)
        .bind(env)
        .bind(to_micros(from))
        .bind(to_micros(before))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        let total: i64 = rows.first().map(|r| r.try_get("n")).transpose()?.unwrap_or(0);
        let rows_out = rows
            .iter()
            .map(|row| {
                Ok(LogRow {
                    id: crate::uuid_col(row, "id")?,
                    event_id: crate::uuid_col(row, "event_id")?,
                    endpoint_id: crate::uuid_col(row, "endpoint_id")?,
                    event_type: row.try_get("event_type")?,
                    status: row.try_get("status")?,
                    last_status: row.try_get("last_status")?,
                    attempts: row.try_get("attempts")?,
                    last_attempt_at: row.try_get::<Option<i64>, _>("last_attempt_at")?.map(from_micros),
                    created_at: from_micros(row.try_get("created_at")?),
                    payload: crate::json_col(row, "payload")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The count comes with the page, from the same snapshot; a page past
        // the end has no row to carry it.
        let count: i64 = match (rows_out.first(), offset) {
            (Some(_), _) => total,
            (None, 0) => 0,
            (None, _) => sqlx::query(&format!("SELECT COUNT(*) AS n FROM webhook_deliveries d WHERE {filter}"))
                .bind(&org)
                .bind(env)
                .bind(to_micros(from))
                .bind(to_micros(before))
                .fetch_one(self.read_pool())
                .await?
                .try_get("n")?,
        };
        Ok((count, rows_out))
    }

    /// Every attempt to deliver an event, oldest first.
    pub async fn webhook_attempts(&self, tenant: &Tenant, event_id: uuid::Uuid) -> Result<Vec<AttemptRow>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT id, endpoint_id, attempted_at, status_code, latency_ms, response_excerpt, next_attempt_at \
             FROM webhook_attempts WHERE event_id = $1 AND org_id = $2 AND environment = $3 ORDER BY seq",
        )
        .bind(event_id.to_string())
        .bind(org)
        .bind(env)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRow {
                    id: crate::uuid_col(row, "id")?,
                    endpoint_id: crate::uuid_col(row, "endpoint_id")?,
                    attempted_at: from_micros(row.try_get("attempted_at")?),
                    status_code: row.try_get("status_code")?,
                    latency_ms: row.try_get("latency_ms")?,
                    response_excerpt: row.try_get("response_excerpt")?,
                    next_attempt_at: row.try_get::<Option<i64>, _>("next_attempt_at")?.map(from_micros),
                })
            })
            .collect()
    }

    /// The tenant's events matching `q`, newest first, and how many there are.
    pub async fn query_events(
        &self,
        tenant: &Tenant,
        q: &EventQuery,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<OutboxEvent>)> {
        let (org, env) = tenant_binds(tenant);
        let filter = "org_id = $1 AND environment = $2 AND ($3 = '' OR event_type = $3) \
             AND ($4 = '' OR customer_id = $4) AND created_at >= $5 AND created_at < $6";
        fn bind<'q>(
            sql: &'q str,
            org: &str,
            env: &'static str,
            q: &EventQuery,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            sqlx::query(sql)
                .bind(org.to_string())
                .bind(env)
                .bind(q.event_type.clone().unwrap_or_default())
                .bind(q.customer_id.clone().unwrap_or_default())
                .bind(q.from.map_or(i64::MIN, to_micros))
                .bind(q.before.map_or(i64::MAX, to_micros))
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM events WHERE {filter}");
        let count: i64 = bind(&count_sql, &org, env, q).fetch_one(self.read_pool()).await?.try_get("n")?;
        let list_sql = format!(
            "SELECT id, event_type, payload, created_at FROM events WHERE {filter} \
             ORDER BY created_at DESC, seq DESC LIMIT $7 OFFSET $8"
        );
        let rows = bind(&list_sql, &org, env, q).bind(limit).bind(offset).fetch_all(self.read_pool()).await?;
        let events = rows.iter().map(event_from_row).collect::<Result<_>>()?;
        Ok((count, events))
    }

    pub async fn find_event(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<OutboxEvent>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(
            "SELECT id, event_type, payload, created_at FROM events WHERE id = $1 AND org_id = $2 AND environment = $3",
        )
        .bind(id.to_string())
        .bind(org)
        .bind(env)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// Forgets events created before `before` with their deliveries and
    /// attempts, except events still waiting to be delivered. Returns how
    /// many events.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = to_micros(before);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE attempted_at < $1").bind(before).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE created_at < $1 AND next_attempt_at IS NULL")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query(
            "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<OutboxEvent> {
    Ok(OutboxEvent {
        id: crate::uuid_col(row, "id")?,
        event_type: row.try_get("event_type")?,
        payload: crate::json_col(row, "payload")?,
        created_at: from_micros(row.try_get("created_at")?),
    })
}
