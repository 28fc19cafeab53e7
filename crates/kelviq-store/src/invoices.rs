//! Invoice numbers.

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
}
