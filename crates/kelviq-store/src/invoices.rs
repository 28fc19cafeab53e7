//! Invoice numbers.

use crate::{tenant_binds, Result, Work};
use sqlx::Row;

/// Takes the environment's counter row (locking it until the work ends),
/// adding `add`; returns the new last number.
const TAKE: &str = "INSERT INTO invoice_numbers (org_id, environment, last) VALUES ($1, $2, $3) \
     ON CONFLICT (org_id, environment) DO UPDATE SET last = invoice_numbers.last + $3 RETURNING last";

impl Work {
    /// The environment's next invoice number (1, 2, …), taken in this work:
    /// numbers are never skipped by a commit, nor given twice. A deferring
    /// work locks the counter once and writes its last number at the end.
    pub async fn next_invoice_number(&mut self) -> Result<i64> {
        if self.deferring() {
            if let Some((tenant, last, dirty)) = self.invoice_number.as_mut() {
                if *tenant == self.tenant {
                    *last += 1;
                    *dirty = true;
                    return Ok(*last);
                }
            }
            self.flush_invoice_number().await?;
            let last = self.take_invoice_numbers(0).await? + 1;
            self.invoice_number = Some((self.tenant.clone(), last, true));
            return Ok(last);
        }
        self.take_invoice_numbers(1).await
    }

    async fn take_invoice_numbers(&mut self, add: i64) -> Result<i64> {
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(TAKE).bind(org).bind(env).bind(add).fetch_one(&mut *self.tx).await?;
        Ok(row.try_get("last")?)
    }

    /// Writes a deferring work's last invoice number.
    pub(crate) async fn flush_invoice_number(&mut self) -> Result<()> {
        let Some((tenant, last, true)) = self.invoice_number.clone() else { return Ok(()) };
        let (org, env) = tenant_binds(&tenant);
        sqlx::query("UPDATE invoice_numbers SET last = $1 WHERE org_id = $2 AND environment = $3")
            .bind(last)
            .bind(org)
            .bind(env)
            .execute(&mut *self.tx)
            .await?;
        self.invoice_number = Some((tenant, last, false));
        Ok(())
    }
}
