//! Storage for selling: checkout sessions, payment methods, subscriptions,
//! orders, transactions, refunds and the sandbox test clocks.
//!
//! Records are JSON documents with their queried columns beside them. Writes
//! that belong together go through one [`Work`]: a transaction that also
//! writes outbox events and change-feed entries, so a completion, renewal or
//! plan change is all-or-nothing.

use crate::changes::record_change;
use crate::events::write_event;
use crate::filters::{bind_all, where_clause, Filter};
use crate::{tenant_binds, Backend, Result, Store, StoreError, Work};
use chrono::{DateTime, Duration, Utc};
use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Topic of published plans (what subscribers hold may change); the subject is `{org_id}:{environment}`.
pub const TOPIC_CATALOG: &str = "catalog";

/// Topic of sandbox test clock moves; the subject is `{org_id}:{environment}`.
pub const TOPIC_TEST_CLOCK: &str = "test_clock";

/// Topic of changes to what a customer is entitled to; the subject is
/// `{org_id}:{environment}:{customer_id}`.
pub const TOPIC_ENTITLEMENTS: &str = "entitlements";

/// The tables holding documents keyed by a text `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocTable {
    CheckoutSessions,
    Subscriptions,
    Orders,
    Transactions,
    Refunds,
    Invoices,
}

impl DocTable {
    fn name(self) -> &'static str {
        match self {
            DocTable::CheckoutSessions => "checkout_sessions",
            DocTable::Subscriptions => "subscriptions",
            DocTable::Orders => "orders",
            DocTable::Transactions => "transactions",
            DocTable::Refunds => "refunds",
            DocTable::Invoices => "invoices",
        }
    }

    /// The column lists are newest-first by.
    fn newest(self) -> &'static str {
        match self {
            DocTable::Orders => "COALESCE(paid_at, created_at) DESC, pk DESC",
            _ => "created_at DESC, pk DESC",
        }
    }
}

fn doc_from_row<T: DeserializeOwned>(row: &AnyRow) -> Result<T> {
    let text: String = row.try_get("doc")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("doc: {e}")))
}

fn to_doc<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("documents serialise")
}

/// A stored payment method: its integer id, whether it is the customer's
/// default, and its document.
#[derive(Debug, Clone)]
pub struct StoredPaymentMethod<T> {
    pub id: i64,
    pub is_default: bool,
    pub doc: T,
}

