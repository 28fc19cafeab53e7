//! The mail outbox and the portal's sign-in codes (migration 0022).

use crate::{tenant_binds, Result, Store};
use chrono::{DateTime, Utc};
use kelviq_core::signin::PendingCode;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::Row;

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub seq: i64,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Store {
    /// Keeps a message; its number.
    pub async fn insert_mail(
        &self,
        tenant: &Tenant,
        to: &str,
        subject: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(
            "INSERT INTO mail_outbox (org_id, environment, to_addr, subject, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        )
        .bind(org)
        .bind(env)
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(to_micros(now))
        .fetch_one(self.write_pool())
        .await?;
        Ok(row.try_get("seq")?)
    }

    /// Records a message handed to the SMTP server, or why it was not.
    pub async fn mail_sent(&self, seq: i64, at: DateTime<Utc>, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE mail_outbox SET sent_at = $1, error = $2 WHERE seq = $3")
            .bind(error.is_none().then(|| to_micros(at)))
            .bind(error)
            .bind(seq)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// The newest messages first.
    pub async fn list_mail(&self, limit: i64) -> Result<Vec<Mail>> {
        let rows = sqlx::query(
            "SELECT seq, to_addr, subject, body, created_at, sent_at, error FROM mail_outbox ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Mail {
                    seq: r.try_get("seq")?,
                    to: r.try_get("to_addr")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                    created_at: from_micros(r.try_get("created_at")?),
                    sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(from_micros),
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// The live customer ids with this e-mail address (any case), oldest first.
    pub async fn customers_with_email(&self, tenant: &Tenant, email: &str) -> Result<Vec<(String, Option<String>)>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT customer_id, name FROM customers WHERE org_id = $1 AND environment = $2 \
             AND LOWER(email) = LOWER($3) AND archived_at IS NULL ORDER BY pk LIMIT 50",
        )
        .bind(org)
        .bind(env)
        .bind(email)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("customer_id")?, r.try_get("name")?))).collect()
    }

    pub async fn find_portal_code(&self, tenant: &Tenant, email: &str) -> Result<Option<PendingCode>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(
            "SELECT code_hash, expires_at, tries, locked_until FROM portal_codes \
             WHERE org_id = $1 AND environment = $2 AND email = $3",
        )
        .bind(org)
        .bind(env)
        .bind(email)
        .fetch_optional(self.read_pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PendingCode {
            code_hash: r.try_get("code_hash")?,
            expires_at: from_micros(r.try_get("expires_at")?),
            tries: r.try_get("tries")?,
            locked_until: r.try_get::<Option<i64>, _>("locked_until")?.map(from_micros),
        }))
    }

    /// Writes an address's pending code as it is now (`None`: used up).
    pub async fn put_portal_code(
        &self,
        tenant: &Tenant,
        email: &str,
        code: Option<&PendingCode>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM portal_codes WHERE org_id = $1 AND environment = $2 AND email = $3")
            .bind(&org)
            .bind(env)
            .bind(email)
            .execute(&mut *tx)
            .await?;
        if let Some(c) = code {
            sqlx::query(
                "INSERT INTO portal_codes (org_id, environment, email, code_hash, expires_at, tries, locked_until, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&org)
            .bind(env)
            .bind(email)
            .bind(&c.code_hash)
            .bind(to_micros(c.expires_at))
            .bind(c.tries)
            .bind(c.locked_until.map(to_micros))
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims one try of an address's code, atomically: the code with its
    /// tries counted, or None when there is none, it expired, it is locked
    /// or its tries are used up. At most five tries are ever judged.
    pub async fn claim_code_try(
        &self,
        tenant: &Tenant,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingCode>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(
            "UPDATE portal_codes SET tries = tries + 1 WHERE org_id = $1 AND environment = $2 AND email = $3 \
             AND tries < $4 AND expires_at > $5 AND (locked_until IS NULL OR locked_until <= $5) \
             RETURNING code_hash, expires_at, tries, locked_until",
        )
        .bind(org)
        .bind(env)
        .bind(email)
        .bind(kelviq_core::signin::MAX_TRIES)
        .bind(to_micros(now))
        .fetch_optional(self.write_pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PendingCode {
            code_hash: r.try_get("code_hash")?,
            expires_at: from_micros(r.try_get("expires_at")?),
            tries: r.try_get("tries")?,
            locked_until: r.try_get::<Option<i64>, _>("locked_until")?.map(from_micros),
        }))
    }

    /// Uses up an address's code (true once, for the first caller).
    pub async fn take_portal_code(&self, tenant: &Tenant, email: &str, code_hash: &str) -> Result<bool> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(
            "DELETE FROM portal_codes WHERE org_id = $1 AND environment = $2 AND email = $3 AND code_hash = $4",
        )
        .bind(org)
        .bind(env)
        .bind(email)
        .bind(code_hash)
        .execute(self.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Locks an address out until `until` (its tries are used up).
    pub async fn lock_portal_code(&self, tenant: &Tenant, email: &str, until: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query("UPDATE portal_codes SET locked_until = $4 WHERE org_id = $1 AND environment = $2 AND email = $3")
            .bind(org)
            .bind(env)
            .bind(email)
            .bind(to_micros(until))
            .execute(self.write_pool())
            .await?;
        Ok(())
    }
}
