//! Saved payment methods. A work can read the default methods of many
//! customers at once (a billing run's batch) and keeps what it read current
//! with its own writes.

use crate::selling::{doc_from_row, to_doc};
use crate::{tenant_binds, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A stored payment method: its integer id, whether it is the customer's
/// default, and its document.
#[derive(Debug, Clone)]
pub struct StoredPaymentMethod<T> {
    pub id: i64,
    pub is_default: bool,
    pub doc: T,
}

const COLUMNS: &str = "id, customer_id, CAST(CASE WHEN is_default THEN 1 ELSE 0 END AS BIGINT) AS is_default, doc";

fn payment_method_from_row<T: DeserializeOwned>(row: &AnyRow) -> Result<StoredPaymentMethod<T>> {
    let is_default = row.try_get::<i64, _>("is_default")? != 0;
    Ok(StoredPaymentMethod { id: row.try_get("id")?, is_default, doc: doc_from_row(row)? })
}

fn parse<T: DeserializeOwned>(id: i64, text: &str) -> Result<StoredPaymentMethod<T>> {
    let doc = serde_json::from_str(text).map_err(|e| crate::StoreError::Corrupt(format!("doc: {e}")))?;
    Ok(StoredPaymentMethod { id, is_default: true, doc })
}

impl Store {
    /// A customer's payment methods, default first then newest first.
    pub async fn payment_methods<T: DeserializeOwned>(
        &self,
        tenant: &Tenant,
        customer_id: Option<&str>,
    ) -> Result<Vec<StoredPaymentMethod<T>>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE org_id = $1 AND environment = $2 \
             AND ($3 = '' OR customer_id = $3) ORDER BY created_at DESC, id DESC"
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id.unwrap_or(""))
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(payment_method_from_row).collect()
    }
}

impl Work {
    /// A customer's payment methods as this work sees them (after locking
    /// the customer: what a concurrent work saved for them is committed).
    pub async fn payment_methods_of<T: DeserializeOwned>(
        &mut self,
        customer_id: &str,
    ) -> Result<Vec<StoredPaymentMethod<T>>> {
        let (org, env) = tenant_binds(self.tenant());
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE org_id = $1 AND environment = $2 AND customer_id = $3 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(payment_method_from_row).collect()
    }

    /// Saves a payment method; a default one makes the customer's others non-default.
    pub async fn insert_payment_method<T: Serialize>(
        &mut self,
        customer_id: &str,
        doc: &T,
        is_default: bool,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.flush().await?;
        if let Some(known) = self.payment_methods.as_mut() {
            known.remove(customer_id);
        }
        let (org, env) = tenant_binds(&self.tenant);
        if is_default {
            sqlx::query(
                "UPDATE payment_methods SET is_default = $1 WHERE org_id = $2 AND environment = $3 AND customer_id = $4",
            )
            .bind(false)
            .bind(&org)
            .bind(env)
            .bind(customer_id)
            .execute(&mut *self.tx)
            .await?;
        }
        let row = sqlx::query(
            "INSERT INTO payment_methods (org_id, environment, customer_id, is_default, doc, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&org)
        .bind(env)
        .bind(customer_id)
        .bind(is_default)
        .bind(to_doc(doc))
        .bind(to_micros(now))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// A payment method of the tenant, locked.
    pub async fn lock_payment_method<T: DeserializeOwned>(
        &mut self,
        id: i64,
    ) -> Result<Option<StoredPaymentMethod<T>>> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE org_id = $1 AND environment = $2 AND id = $3{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(payment_method_from_row).transpose()
    }

    /// The customer's default payment method, locked.
    pub async fn default_payment_method<T: DeserializeOwned>(
        &mut self,
        customer_id: &str,
    ) -> Result<Option<StoredPaymentMethod<T>>> {
        if let Some(Some(known)) = self.payment_methods.as_ref().map(|k| k.get(customer_id)) {
            return known.as_ref().map(|(id, text)| parse(*id, text)).transpose();
        }
        self.flush().await?;
        Ok(self.read_default_payment_methods(&[customer_id]).await?.pop().map(|(_, m)| m))
    }

    /// Reads (and locks) the default payment methods of these customers for
    /// the rest of the work: [`Work::default_payment_method`] answers from
    /// what it read.
    pub async fn read_default_payment_methods_of(&mut self, customer_ids: &[&str]) -> Result<()> {
        self.flush().await?;
        let found = self.read_default_payment_methods::<serde_json::Value>(customer_ids).await?;
        let known = self.payment_methods.get_or_insert_with(Default::default);
        for c in customer_ids {
            known.insert(c.to_string(), None);
        }
        for (customer, m) in found {
            known.insert(customer, Some((m.id, to_doc(&m.doc))));
        }
        Ok(())
    }

    /// Each customer's default method (the newest when several claim it).
    async fn read_default_payment_methods<T: DeserializeOwned>(
        &mut self,
        customer_ids: &[&str],
    ) -> Result<Vec<(String, StoredPaymentMethod<T>)>> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, env) = tenant_binds(&self.tenant);
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_methods WHERE org_id = $1 AND environment = $2 AND is_default = $3 \
             AND customer_id IN {} ORDER BY id DESC{}",
            crate::pending::placeholders(1, customer_ids.len(), 4),
            self.backend.for_update()
        );
        let q = sqlx::query(&sql).bind(org).bind(env).bind(true);
        let rows = customer_ids.iter().fold(q, |q, c| q.bind(*c)).fetch_all(&mut *self.tx).await?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for row in &rows {
            let customer: String = row.try_get("customer_id")?;
            if seen.insert(customer.clone()) {
                out.push((customer, payment_method_from_row(row)?));
            }
        }
        Ok(out)
    }

    /// Makes `id` the customer's only default method.
    pub async fn set_default_payment_method(&mut self, customer_id: &str, id: i64) -> Result<()> {
        self.flush().await?;
        if let Some(known) = self.payment_methods.as_mut() {
            known.remove(customer_id);
        }
        let (org, env) = tenant_binds(&self.tenant);
        sqlx::query(
            "UPDATE payment_methods SET is_default = (id = $1) WHERE org_id = $2 AND environment = $3 AND customer_id = $4",
        )
        .bind(id)
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn save_payment_method<T: Serialize>(&mut self, id: i64, doc: &T) -> Result<()> {
        let text = to_doc(doc);
        if let Some(known) = self.payment_methods.as_mut() {
            for (mid, t) in known.values_mut().flatten() {
                if *mid == id {
                    t.clone_from(&text);
                }
            }
        }
        let (org, _) = tenant_binds(&self.tenant);
        if let Some(pending) = self.pending.as_mut() {
            pending.update_payment_method(id, text, org);
            return Ok(());
        }
        sqlx::query("UPDATE payment_methods SET doc = $1 WHERE id = $2 AND org_id = $3")
            .bind(text)
            .bind(id)
            .bind(org)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
