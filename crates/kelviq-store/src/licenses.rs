//! License keys, their instances and their activity log (migration 0020).
//!
//! Activations of one key are serialised by locking the key's row
//! ([`Work::lock_license`]) before its live instances are counted and one
//! is added, so no number of racing activations, on any number of server
//! processes, passes the limit.

use crate::changes::record_change;
use crate::{tenant_binds, uuid_col, Result, Store, StoreError, Work};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Topic of license changes; the subject is the key's hash.
pub const TOPIC_LICENSE: &str = "license";

/// A license as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseRow {
    pub id: uuid::Uuid,
    pub key_hash: String,
    /// The key, sealed under the server's secret key.
    pub key_sealed: String,
    pub customer_id: String,
    pub subscription_id: Option<uuid::Uuid>,
    pub order_id: Option<String>,
    pub plan_id: uuid::Uuid,
    /// None: unlimited.
    pub activation_limit: Option<i64>,
    pub heartbeat_ttl: Option<i64>,
    pub reuse_by_fingerprint: bool,
    pub grace_days: i64,
    pub enabled: bool,
    /// MERCHANT or REFUND.
    pub disabled_reason: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub first_activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// An instance (an activation) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub id: uuid::Uuid,
    pub license_id: uuid::Uuid,
    pub name: Option<String>,
    pub fingerprint: Option<String>,
    pub metadata: Value,
    pub activated_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deactivated_by: Option<String>,
}

const LICENSE_COLUMNS: &str = "id, key_hash, key_sealed, customer_id, subscription_id, order_id, plan_id, \
    activation_limit, heartbeat_ttl, reuse_by_fingerprint, grace_days, enabled, disabled_reason, expires_at, \
    first_activated_at, created_at, modified_at";

const INSTANCE_COLUMNS: &str = "id, license_id, name, fingerprint, metadata, activated_at, last_heartbeat_at, \
    last_seen_at, deactivated_at, deactivated_by";

const TENANT: &str = "org_id = $1 AND environment = $2";

fn time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

fn license_from_row(row: &AnyRow) -> Result<LicenseRow> {
    let subscription_id: Option<String> = row.try_get("subscription_id")?;
    Ok(LicenseRow {
        id: uuid_col(row, "id")?,
        key_hash: row.try_get("key_hash")?,
        key_sealed: row.try_get("key_sealed")?,
        customer_id: row.try_get("customer_id")?,
        subscription_id: subscription_id
            .map(|s| uuid::Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("subscription_id: {e}"))))
            .transpose()?,
        order_id: row.try_get("order_id")?,
        plan_id: uuid_col(row, "plan_id")?,
        activation_limit: row.try_get("activation_limit")?,
        heartbeat_ttl: row.try_get("heartbeat_ttl")?,
        reuse_by_fingerprint: row.try_get::<i64, _>("reuse_by_fingerprint")? != 0,
        grace_days: row.try_get("grace_days")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        expires_at: time(row, "expires_at")?,
        first_activated_at: time(row, "first_activated_at")?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
    })
}

fn instance_from_row(row: &AnyRow) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: uuid_col(row, "id")?,
        license_id: uuid_col(row, "license_id")?,
        name: row.try_get("name")?,
        fingerprint: row.try_get("fingerprint")?,
        metadata: crate::json_col(row, "metadata")?,
        activated_at: from_micros(row.try_get("activated_at")?),
        last_heartbeat_at: from_micros(row.try_get("last_heartbeat_at")?),
        last_seen_at: time(row, "last_seen_at")?,
        deactivated_at: time(row, "deactivated_at")?,
        deactivated_by: row.try_get("deactivated_by")?,
    })
}

