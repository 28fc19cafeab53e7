//! Charges made through a networked payment provider (migration 0026):
//! written before the call, resolved after it, each in its own
//! transaction, and read by the work that needed the charge.

use crate::{tenant_binds, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::Row;

/// One charge through a provider, as asked and as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAttempt {
    /// Ours, and the provider's `Idempotency-Key`.
    pub key: String,
    pub provider: String,
    /// What the charge is for (`renewal:<subscription>:<due>`, …).
    pub purpose: String,
    /// The provider's customer and payment method.
    pub customer_ref: String,
    pub method_ref: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `pending` (asked, no answer committed), `succeeded`, `declined` or
    /// `requires_action` (the customer must authenticate).
    pub status: String,
    /// The provider's payment (a PaymentIntent id).
    pub payment_ref: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl PaymentAttempt {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

const COLUMNS: &str = "attempt_key, provider, purpose, customer_ref, method_ref, amount_minor, currency, status, \
                       payment_ref, error_code, message, created_at, resolved_at";

fn attempt_from(r: &sqlx::any::AnyRow) -> Result<PaymentAttempt> {
    Ok(PaymentAttempt {
        key: r.try_get("attempt_key")?,
        provider: r.try_get("provider")?,
        purpose: r.try_get("purpose")?,
        customer_ref: r.try_get("customer_ref")?,
        method_ref: r.try_get("method_ref")?,
        amount_minor: r.try_get("amount_minor")?,
        currency: r.try_get("currency")?,
        status: r.try_get("status")?,
        payment_ref: r.try_get("payment_ref")?,
        error_code: r.try_get("error_code")?,
        message: r.try_get("message")?,
        created_at: from_micros(r.try_get("created_at")?),
        resolved_at: r.try_get::<Option<i64>, _>("resolved_at")?.map(from_micros),
    })
}

impl Store {
    /// Records an attempt before its call; an attempt already recorded
    /// under the key (a call made before, maybe by a process that died) is
    /// kept as it is. Returns the attempt as stored.
    pub async fn begin_payment_attempt(&self, tenant: &Tenant, a: &PaymentAttempt) -> Result<PaymentAttempt> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO payment_attempts (org_id, environment, attempt_key, provider, purpose, customer_ref, \
             method_ref, amount_minor, currency, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10) \
             ON CONFLICT (org_id, environment, attempt_key) DO NOTHING",
        )
        .bind(org)
        .bind(env)
        .bind(&a.key)
        .bind(&a.provider)
        .bind(&a.purpose)
        .bind(&a.customer_ref)
        .bind(&a.method_ref)
        .bind(a.amount_minor)
        .bind(&a.currency)
        .bind(to_micros(a.created_at))
        .execute(self.write_pool())
        .await?;
        self.payment_attempt(tenant, &a.key).await?.ok_or(crate::StoreError::NotFound)
    }

    /// Records a provider's answer to a pending attempt.
    pub async fn resolve_payment_attempt(&self, tenant: &Tenant, a: &PaymentAttempt) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "UPDATE payment_attempts SET status = $4, payment_ref = $5, error_code = $6, message = $7, \
             resolved_at = $8 WHERE org_id = $1 AND environment = $2 AND attempt_key = $3",
        )
        .bind(org)
        .bind(env)
        .bind(&a.key)
        .bind(&a.status)
        .bind(&a.payment_ref)
        .bind(&a.error_code)
        .bind(&a.message)
        .bind(a.resolved_at.map(to_micros))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    pub async fn payment_attempt(&self, tenant: &Tenant, key: &str) -> Result<Option<PaymentAttempt>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_attempts WHERE org_id = $1 AND environment = $2 AND attempt_key = $3"
        ))
        .bind(org)
        .bind(env)
        .bind(key)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(attempt_from).transpose()
    }
}

