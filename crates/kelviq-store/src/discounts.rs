//! Discount codes and their redemptions (migration 0018).
//!
//! A redemption is taken inside the unit of work that sells with the code,
//! after [`Work::lock_discount`] locked the code's row: redemptions of one
//! code are serialised, so counting them and adding one cannot overshoot a
//! limit however many checkouts race.

use crate::selling::doc_from_row;
use crate::{tenant_binds, Result, Store, StoreError, Work};
use chrono::{DateTime, Utc};
use kelviq_core::discounts::Discount;
use kelviq_core::timefmt::to_micros;
use kelviq_core::{FieldErrors, Tenant};
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) const LIVE: &str = "org_id = $1 AND environment = $2 AND deleted_at IS NULL";

fn discount_from_row(row: &AnyRow) -> Result<Discount> {
    let mut d: Discount = doc_from_row(row)?;
    d.times_redeemed = row.try_get("times_redeemed")?;
    Ok(d)
}

/// Another live code has this code.
pub(crate) fn taken(e: sqlx::Error) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Invalid(FieldErrors::single("code", "A discount with this code already exists."))
    } else {
        e.into()
    }
}

fn text(d: &Discount) -> Result<String> {
    serde_json::to_string(d).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How many redemptions of a code count against its limits at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taken {
    /// Completed, or held by a checkout still open.
    pub all: i64,
    /// Of those, one customer's.
    pub by_customer: i64,
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The statement that adds a code.
pub(crate) fn insert_query<'q>(tenant: &Tenant, d: &'q Discount) -> Result<Query<'q>> {
    let (org, env) = tenant_binds(tenant);
    Ok(sqlx::query(
        "INSERT INTO discounts (id, org_id, environment, code, doc, promotion_id, created_at, modified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(d.id.to_string())
    .bind(org)
    .bind(env)
    .bind(&d.code)
    .bind(text(d)?)
    .bind(d.promotion_id.map(|p| p.to_string()))
    .bind(to_micros(d.created_at))
    .bind(to_micros(d.modified_at)))
}

impl Store {
    pub async fn insert_discount(&self, tenant: &Tenant, d: &Discount) -> Result<()> {
        insert_query(tenant, d)?.execute(self.write_pool()).await.map_err(taken)?;
        Ok(())
    }

    /// Writes a live code's terms as they are now (not its redemption count).
    pub async fn update_discount(&self, tenant: &Tenant, d: &Discount) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(&format!(
            "UPDATE discounts SET code = $3, doc = $4, modified_at = $5 WHERE {LIVE} AND id = $6"
        ))
        .bind(org)
        .bind(env)
        .bind(&d.code)
        .bind(text(d)?)
        .bind(to_micros(d.modified_at))
        .bind(d.id.to_string())
        .execute(self.write_pool())
        .await
        .map_err(taken)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes a live code (kept for its redemptions; its code is free again).
    pub async fn delete_discount(&self, tenant: &Tenant, id: uuid::Uuid, at: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(&format!("UPDATE discounts SET deleted_at = $3 WHERE {LIVE} AND id = $4"))
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

    pub async fn find_discount(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<Discount>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT doc, times_redeemed FROM discounts WHERE {LIVE} AND id = $3"))
            .bind(org)
            .bind(env)
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(discount_from_row).transpose()
    }

    /// The live code `code` (upper case), outside any work (to show a price).
    pub async fn find_discount_by_code(&self, tenant: &Tenant, code: &str) -> Result<Option<Discount>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT doc, times_redeemed FROM discounts WHERE {LIVE} AND code = $3"))
            .bind(org)
            .bind(env)
            .bind(code)
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(discount_from_row).transpose()
    }

    /// A page of the live codes made by API (oldest first; a promotion's
    /// coupons are the promotion's), with how many there are.
    pub async fn list_discounts(&self, tenant: &Tenant, limit: i64, offset: i64) -> Result<(i64, Vec<Discount>)> {
        let (org, env) = tenant_binds(tenant);
        let count: i64 =
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM discounts WHERE {LIVE} AND promotion_id IS NULL"))
                .bind(&org)
                .bind(env)
                .fetch_one(self.read_pool())
                .await?
                .try_get("n")?;
        let rows = sqlx::query(&format!(
            "SELECT doc, times_redeemed FROM discounts WHERE {LIVE} AND promotion_id IS NULL \
             ORDER BY seq LIMIT $3 OFFSET $4"
        ))
        .bind(&org)
        .bind(env)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        Ok((count, rows.iter().map(discount_from_row).collect::<Result<_>>()?))
    }
}

impl Work {
    /// Locks the live code `code` (upper case) for a redemption.
    pub async fn lock_discount(&mut self, code: &str) -> Result<Option<Discount>> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT doc, times_redeemed FROM discounts WHERE {LIVE} AND code = $3{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(code)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(discount_from_row).transpose()
    }

    /// The redemptions of a code that count at `now` (completed, or held by
    /// an open checkout), all and a customer's; a checkout's own hold
    /// (`except_session`) left out.
    pub async fn discount_taken(
        &mut self,
        discount_id: uuid::Uuid,
        customer_id: Option<&str>,
        except_session: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Taken> {
        self.flush().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN customer_id = $3 THEN 1 ELSE 0 END), 0) AS mine \
             FROM discount_redemptions WHERE discount_id = $1 \
             AND (status = 'REDEEMED' OR (status = 'HELD' AND expires_at > $2)) \
             AND (session_id IS NULL OR session_id <> $4)",
        )
        .bind(discount_id.to_string())
        .bind(to_micros(now))
        .bind(customer_id.unwrap_or(""))
        .bind(except_session.unwrap_or(""))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(Taken { all: row.try_get("n")?, by_customer: row.try_get("mine")? })
    }

    /// Holds one redemption of a code for an open checkout until it expires.
    pub async fn hold_discount(
        &mut self,
        discount_id: uuid::Uuid,
        customer_id: Option<&str>,
        session_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(&self.tenant);
        sqlx::query(
            "INSERT INTO discount_redemptions (org_id, environment, discount_id, customer_id, session_id, status, \
             expires_at, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, 'HELD', $6, $7, $7)",
        )
        .bind(org)
        .bind(env)
        .bind(discount_id.to_string())
        .bind(customer_id)
        .bind(session_id)
        .bind(to_micros(expires_at))
        .bind(to_micros(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Completes a checkout's redemption of a code: the hold it has, else a
    /// new one (a code typed at completion). Counts it on the code.
    pub async fn redeem_discount(
        &mut self,
        discount_id: uuid::Uuid,
        customer_id: &str,
        session_id: &str,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(&self.tenant);
        let held = sqlx::query(
            "UPDATE discount_redemptions SET status = 'REDEEMED', customer_id = $1, order_id = $2, modified_at = $3 \
             WHERE session_id = $4 AND discount_id = $5 AND status = 'HELD'",
        )
        .bind(customer_id)
        .bind(order_id)
        .bind(to_micros(now))
        .bind(session_id)
        .bind(discount_id.to_string())
        .execute(&mut *self.tx)
        .await?;
        if held.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO discount_redemptions (org_id, environment, discount_id, customer_id, session_id, \
                 order_id, status, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, 'REDEEMED', $7, $7)",
            )
            .bind(&org)
            .bind(env)
            .bind(discount_id.to_string())
            .bind(customer_id)
            .bind(session_id)
            .bind(order_id)
            .bind(to_micros(now))
            .execute(&mut *self.tx)
            .await?;
        }
        self.count_redemption(discount_id, 1).await
    }

    /// Gives back the redemption an order made (a full refund); false when
    /// it made none.
    pub async fn release_discount_of_order(&mut self, order_id: &str, now: DateTime<Utc>) -> Result<bool> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(
            "SELECT discount_id FROM discount_redemptions \
             WHERE org_id = $1 AND environment = $2 AND order_id = $3 AND status = 'REDEEMED'",
        )
        .bind(&org)
        .bind(env)
        .bind(order_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let discount_id = crate::uuid_col(&row, "discount_id")?;
        sqlx::query(
            "UPDATE discount_redemptions SET status = 'RELEASED', modified_at = $1 \
             WHERE org_id = $2 AND environment = $3 AND order_id = $4 AND status = 'REDEEMED'",
        )
        .bind(to_micros(now))
        .bind(&org)
        .bind(env)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        self.count_redemption(discount_id, -1).await?;
        Ok(true)
    }

    async fn count_redemption(&mut self, discount_id: uuid::Uuid, by: i64) -> Result<()> {
        sqlx::query("UPDATE discounts SET times_redeemed = times_redeemed + $1 WHERE id = $2")
            .bind(by)
            .bind(discount_id.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Whether a customer has an order that was paid (first-purchase codes).
    pub async fn customer_bought_before(&mut self, customer_id: &str) -> Result<bool> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(
            "SELECT 1 AS one FROM orders WHERE org_id = $1 AND environment = $2 AND customer_id = $3 \
             AND paid_at IS NOT NULL LIMIT 1",
        )
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.is_some())
    }
}
