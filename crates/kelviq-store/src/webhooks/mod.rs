//! Webhook endpoints, the deliveries of each event to them, and every
//! attempt. See migration 0013 and the server's `webhooks` subsystem.

mod deliveries;
mod logs;

pub(crate) use deliveries::{delivery_rows, fan_out, subscribers, Subscribers, DELIVERY_INSERT};
pub use deliveries::{Claimed, Finished, Outcome};
pub use logs::{AttemptRow, EventQuery, LogRow};

use crate::{tenant_binds, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::webhooks::{DeliveryStatus, Endpoint, SignatureFormat};
use kelviq_core::Tenant;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, rate_limit, fifo, \
    signature_format, secret, previous_secret, previous_secret_until, failing_since, created_at, modified_at";

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint> {
    let format: String = row.try_get("signature_format")?;
    let types: String = row.try_get("event_types")?;
    let micros =
        |col: &str| -> Result<Option<DateTime<Utc>>> { Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros)) };
    Ok(Endpoint {
        id: crate::uuid_col(row, "id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: serde_json::from_str(&types).map_err(|e| StoreError::Corrupt(format!("event_types: {e}")))?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        rate_limit: row.try_get("rate_limit")?,
        fifo: row.try_get::<i64, _>("fifo")? != 0,
        signature_format: SignatureFormat::parse(&format)
            .ok_or_else(|| StoreError::Corrupt(format!("signature_format {format:?}")))?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until: micros("previous_secret_until")?,
        failing_since: micros("failing_since")?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
    })
}

/// What a `PATCH` of an endpoint changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub rate_limit: Option<Option<i64>>,
    pub fifo: Option<bool>,
    pub signature_format: Option<SignatureFormat>,
}

impl Store {
    pub async fn insert_webhook_endpoint(&self, tenant: &Tenant, e: &Endpoint) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, org_id, environment, url, description, event_types, enabled, \
             disabled_reason, rate_limit, fifo, signature_format, secret, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(e.id.to_string())
        .bind(org)
        .bind(env)
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.event_types).expect("a list of strings"))
        .bind(e.enabled as i64)
        .bind(e.disabled_reason.clone())
        .bind(e.rate_limit)
        .bind(e.fifo as i64)
        .bind(e.signature_format.as_str())
        .bind(&e.secret)
        .bind(to_micros(e.created_at))
        .bind(to_micros(e.modified_at))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// The tenant's endpoints, oldest first, and how many there are.
    pub async fn list_webhook_endpoints(
        &self,
        tenant: &Tenant,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<Endpoint>)> {
        let (org, env) = tenant_binds(tenant);
        let live = "org_id = $1 AND environment = $2 AND deleted_at IS NULL";
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM webhook_endpoints WHERE {live}"))
            .bind(&org)
            .bind(env)
            .fetch_one(self.read_pool())
            .await?
            .try_get("n")?;
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE {live} ORDER BY seq LIMIT $3 OFFSET $4"
        ))
        .bind(&org)
        .bind(env)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        Ok((count, rows.iter().map(endpoint_from_row).collect::<Result<_>>()?))
    }

    pub async fn find_webhook_endpoint(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<Endpoint>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
             WHERE id = $1 AND org_id = $2 AND environment = $3 AND deleted_at IS NULL"
        ))
        .bind(id.to_string())
        .bind(org)
        .bind(env)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    /// Changes an endpoint. Disabling it fails its pending deliveries (they
    /// can be recovered); enabling it forgets its failures.
    pub async fn update_webhook_endpoint(
        &self,
        tenant: &Tenant,
        id: uuid::Uuid,
        changes: &EndpointChanges,
        now: DateTime<Utc>,
    ) -> Result<Endpoint> {
        let mut tx = self.begin_write().await?;
        let mut e = lock_endpoint(&mut tx, self.backend, tenant, id).await?.ok_or(StoreError::NotFound)?;
        let was_enabled = e.enabled;
        if let Some(url) = &changes.url {
            e.url = url.clone();
        }
        if let Some(d) = &changes.description {
            e.description = d.clone();
        }
        if let Some(t) = &changes.event_types {
            e.event_types = t.clone();
        }
        if let Some(r) = changes.rate_limit {
            e.rate_limit = r;
        }
        if let Some(f) = changes.fifo {
            e.fifo = f;
        }
        if let Some(f) = changes.signature_format {
            e.signature_format = f;
        }
        match changes.enabled {
            Some(true) if !was_enabled => {
                e.enabled = true;
                e.disabled_reason = None;
                e.failing_since = None;
            }
            Some(false) if was_enabled => {
                e.enabled = false;
                e.disabled_reason = Some("manual".into());
            }
            _ => {}
        }
        e.modified_at = now;
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, enabled = $4, \
             disabled_reason = $5, rate_limit = $6, fifo = $7, signature_format = $8, failing_since = $9, \
             modified_at = $10 WHERE id = $11",
        )
        .bind(&e.url)
        .bind(&e.description)
        .bind(serde_json::to_string(&e.event_types).expect("a list of strings"))
        .bind(e.enabled as i64)
        .bind(e.disabled_reason.clone())
        .bind(e.rate_limit)
        .bind(e.fifo as i64)
        .bind(e.signature_format.as_str())
        .bind(e.failing_since.map(to_micros))
        .bind(to_micros(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if was_enabled && !e.enabled {
            stop_pending(&mut tx, id, DeliveryStatus::Failed).await?;
        }
        tx.commit().await?;
        Ok(e)
    }

    /// Deletes an endpoint; its pending deliveries are cancelled.
    pub async fn delete_webhook_endpoint(&self, tenant: &Tenant, id: uuid::Uuid, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_endpoint(&mut tx, self.backend, tenant, id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query("UPDATE webhook_endpoints SET deleted_at = $1, enabled = 0, modified_at = $1 WHERE id = $2")
            .bind(to_micros(now))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        stop_pending(&mut tx, id, DeliveryStatus::Cancelled).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an endpoint's secret (sealed); the one before keeps signing
    /// until `previous_until` in the standard format.
    pub async fn rotate_webhook_secret(
        &self,
        tenant: &Tenant,
        id: uuid::Uuid,
        sealed: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_endpoint(&mut tx, self.backend, tenant, id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2, \
             modified_at = $3 WHERE id = $4",
        )
        .bind(to_micros(previous_until))
        .bind(sealed)
        .bind(to_micros(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn lock_endpoint(
    tx: &mut Transaction<'_, Any>,
    backend: crate::Backend,
    tenant: &Tenant,
    id: uuid::Uuid,
) -> Result<Option<Endpoint>> {
    let (org, env) = tenant_binds(tenant);
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
         WHERE id = $1 AND org_id = $2 AND environment = $3 AND deleted_at IS NULL{}",
        backend.for_update()
    ))
    .bind(id.to_string())
    .bind(org)
    .bind(env)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// Ends an endpoint's pending deliveries with `status`.
async fn stop_pending(tx: &mut Transaction<'_, Any>, endpoint: uuid::Uuid, status: DeliveryStatus) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = NULL, lease_until = NULL, lease_token = NULL \
         WHERE endpoint_id = $2 AND status = 'PENDING'",
    )
    .bind(status.as_str())
    .bind(endpoint.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}
