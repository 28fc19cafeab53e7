//! The payment provider of an environment (migration 0024): its secrets
//! stay sealed here; the server opens them.

use crate::{tenant_binds, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::Row;

/// A configured provider, its secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    pub provider: String,
    pub secret_key_sealed: String,
    pub webhook_secret_sealed: String,
    pub key_hint: String,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

const COLUMNS: &str = "provider, secret_key, webhook_secret, key_hint, created_at, modified_at";

fn provider_from(r: &sqlx::any::AnyRow) -> Result<ProviderRow> {
    Ok(ProviderRow {
        provider: r.try_get("provider")?,
        secret_key_sealed: r.try_get("secret_key")?,
        webhook_secret_sealed: r.try_get("webhook_secret")?,
        key_hint: r.try_get("key_hint")?,
        created_at: from_micros(r.try_get("created_at")?),
        modified_at: from_micros(r.try_get("modified_at")?),
    })
}

impl Store {
    pub async fn payment_provider(&self, tenant: &Tenant) -> Result<Option<ProviderRow>> {
        let (org, env) = tenant_binds(tenant);
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM payment_providers WHERE org_id = $1 AND environment = $2"))
                .bind(org)
                .bind(env)
                .fetch_optional(self.read_pool())
                .await?;
        row.as_ref().map(provider_from).transpose()
    }

    /// Sets (or replaces) the environment's provider.
    pub async fn put_payment_provider(&self, tenant: &Tenant, p: &ProviderRow) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO payment_providers (org_id, environment, provider, secret_key, webhook_secret, key_hint, \
             created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, environment) \
             DO UPDATE SET provider = $3, secret_key = $4, webhook_secret = $5, key_hint = $6, modified_at = $8",
        )
        .bind(org)
        .bind(env)
        .bind(&p.provider)
        .bind(&p.secret_key_sealed)
        .bind(&p.webhook_secret_sealed)
        .bind(&p.key_hint)
        .bind(to_micros(p.created_at))
        .bind(to_micros(p.modified_at))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// Removes the environment's provider; whether there was one.
    pub async fn remove_payment_provider(&self, tenant: &Tenant) -> Result<bool> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query("DELETE FROM payment_providers WHERE org_id = $1 AND environment = $2")
            .bind(org)
            .bind(env)
            .execute(self.write_pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl Store {
    /// The organisations with a provider in `env`: their tenants and rows
    /// (an inbound webhook finds its organisation by whose secret signed it).
    pub async fn payment_providers_in(&self, env: kelviq_core::Environment) -> Result<Vec<(Tenant, ProviderRow)>> {
        let rows = sqlx::query(&format!(
            "SELECT p.org_id, o.seq, {} FROM payment_providers p JOIN organizations o ON o.id = p.org_id \
             WHERE p.environment = $1 ORDER BY o.seq",
            COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(env.as_str())
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                let org: String = r.try_get("org_id")?;
                let org_id =
                    uuid::Uuid::parse_str(&org).map_err(|e| crate::StoreError::Corrupt(format!("org id: {e}")))?;
                let tenant = Tenant { org_id, org_seq: r.try_get("seq")?, env };
                Ok((tenant, provider_from(r)?))
            })
            .collect()
    }
}

impl Store {
    /// Whether a Stripe event id was taken for the tenant.
    pub async fn stripe_event_taken(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let (org, env) = tenant_binds(tenant);
        let row =
            sqlx::query("SELECT 1 AS one FROM stripe_events WHERE org_id = $1 AND environment = $2 AND event_id = $3")
                .bind(org)
                .bind(env)
                .bind(id)
                .fetch_optional(self.read_pool())
                .await?;
        Ok(row.is_some())
    }
}

impl crate::Work {
    /// Takes a Stripe event id for this work's tenant: true the first time,
    /// false when it was taken before (a repeated delivery).
    pub async fn take_stripe_event(
        &mut self,
        id: &str,
        kind: &str,
        handled: bool,
        created: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (org, env) = tenant_binds(self.tenant());
        let done = sqlx::query(
            "INSERT INTO stripe_events (org_id, environment, event_id, event_type, handled, created, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, environment, event_id) DO NOTHING",
        )
        .bind(org)
        .bind(env)
        .bind(id)
        .bind(kind)
        .bind(i64::from(handled))
        .bind(created)
        .bind(to_micros(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