impl Store {
    /// How far the tenant's sandbox test clock runs ahead of the server clock.
    pub async fn test_clock_offset(&self, tenant: &Tenant) -> Result<Duration> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query("SELECT offset_micros FROM test_clocks WHERE org_id = $1 AND environment = $2")
            .bind(org)
            .bind(env)
            .fetch_optional(self.read_pool())
            .await?;
        Ok(match row {
            Some(r) => Duration::microseconds(r.try_get("offset_micros")?),
            None => Duration::zero(),
        })
    }

    /// Every tenant whose test clock runs ahead, with its offset.
    pub async fn test_clocks(&self) -> Result<Vec<(uuid::Uuid, String, Duration)>> {
        let rows = sqlx::query("SELECT org_id, environment, offset_micros FROM test_clocks")
            .fetch_all(self.read_pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    crate::uuid_col(r, "org_id")?,
                    r.try_get("environment")?,
                    Duration::microseconds(r.try_get("offset_micros")?),
                ))
            })
            .collect()
    }

    /// A document by id, within the tenant.
    pub async fn find_doc<T: DeserializeOwned>(&self, table: DocTable, tenant: &Tenant, id: &str) -> Result<Option<T>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT doc FROM {} WHERE org_id = $1 AND environment = $2 AND id = $3",
            table.name()
        ))
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    /// How many documents match.
    pub async fn count_docs(&self, table: DocTable, tenant: &Tenant, filters: &[Filter]) -> Result<i64> {
        let (org, env) = tenant_binds(tenant);
        let (clause, binds) = where_clause(filters, 3);
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {clause}", table.name());
        let q = bind_all(sqlx::query(&sql).bind(org).bind(env), binds);
        Ok(q.fetch_one(self.read_pool()).await?.try_get("n")?)
    }

    /// One page of the matching documents, newest first.
    pub async fn list_docs<T: DeserializeOwned>(
        &self,
        table: DocTable,
        tenant: &Tenant,
        filters: &[Filter],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<T>> {
        let (org, env) = tenant_binds(tenant);
        let (clause, binds) = where_clause(filters, 3);
        let n = 3 + binds.len();
        let sql = format!(
            "SELECT doc FROM {} WHERE {clause} ORDER BY {} LIMIT ${n} OFFSET ${}",
            table.name(),
            table.newest(),
            n + 1
        );
        let q = bind_all(sqlx::query(&sql).bind(org).bind(env), binds).bind(limit).bind(offset);
        let rows = q.fetch_all(self.read_pool()).await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// A checkout session by id in any tenant (the hosted page has only the id).
    pub async fn find_checkout_session_anywhere<T: DeserializeOwned>(&self, id: &str) -> Result<Option<(Tenant, T)>> {
        let row = sqlx::query(
            "SELECT s.doc, s.org_id, s.environment, o.seq FROM checkout_sessions s \
             JOIN organizations o ON o.id = s.org_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(self.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let env: String = row.try_get("environment")?;
        let tenant = Tenant {
            org_id: crate::uuid_col(&row, "org_id")?,
            org_seq: row.try_get("seq")?,
            env: env.parse().map_err(|_| StoreError::Corrupt(format!("environment {env}")))?,
        };
        Ok(Some((tenant, doc_from_row(&row)?)))
    }

    /// A customer's payment methods, default first then newest first.
    pub async fn payment_methods<T: DeserializeOwned>(
        &self,
        tenant: &Tenant,
        customer_id: Option<&str>,
    ) -> Result<Vec<StoredPaymentMethod<T>>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT id, CAST(CASE WHEN is_default THEN 1 ELSE 0 END AS BIGINT) AS is_default, doc FROM payment_methods WHERE org_id = $1 AND environment = $2 \
             AND ($3 = '' OR customer_id = $3) ORDER BY created_at DESC, id DESC",
        )
        .bind(org)
        .bind(env)
        .bind(customer_id.unwrap_or(""))
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(payment_method_from_row).collect()
    }

    /// Up to `limit` subscriptions due soonest at or before `at`, all due
    /// at that same instant (what falls due later waits for them), read
    /// without a lock: what their work needs is read before it begins.
    pub async fn peek_due<T: DeserializeOwned>(
        &self,
        tenant: &Tenant,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<T>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT doc FROM subscriptions WHERE org_id = $1 AND environment = $2 AND next_due_at = \
             (SELECT MIN(next_due_at) FROM subscriptions WHERE org_id = $1 AND environment = $2 \
              AND next_due_at IS NOT NULL AND next_due_at <= $3) ORDER BY pk LIMIT $4",
        )
        .bind(org)
        .bind(env)
        .bind(to_micros(at))
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// The tenants with subscriptions due at or before `at`.
    pub async fn tenants_with_due_work(&self, at: DateTime<Utc>) -> Result<Vec<(uuid::Uuid, i64, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.org_id, o.seq, s.environment FROM subscriptions s \
             JOIN organizations o ON o.id = s.org_id WHERE s.next_due_at IS NOT NULL AND s.next_due_at <= $1",
        )
        .bind(to_micros(at))
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((crate::uuid_col(r, "org_id")?, r.try_get("seq")?, r.try_get("environment")?))).collect()
    }
}

fn payment_method_from_row<T: DeserializeOwned>(row: &AnyRow) -> Result<StoredPaymentMethod<T>> {
    let is_default = row.try_get::<i64, _>("is_default")? != 0;
    Ok(StoredPaymentMethod { id: row.try_get("id")?, is_default, doc: doc_from_row(row)? })
}