impl Store {
    /// The order a provider's payment paid.
    pub async fn order_of_provider_payment(&self, tenant: &Tenant, payment_ref: &str) -> Result<Option<String>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(
            "SELECT order_id FROM provider_payments WHERE org_id = $1 AND environment = $2 AND payment_ref = $3",
        )
        .bind(org)
        .bind(env)
        .bind(payment_ref)
        .fetch_optional(self.read_pool())
        .await?;
        Ok(row.map(|r| r.try_get("order_id")).transpose()?)
    }
}

impl Store {
    /// Attempts no committed work used, made before `before`: charges (not
    /// refunds) pending, succeeded or orphaned, oldest first.
    pub async fn unused_payment_attempts(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(Tenant, PaymentAttempt)>> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("a.{}", c.trim())).collect();
        let rows = sqlx::query(&format!(
            "SELECT a.org_id, a.environment, o.seq, {} FROM payment_attempts a JOIN organizations o ON o.id = a.org_id \
             WHERE a.used = 0 AND a.created_at < $1 AND a.status IN ('pending', 'succeeded', 'orphaned') \
             AND a.purpose NOT LIKE 'refund:%' ORDER BY a.created_at LIMIT $2",
            columns.join(", ")
        ))
        .bind(to_micros(before))
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                let org: String = r.try_get("org_id")?;
                let env: String = r.try_get("environment")?;
                let org_id =
                    uuid::Uuid::parse_str(&org).map_err(|e| crate::StoreError::Corrupt(format!("org id: {e}")))?;
                let env = env.parse().map_err(|_| crate::StoreError::Corrupt(format!("environment {env}")))?;
                Ok((Tenant { org_id, org_seq: r.try_get("seq")?, env }, attempt_from(r)?))
            })
            .collect()
    }

    /// Moves an unused attempt from `from` to `to` (`succeeded` →
    /// `orphaned` claims it for a refund, so no work uses it meanwhile);
    /// whether it moved.
    pub async fn move_unused_payment_attempt(&self, tenant: &Tenant, key: &str, from: &str, to: &str) -> Result<bool> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(
            "UPDATE payment_attempts SET status = $5 WHERE org_id = $1 AND environment = $2 AND attempt_key = $3 \
             AND status = $4 AND used = 0",
        )
        .bind(org)
        .bind(env)
        .bind(key)
        .bind(from)
        .bind(to)
        .execute(self.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl crate::Work {
    /// Uses a succeeded attempt's payment for this work (committed with
    /// it); false when it is not there to use (claimed as an orphan).
    pub async fn use_payment_attempt(&mut self, key: &str) -> Result<bool> {
        let (org, env) = tenant_binds(self.tenant());
        let done = sqlx::query(
            "UPDATE payment_attempts SET used = 1 WHERE org_id = $1 AND environment = $2 AND attempt_key = $3 \
             AND status = 'succeeded'",
        )
        .bind(org)
        .bind(env)
        .bind(key)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An attempt as this work's transaction sees it.
    pub async fn payment_attempt(&mut self, key: &str) -> Result<Option<PaymentAttempt>> {
        let (org, env) = tenant_binds(self.tenant());
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_attempts WHERE org_id = $1 AND environment = $2 AND attempt_key = $3"
        ))
        .bind(org)
        .bind(env)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(attempt_from).transpose()
    }

    /// Records that the provider's payment `payment_ref` paid `order_id`.
    pub async fn link_provider_payment(&mut self, payment_ref: &str, order_id: &str) -> Result<()> {
        let (org, env) = tenant_binds(self.tenant());
        sqlx::query(
            "INSERT INTO provider_payments (org_id, environment, payment_ref, order_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, environment, payment_ref) DO NOTHING",
        )
        .bind(org)
        .bind(env)
        .bind(payment_ref)
        .bind(order_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Keeps this work from committing: it ran on a charge whose outcome is
    /// not known yet, so what it wrote is only a rehearsal. `commit` then
    /// rolls back and answers [`crate::StoreError::Held`].
    pub fn hold_commit(&mut self) {
        self.held_for_payment = true;
    }
}
