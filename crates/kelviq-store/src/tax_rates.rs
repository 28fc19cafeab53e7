//! Tax rates of an environment (migration 0014): at most one live rate per
//! country and region; deleting one keeps it for the records.

use crate::{tenant_binds, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::tax::TaxRate;
use kelviq_core::tax_ids::TaxSettings;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::{FieldErrors, Tenant};
use sqlx::any::AnyRow;
use sqlx::Row;

const COLUMNS: &str = "id, name, country, region, percentage, created_at, modified_at";
const LIVE: &str = "org_id = $1 AND environment = $2 AND deleted_at IS NULL";

fn rate_from_row(row: &AnyRow) -> Result<TaxRate> {
    Ok(TaxRate {
        id: crate::uuid_col(row, "id")?,
        name: row.try_get("name")?,
        country: row.try_get("country")?,
        region: row.try_get("region")?,
        percentage: row.try_get("percentage")?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
    })
}

/// Another live rate has this rate's country and region.
fn taken(e: sqlx::Error) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Invalid(FieldErrors::single("country", "A tax rate for this country and region already exists."))
    } else {
        e.into()
    }
}

impl Store {
    pub async fn insert_tax_rate(&self, tenant: &Tenant, rate: &TaxRate) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO tax_rates (id, org_id, environment, name, country, region, percentage, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(rate.id.to_string())
        .bind(org)
        .bind(env)
        .bind(&rate.name)
        .bind(&rate.country)
        .bind(&rate.region)
        .bind(rate.percentage)
        .bind(to_micros(rate.created_at))
        .bind(to_micros(rate.modified_at))
        .execute(self.write_pool())
        .await
        .map_err(taken)?;
        Ok(())
    }

    /// Writes a rate's fields as they are now (it must be live).
    pub async fn update_tax_rate(&self, tenant: &Tenant, rate: &TaxRate) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(&format!(
            "UPDATE tax_rates SET name = $3, country = $4, region = $5, percentage = $6, modified_at = $7 \
             WHERE {LIVE} AND id = $8"
        ))
        .bind(org)
        .bind(env)
        .bind(&rate.name)
        .bind(&rate.country)
        .bind(&rate.region)
        .bind(rate.percentage)
        .bind(to_micros(rate.modified_at))
        .bind(rate.id.to_string())
        .execute(self.write_pool())
        .await
        .map_err(taken)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a live rate (kept, marked deleted at `at`).
    pub async fn delete_tax_rate(
        &self,
        tenant: &Tenant,
        id: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(&format!("UPDATE tax_rates SET deleted_at = $3 WHERE {LIVE} AND id = $4"))
            .bind(org)
            .bind(env)
            .bind(to_micros(at))
            .bind(id.to_string())
            .execute(self.write_pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn find_tax_rate(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<TaxRate>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tax_rates WHERE {LIVE} AND id = $3"))
            .bind(org)
            .bind(env)
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(rate_from_row).transpose()
    }

    /// A page of the live rates (oldest first), optionally of one country, with how many there are.
    pub async fn list_tax_rates(
        &self,
        tenant: &Tenant,
        country: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<TaxRate>)> {
        let (org, env) = tenant_binds(tenant);
        let filter = format!("{LIVE} AND ($3 = '' OR country = $3)");
        let country = country.unwrap_or_default();
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM tax_rates WHERE {filter}"))
            .bind(&org)
            .bind(env)
            .bind(country)
            .fetch_one(self.read_pool())
            .await?
            .try_get("n")?;
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM tax_rates WHERE {filter} ORDER BY seq LIMIT $4 OFFSET $5"))
                .bind(&org)
                .bind(env)
                .bind(country)
                .bind(limit)
                .bind(offset)
                .fetch_all(self.read_pool())
                .await?;
        Ok((count, rows.iter().map(rate_from_row).collect::<Result<_>>()?))
    }
}

/// What a work read of its tenant's tax: the settings and rates per country.
#[derive(Debug)]
pub(crate) struct TaxRead {
    tenant: Tenant,
    settings: Option<Option<TaxSettings>>,
    rates: std::collections::HashMap<String, Vec<TaxRate>>,
}

impl crate::Work {
    fn tax_read(&mut self) -> &mut TaxRead {
        if self.tax.as_ref().is_none_or(|t| t.tenant != self.tenant) {
            self.tax = Some(TaxRead { tenant: self.tenant.clone(), settings: None, rates: Default::default() });
        }
        self.tax.as_mut().expect("just set")
    }

    /// The rate a billing address in `country` (and `region`) gets, read in
    /// this work (each country once): the region's, else the whole country's.
    pub async fn tax_rate_for(&mut self, country: &str, region: Option<&str>) -> Result<Option<TaxRate>> {
        let country = country.trim().to_ascii_uppercase();
        if !self.tax_read().rates.contains_key(&country) {
            let (org, env) = tenant_binds(&self.tenant);
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM tax_rates WHERE {LIVE} AND country = $3"))
                .bind(org)
                .bind(env)
                .bind(&country)
                .fetch_all(&mut *self.tx)
                .await?;
            let rates = rows.iter().map(rate_from_row).collect::<Result<Vec<_>>>()?;
            self.tax_read().rates.insert(country.clone(), rates);
        }
        Ok(kelviq_core::tax::rate_for(&self.tax_read().rates[&country], &country, region).cloned())
    }
}

/// An environment's tax settings (migration 0017).
const SETTINGS: &str = "SELECT doc FROM tax_settings WHERE org_id = $1 AND environment = $2";

fn settings_from(row: Option<AnyRow>) -> Result<Option<TaxSettings>> {
    let Some(row) = row else { return Ok(None) };
    let doc: String = row.try_get("doc")?;
    serde_json::from_str(&doc).map(Some).map_err(|e| StoreError::Corrupt(format!("tax settings: {e}")))
}

impl Store {
    /// The environment's tax settings, if it has any.
    pub async fn tax_settings(&self, tenant: &Tenant) -> Result<Option<TaxSettings>> {
        let (org, env) = tenant_binds(tenant);
        settings_from(sqlx::query(SETTINGS).bind(org).bind(env).fetch_optional(self.read_pool()).await?)
    }

    /// Replaces the environment's tax settings.
    pub async fn put_tax_settings(&self, tenant: &Tenant, settings: &TaxSettings, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let doc = serde_json::to_string(settings).expect("settings serialise");
        sqlx::query(
            "INSERT INTO tax_settings (org_id, environment, doc, modified_at) VALUES ($1, $2, $3, $4) \
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

impl crate::Work {
    /// The environment's tax settings, read in this work (once).
    pub async fn tax_settings(&mut self) -> Result<Option<TaxSettings>> {
        if let Some(known) = &self.tax_read().settings {
            return Ok(known.clone());
        }
        let (org, env) = tenant_binds(&self.tenant);
        let read = settings_from(sqlx::query(SETTINGS).bind(org).bind(env).fetch_optional(&mut *self.tx).await?)?;
        self.tax_read().settings = Some(read.clone());
        Ok(read)
    }
}