/// The columns a document table keeps beside the document.
#[derive(Debug, Clone, Default)]
pub struct DocColumns {
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub invoice_id: Option<String>,
    pub subscription_id: Option<String>,
    pub billing_type: Option<String>,
    pub is_renewal: bool,
    pub paid_at: Option<DateTime<Utc>>,
    pub order_id: Option<String>,
    /// Invoices: the number, and what the invoice bills (unique).
    pub number: Option<String>,
    pub billing_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

impl DocColumns {
    /// The columns of a subscription's row: its customer, status, next due
    /// time (renewal, trial end, retry or cancellation) and start.
    pub fn of_subscription(s: &kelviq_core::billing::Subscription) -> DocColumns {
        DocColumns {
            customer_id: Some(s.customer_id.clone()),
            status: Some(s.status.as_str().into()),
            next_due_at: s.next_due().map(|d| d.0),
            started_at: Some(s.started_at),
            created_at: s.created_at,
            modified_at: s.modified_at,
            ..Default::default()
        }
    }
}

impl Work {
    /// Stores a subscription (new or changed) with its columns.
    pub async fn put_subscription(&mut self, s: &kelviq_core::billing::Subscription) -> Result<()> {
        self.put(DocTable::Subscriptions, &s.id.to_string(), s, &DocColumns::of_subscription(s)).await
    }
}

impl Work {
    /// Reads a document and locks its row until the work ends.
    pub async fn lock<T: DeserializeOwned>(&mut self, table: DocTable, id: &str) -> Result<Option<T>> {
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT doc FROM {} WHERE org_id = $1 AND environment = $2 AND id = $3{}",
            table.name(),
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    /// Moves a checkout session from `from` to `to` status; false if it was not in `from`.
    /// This is the claim that makes two simultaneous completions produce one order.
    pub async fn claim_session(&mut self, id: &str, from: &str, to: &str) -> Result<bool> {
        let (org, env) = tenant_binds(&self.tenant);
        let done = sqlx::query(
            "UPDATE checkout_sessions SET status = $1 WHERE org_id = $2 AND environment = $3 AND id = $4 AND status = $5",
        )
        .bind(to)
        .bind(org)
        .bind(env)
        .bind(id)
        .bind(from)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Inserts or replaces a document.
    pub async fn put<T: Serialize>(&mut self, table: DocTable, id: &str, doc: &T, cols: &DocColumns) -> Result<()> {
        let (org, _) = tenant_binds(&self.tenant);
        let text = to_doc(doc);
        let status = cols.status.clone().unwrap_or_default();
        let updated = match table {
            DocTable::CheckoutSessions => {
                sqlx::query("UPDATE checkout_sessions SET status = $1, doc = $2 WHERE id = $3 AND org_id = $4")
                    .bind(&status)
                    .bind(&text)
                    .bind(id)
                    .bind(&org)
                    .execute(&mut *self.tx)
                    .await?
            }
            DocTable::Subscriptions => {
                sqlx::query(
                    "UPDATE subscriptions SET status = $1, doc = $2, next_due_at = $3, modified_at = $4 \
                     WHERE id = $5 AND org_id = $6",
                )
                .bind(&status)
                .bind(&text)
                .bind(cols.next_due_at.map(to_micros))
                .bind(to_micros(cols.modified_at))
                .bind(id)
                .bind(&org)
                .execute(&mut *self.tx)
                .await?
            }
            DocTable::Orders => {
                sqlx::query("UPDATE orders SET status = $1, doc = $2, paid_at = $3 WHERE id = $4 AND org_id = $5")
                    .bind(&status)
                    .bind(&text)
                    .bind(cols.paid_at.map(to_micros))
                    .bind(id)
                    .bind(&org)
                    .execute(&mut *self.tx)
                    .await?
            }
            DocTable::Transactions | DocTable::Refunds | DocTable::Invoices => {
                sqlx::query(&format!("UPDATE {} SET status = $1, doc = $2 WHERE id = $3 AND org_id = $4", table.name()))
                    .bind(&status)
                    .bind(&text)
                    .bind(id)
                    .bind(&org)
                    .execute(&mut *self.tx)
                    .await?
            }
        };
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        self.insert_doc(table, id, doc, cols).await
    }

    /// Inserts a new document (one that cannot exist yet: [`Work::put`] without its update).
    pub async fn insert_doc<T: Serialize>(
        &mut self,
        table: DocTable,
        id: &str,
        doc: &T,
        cols: &DocColumns,
    ) -> Result<()> {
        let (org, env) = tenant_binds(&self.tenant);
        let text = to_doc(doc);
        let status = cols.status.clone().unwrap_or_default();
        let created = to_micros(cols.created_at);
        let money_sql = format!(
            "INSERT INTO {} (id, org_id, environment, order_id, status, doc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            table.name()
        );
        let q = match table {
            DocTable::CheckoutSessions => sqlx::query(
                "INSERT INTO checkout_sessions (id, org_id, environment, status, doc, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(&org)
            .bind(env)
            .bind(&status)
            .bind(&text)
            .bind(created)
            .bind(cols.expires_at.map(to_micros).unwrap_or(created)),
            DocTable::Subscriptions => sqlx::query(
                "INSERT INTO subscriptions (id, org_id, environment, customer_id, status, next_due_at, doc, started_at, \
                 created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(&org)
            .bind(env)
            .bind(cols.customer_id.clone().unwrap_or_default())
            .bind(&status)
            .bind(cols.next_due_at.map(to_micros))
            .bind(&text)
            .bind(cols.started_at.map(to_micros).unwrap_or(created))
            .bind(created)
            .bind(to_micros(cols.modified_at)),
            DocTable::Orders => sqlx::query(
                "INSERT INTO orders (id, invoice_id, org_id, environment, customer_id, subscription_id, status, \
                 billing_type, is_renewal, doc, paid_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(cols.invoice_id.clone().unwrap_or_default())
            .bind(&org)
            .bind(env)
            .bind(cols.customer_id.clone().unwrap_or_default())
            .bind(cols.subscription_id.clone())
            .bind(&status)
            .bind(cols.billing_type.clone().unwrap_or_default())
            .bind(cols.is_renewal)
            .bind(&text)
            .bind(cols.paid_at.map(to_micros))
            .bind(created),
            DocTable::Invoices => sqlx::query(
                "INSERT INTO invoices (id, number, org_id, environment, customer_id, subscription_id, order_id, status, \
                 billing_key, doc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(cols.number.clone().unwrap_or_default())
            .bind(&org)
            .bind(env)
            .bind(cols.customer_id.clone().unwrap_or_default())
            .bind(cols.subscription_id.clone())
            .bind(cols.order_id.clone().unwrap_or_default())
            .bind(&status)
            .bind(cols.billing_key.clone().unwrap_or_else(|| id.to_string()))
            .bind(&text)
            .bind(created),
            DocTable::Transactions | DocTable::Refunds => sqlx::query(&money_sql)
                .bind(id)
                .bind(&org)
                .bind(env)
                .bind(cols.order_id.clone().unwrap_or_default())
                .bind(&status)
                .bind(&text)
                .bind(created),
        };
        q.execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Documents of a table matching filters, locked, oldest first.
    pub async fn lock_all<T: DeserializeOwned>(&mut self, table: DocTable, filters: &[Filter]) -> Result<Vec<T>> {
        let (org, env) = tenant_binds(&self.tenant);
        let (clause, binds) = where_clause(filters, 3);
        let sql = format!("SELECT doc FROM {} WHERE {clause} ORDER BY pk{}", table.name(), self.backend.for_update());
        let rows = bind_all(sqlx::query(&sql).bind(org).bind(env), binds).fetch_all(&mut *self.tx).await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// A subscription still due at or before `at`, locked until the work
    /// ends; `None` when it is not due any more or (PostgreSQL) another
    /// process holds it.
    pub async fn lock_due<T: DeserializeOwned>(&mut self, id: &str, at: DateTime<Utc>) -> Result<Option<T>> {
        let (org, env) = tenant_binds(&self.tenant);
        let skip = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let row = sqlx::query(&format!(
            "SELECT doc FROM subscriptions WHERE org_id = $1 AND environment = $2 AND id = $3 \
             AND next_due_at IS NOT NULL AND next_due_at <= $4{skip}"
        ))
        .bind(org)
        .bind(env)
        .bind(id)
        .bind(to_micros(at))
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    /// Whether an order or invoice id is taken already.
    pub async fn order_id_taken(&mut self, order_id: &str, invoice_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS taken FROM orders WHERE id = $1 OR invoice_id = $2 LIMIT 1")
            .bind(order_id)
            .bind(invoice_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    /// The id of the tenant's subscription due soonest at or before `at`, with its due time.
    pub async fn next_due(&mut self, at: DateTime<Utc>) -> Result<Option<(String, DateTime<Utc>)>> {
        let (org, env) = tenant_binds(&self.tenant);
        let skip = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let row = sqlx::query(&format!(
            "SELECT id, next_due_at FROM subscriptions WHERE org_id = $1 AND environment = $2 \
             AND next_due_at IS NOT NULL AND next_due_at <= $3 ORDER BY next_due_at, pk LIMIT 1{skip}"
        ))
        .bind(org)
        .bind(env)
        .bind(to_micros(at))
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| Ok((r.try_get("id")?, from_micros(r.try_get("next_due_at")?)))).transpose()
    }

    /// Writes an event to the outbox, with a delivery to each endpoint
    /// that wants it; the dispatcher hears of them once the work commits.
    pub async fn event(&mut self, event: &OutboxEvent) -> Result<()> {
        write_event(&mut self.tx, &self.tenant, event).await?;
        let subscribers = match self.subscribers.take() {
            Some((tenant, known)) if tenant == self.tenant => known,
            _ => crate::webhooks::subscribers(&mut self.tx, &self.tenant).await?,
        };
        let queued = crate::webhooks::fan_out(&mut self.tx, &self.tenant, &subscribers, event).await;
        self.subscribers = Some((self.tenant.clone(), subscribers));
        if queued? > 0 {
            self.webhooks_queued = true;
        }
        Ok(())
    }

    /// Tells every server process that a customer's entitlements changed.
    pub async fn entitlements_changed(&mut self, customer_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.changed.push((self.tenant.clone(), customer_id.to_string()));
        let subject = format!("{}:{}:{customer_id}", self.tenant.org_id, self.tenant.env.as_str());
        record_change(&mut self.tx, self.backend, TOPIC_ENTITLEMENTS, &subject, now).await
    }

    /// Saves a payment method; a default one makes the customer's others non-default.
    pub async fn insert_payment_method<T: Serialize>(
        &mut self,
        customer_id: &str,
        doc: &T,
        is_default: bool,
        now: DateTime<Utc>,
    ) -> Result<i64> {
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
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT id, CAST(CASE WHEN is_default THEN 1 ELSE 0 END AS BIGINT) AS is_default, doc FROM payment_methods WHERE org_id = $1 AND environment = $2 AND id = $3{}",
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
        let (org, env) = tenant_binds(&self.tenant);
        let row = sqlx::query(&format!(
            "SELECT id, CAST(CASE WHEN is_default THEN 1 ELSE 0 END AS BIGINT) AS is_default, doc FROM payment_methods WHERE org_id = $1 AND environment = $2 \
             AND customer_id = $3 AND is_default = $4 ORDER BY id DESC LIMIT 1{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .bind(true)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(payment_method_from_row).transpose()
    }

    pub async fn save_payment_method<T: Serialize>(&mut self, id: i64, doc: &T) -> Result<()> {
        let (org, _) = tenant_binds(&self.tenant);
        sqlx::query("UPDATE payment_methods SET doc = $1 WHERE id = $2 AND org_id = $3")
            .bind(to_doc(doc))
            .bind(id)
            .bind(org)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Sets the tenant's test clock offset (and tells the other processes).
    pub async fn set_test_clock(&mut self, offset: Duration, now: DateTime<Utc>) -> Result<()> {
        let subject = format!("{}:{}", self.tenant.org_id, self.tenant.env.as_str());
        record_change(&mut self.tx, self.backend, TOPIC_TEST_CLOCK, &subject, now).await?;
        let (org, env) = tenant_binds(&self.tenant);
        let done = sqlx::query("UPDATE test_clocks SET offset_micros = $1 WHERE org_id = $2 AND environment = $3")
            .bind(offset.num_microseconds().unwrap_or(i64::MAX))
            .bind(&org)
            .bind(env)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            sqlx::query("INSERT INTO test_clocks (org_id, environment, offset_micros) VALUES ($1, $2, $3)")
                .bind(&org)
                .bind(env)
                .bind(offset.num_microseconds().unwrap_or(i64::MAX))
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// The raw transaction, for the other modules' in-transaction writes.
    pub(crate) fn tx(&mut self) -> &mut Transaction<'static, Any> {
        &mut self.tx
    }
}
