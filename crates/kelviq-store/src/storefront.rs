//! An environment's storefront settings (migration 0023), one JSON document.

use crate::{tenant_binds, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::storefront::StorefrontSettings;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;

impl Store {
    /// The environment's storefront settings, if it has any.
    pub async fn storefront_settings(&self, tenant: &Tenant) -> Result<Option<StorefrontSettings>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query("SELECT doc FROM storefront_settings WHERE org_id = $1 AND environment = $2")
            .bind(org)
            .bind(env)
            .fetch_optional(self.read_pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let doc: String = row.try_get("doc")?;
        serde_json::from_str(&doc).map(Some).map_err(|e| StoreError::Corrupt(format!("storefront settings: {e}")))
    }

    /// Replaces the environment's storefront settings.
    pub async fn put_storefront_settings(
        &self,
        tenant: &Tenant,
        settings: &StorefrontSettings,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let doc = serde_json::to_string(settings).expect("settings serialise");
        sqlx::query(
            "INSERT INTO storefront_settings (org_id, environment, doc, modified_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, environment) DO UPDATE SET doc = $3, modified_at = $4",
        )
        .bind(org)
        .bind(env)
        .bind(doc)
        .bind(to_micros(now))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }
}
