//! Invoice numbers, and finding what an invoice bills.

use crate::{tenant_binds, Result, Work};
use sqlx::Row;

impl Work {
    /// The environment's next invoice number (1, 2, …), taken in this work:
    /// numbers are never skipped by a commit, nor given twice.
    pub async fn next_invoice_number(&mut self) -> Result<i64> {
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(
            "INSERT INTO invoice_numbers (org_id, environment, last) VALUES ($1, $2, 1) \
             ON CONFLICT (org_id, environment) DO UPDATE SET last = invoice_numbers.last + 1 RETURNING last",
        )
        .bind(org)
        .bind(env)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("last")?)
    }

    /// The id of the invoice that bills `billing_key`, if one was issued.
    pub async fn invoice_billing(&mut self, billing_key: &str) -> Result<Option<String>> {
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query("SELECT id FROM invoices WHERE org_id = $1 AND environment = $2 AND billing_key = $3")
            .bind(org)
            .bind(env)
            .bind(billing_key)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }
}
