//! Customer portal sessions (migration 0021): a token's hash, whose
//! customer it is and until when.

use crate::{tenant_binds, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::{Environment, Tenant};
use sqlx::Row;

/// A live portal session.
#[derive(Debug, Clone, PartialEq)]
pub struct PortalSession {
    pub org_id: uuid::Uuid,
    pub env: Environment,
    pub customer_id: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub async fn insert_portal_session(
        &self,
        tenant: &Tenant,
        token_hash: &str,
        customer_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        // Sessions past their expiry are of no use to anyone.
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at < $1").bind(to_micros(now)).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, org_id, environment, customer_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .bind(to_micros(expires_at))
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session of a token's hash in an organisation, expired or not.
    pub async fn find_portal_session(&self, org_id: uuid::Uuid, token_hash: &str) -> Result<Option<PortalSession>> {
        let row = sqlx::query(
            "SELECT environment, customer_id, expires_at FROM portal_sessions WHERE token_hash = $1 AND org_id = $2",
        )
        .bind(token_hash)
        .bind(org_id.to_string())
        .fetch_optional(self.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let env: String = row.try_get("environment")?;
        Ok(Some(PortalSession {
            org_id,
            env: env.parse().map_err(|_| crate::StoreError::Corrupt(format!("environment {env}")))?,
            customer_id: row.try_get("customer_id")?,
            expires_at: from_micros(row.try_get("expires_at")?),
        }))
    }
}