impl Store {
    /// The license of a key's hash in a tenant.
    pub async fn find_license_by_hash(&self, tenant: &Tenant, key_hash: &str) -> Result<Option<LicenseRow>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT} AND key_hash = $3"))
            .bind(org)
            .bind(env)
            .bind(key_hash)
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(license_from_row).transpose()
    }

    pub async fn find_license(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<LicenseRow>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT} AND id = $3"))
            .bind(org)
            .bind(env)
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(license_from_row).transpose()
    }

    /// A page of a customer's licenses (oldest first; every customer's when
    /// `customer_id` is None), with how many there are.
    pub async fn list_licenses(
        &self,
        tenant: &Tenant,
        customer_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<LicenseRow>)> {
        let (org, env) = tenant_binds(tenant);
        let filter = " AND (customer_id = $3 OR $3 = '')";
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM licenses WHERE {TENANT}{filter}"))
            .bind(&org)
            .bind(env)
            .bind(customer_id.unwrap_or(""))
            .fetch_one(self.read_pool())
            .await?
            .try_get("n")?;
        let rows = sqlx::query(&format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT}{filter} ORDER BY seq LIMIT $4 OFFSET $5"
        ))
        .bind(&org)
        .bind(env)
        .bind(customer_id.unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        Ok((count, rows.iter().map(license_from_row).collect::<Result<_>>()?))
    }

    /// The licenses of some subscriptions (to show in them), oldest first.
    pub async fn licenses_of_subscriptions(&self, tenant: &Tenant, ids: &[uuid::Uuid]) -> Result<Vec<LicenseRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, env) = tenant_binds(tenant);
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT} AND subscription_id IN ({}) ORDER BY seq",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(org).bind(env);
        for id in ids {
            q = q.bind(id.to_string());
        }
        let rows = q.fetch_all(self.read_pool()).await?;
        rows.iter().map(license_from_row).collect()
    }

    /// A license's instances, the deactivated ones too when `all`, oldest first.
    pub async fn license_instances(&self, license_id: uuid::Uuid, all: bool) -> Result<Vec<InstanceRow>> {
        let live = if all { "" } else { " AND deactivated_at IS NULL" };
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM license_instances WHERE license_id = $1{live} ORDER BY seq"
        ))
        .bind(license_id.to_string())
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// Writes when instances were last seen validating (a batch): one
    /// statement per few hundred instances, so a second's validations cost
    /// the database a few round trips, not one per instance.
    pub async fn touch_instances(&self, seen: &[(uuid::Uuid, DateTime<Utc>)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in seen.chunks(crate::pending::max_binds(self.backend) / 2) {
            // VALUES names its columns column1, column2 on both databases.
            let sql = format!(
                "UPDATE license_instances SET last_seen_at = v.column2 FROM (VALUES {}) AS v \
                 WHERE license_instances.id = v.column1 \
                 AND (license_instances.last_seen_at IS NULL OR license_instances.last_seen_at < v.column2)",
                crate::pending::placeholders(chunk.len(), 2, 1)
            );
            let q = chunk.iter().fold(sqlx::query(&sql), |q, (id, at)| q.bind(id.to_string()).bind(to_micros(*at)));
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Work {
    /// Adds a license (issued by a purchase).
    pub async fn insert_license(&mut self, l: &LicenseRow) -> Result<()> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        sqlx::query(&format!(
            "INSERT INTO licenses (org_id, environment, {LICENSE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(org)
        .bind(env)
        .bind(l.id.to_string())
        .bind(&l.key_hash)
        .bind(&l.key_sealed)
        .bind(&l.customer_id)
        .bind(l.subscription_id.map(|s| s.to_string()))
        .bind(l.order_id.clone())
        .bind(l.plan_id.to_string())
        .bind(l.activation_limit)
        .bind(l.heartbeat_ttl)
        .bind(i64::from(l.reuse_by_fingerprint))
        .bind(l.grace_days)
        .bind(i64::from(l.enabled))
        .bind(l.disabled_reason.clone())
        .bind(l.expires_at.map(to_micros))
        .bind(l.first_activated_at.map(to_micros))
        .bind(to_micros(l.created_at))
        .bind(to_micros(l.modified_at))
        .execute(&mut *self.tx)
        .await?;
        self.license_changed(&l.key_hash, l.created_at).await
    }

    /// Locks the license of a key's hash (activations of one key take turns).
    pub async fn lock_license_by_hash(&mut self, key_hash: &str) -> Result<Option<LicenseRow>> {
        self.lock_license_where("key_hash", key_hash.to_string()).await
    }

    pub async fn lock_license(&mut self, id: uuid::Uuid) -> Result<Option<LicenseRow>> {
        self.lock_license_where("id", id.to_string()).await
    }

    async fn lock_license_where(&mut self, col: &str, value: String) -> Result<Option<LicenseRow>> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT} AND {col} = $3{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(value)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(license_from_row).transpose()
    }

    /// Writes a locked license's changeable parts as they are now; `old_hash`
    /// is its key's hash before a regeneration.
    pub async fn update_license(&mut self, l: &LicenseRow, old_hash: &str) -> Result<()> {
        let (org, env) = tenant_binds(&self.tenant);
        sqlx::query(&format!(
            "UPDATE licenses SET key_hash = $3, key_sealed = $4, subscription_id = $5, activation_limit = $6, \
             enabled = $7, disabled_reason = $8, expires_at = $9, first_activated_at = $10, modified_at = $11 \
             WHERE {TENANT} AND id = $12"
        ))
        .bind(org)
        .bind(env)
        .bind(&l.key_hash)
        .bind(&l.key_sealed)
        .bind(l.subscription_id.map(|s| s.to_string()))
        .bind(l.activation_limit)
        .bind(i64::from(l.enabled))
        .bind(l.disabled_reason.clone())
        .bind(l.expires_at.map(to_micros))
        .bind(l.first_activated_at.map(to_micros))
        .bind(to_micros(l.modified_at))
        .bind(l.id.to_string())
        .execute(&mut *self.tx)
        .await?;
        if old_hash != l.key_hash {
            self.license_changed(old_hash, l.modified_at).await?;
        }
        self.license_changed(&l.key_hash, l.modified_at).await
    }

    /// The licenses a subscription's purchase issued (locked).
    pub async fn lock_licenses_of_subscription(&mut self, subscription_id: uuid::Uuid) -> Result<Vec<LicenseRow>> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let rows = sqlx::query(&format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses WHERE {TENANT} AND subscription_id = $3 ORDER BY seq{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(subscription_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(license_from_row).collect()
    }

    /// A license's live instances (read under its lock).
    pub async fn live_instances(&mut self, license_id: uuid::Uuid) -> Result<Vec<InstanceRow>> {
        self.flush().await?;
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM license_instances WHERE license_id = $1 AND deactivated_at IS NULL \
             ORDER BY seq"
        ))
        .bind(license_id.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    pub async fn insert_instance(&mut self, i: &InstanceRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO license_instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(i.id.to_string())
        .bind(i.license_id.to_string())
        .bind(i.name.clone())
        .bind(i.fingerprint.clone())
        .bind(i.metadata.to_string())
        .bind(to_micros(i.activated_at))
        .bind(to_micros(i.last_heartbeat_at))
        .bind(i.last_seen_at.map(to_micros))
        .bind(i.deactivated_at.map(to_micros))
        .bind(i.deactivated_by.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Ends a live instance; false when it is not a live instance of the license.
    pub async fn deactivate_instance(
        &mut self,
        license_id: uuid::Uuid,
        instance_id: uuid::Uuid,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE license_instances SET deactivated_at = $1, deactivated_by = $2 \
             WHERE license_id = $3 AND id = $4 AND deactivated_at IS NULL",
        )
        .bind(to_micros(at))
        .bind(by)
        .bind(license_id.to_string())
        .bind(instance_id.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an instance's heartbeat; false when it is not live.
    pub async fn beat(&mut self, license_id: uuid::Uuid, instance_id: uuid::Uuid, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE license_instances SET last_heartbeat_at = $1, last_seen_at = $1 \
             WHERE license_id = $2 AND id = $3 AND deactivated_at IS NULL",
        )
        .bind(to_micros(at))
        .bind(license_id.to_string())
        .bind(instance_id.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Logs an action on a license.
    pub async fn log_license(
        &mut self,
        license_id: uuid::Uuid,
        action: &str,
        instance_id: Option<uuid::Uuid>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO license_activity (license_id, action, instance_id, at) VALUES ($1, $2, $3, $4)")
            .bind(license_id.to_string())
            .bind(action)
            .bind(instance_id.map(|i| i.to_string()))
            .bind(to_micros(at))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// How many of `actions` a license logged at or after `since`.
    pub async fn license_actions_since(
        &mut self,
        license_id: uuid::Uuid,
        actions: &[&str],
        since: DateTime<Utc>,
    ) -> Result<i64> {
        let marks: Vec<String> = (0..actions.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT COUNT(*) AS n FROM license_activity WHERE license_id = $1 AND at >= $2 AND action IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(license_id.to_string()).bind(to_micros(since));
        for a in actions {
            q = q.bind(*a);
        }
        Ok(q.fetch_one(&mut *self.tx).await?.try_get("n")?)
    }

    /// Tells every server process that a license changed.
    pub async fn license_changed(&mut self, key_hash: &str, now: DateTime<Utc>) -> Result<()> {
        record_change(&mut self.tx, self.backend, TOPIC_LICENSE, key_hash, now).await
    }
}
