//! Promotions and country groups (migration 0019). A promotion is made
//! with its coupons (discount codes naming it) in one transaction, and
//! deleted with them.

use crate::discounts::{insert_query, taken};
use crate::selling::doc_from_row;
use crate::{tenant_binds, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::discounts::Discount;
use kelviq_core::promotions::{CountryGroup, Promotion};
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;

const LIVE: &str = "org_id = $1 AND environment = $2 AND deleted_at IS NULL";

fn text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Adds a promotion and its coupons, all or nothing (a coupon code
    /// taken already fails it).
    pub async fn insert_promotion(&self, tenant: &Tenant, p: &Promotion, coupons: &[Discount]) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO promotions (id, org_id, environment, doc, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(p.id.to_string())
        .bind(org)
        .bind(env)
        .bind(text(p)?)
        .bind(to_micros(p.created_at))
        .execute(&mut *tx)
        .await?;
        for d in coupons {
            insert_query(tenant, d)?.execute(&mut *tx).await.map_err(taken)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a live promotion as it is now.
    pub async fn update_promotion(&self, tenant: &Tenant, p: &Promotion) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(&format!("UPDATE promotions SET doc = $3, modified_at = $4 WHERE {LIVE} AND id = $5"))
            .bind(org)
            .bind(env)
            .bind(text(p)?)
            .bind(to_micros(p.modified_at))
            .bind(p.id.to_string())
            .execute(self.write_pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a live promotion and its coupons (kept for their redemptions).
    pub async fn delete_promotion(&self, tenant: &Tenant, id: uuid::Uuid, at: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!("UPDATE promotions SET deleted_at = $3 WHERE {LIVE} AND id = $4"))
            .bind(&org)
            .bind(env)
            .bind(to_micros(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(&format!("UPDATE discounts SET deleted_at = $3 WHERE {LIVE} AND promotion_id = $4"))
            .bind(&org)
            .bind(env)
            .bind(to_micros(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_promotion(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<Promotion>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT doc FROM promotions WHERE {LIVE} AND id = $3"))
            .bind(org)
            .bind(env)
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    /// A page of the live promotions (oldest first), with how many there are.
    pub async fn list_promotions(&self, tenant: &Tenant, limit: i64, offset: i64) -> Result<(i64, Vec<Promotion>)> {
        let (org, env) = tenant_binds(tenant);
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM promotions WHERE {LIVE}"))
            .bind(&org)
            .bind(env)
            .fetch_one(self.read_pool())
            .await?
            .try_get("n")?;
        let rows = sqlx::query(&format!("SELECT doc FROM promotions WHERE {LIVE} ORDER BY seq LIMIT $3 OFFSET $4"))
            .bind(&org)
            .bind(env)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.read_pool())
            .await?;
        Ok((count, rows.iter().map(doc_from_row).collect::<Result<_>>()?))
    }

    /// The environment's own country groups (those it changed).
    pub async fn country_groups(&self, tenant: &Tenant) -> Result<Vec<CountryGroup>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT name, countries FROM country_groups WHERE org_id = $1 AND environment = $2 ORDER BY name",
        )
        .bind(org)
        .bind(env)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                let countries: String = r.try_get("countries")?;
                Ok(CountryGroup {
                    name: r.try_get("name")?,
                    countries: serde_json::from_str(&countries).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Sets an environment's own copy of a group.
    pub async fn put_country_group(&self, tenant: &Tenant, group: &CountryGroup, at: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO country_groups (org_id, environment, name, countries, modified_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, environment, name) DO UPDATE SET countries = excluded.countries, \
             modified_at = excluded.modified_at",
        )
        .bind(org)
        .bind(env)
        .bind(&group.name)
        .bind(text(&group.countries)?)
        .bind(to_micros(at))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }
}
