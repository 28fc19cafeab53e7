//! Storage for selling: checkout sessions, payment methods, subscriptions,
//! orders, transactions, refunds and the sandbox test clocks.
//!
//! Records are JSON documents with their queried columns beside them. Writes
//! that belong together go through one [`Work`]: a transaction that also
//! writes outbox events and change-feed entries, so a completion, renewal or
//! plan change is all-or-nothing.

use crate::changes::record_change;
use crate::events::{event_row, write_event, EVENT_INSERT};
use crate::filters::{bind_all, where_clause, Filter};
use crate::pending::Arg;
use crate::{tenant_binds, Result, Store, StoreError, Work};
use chrono::{DateTime, Duration, Utc};
use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::to_micros;
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

    /// Whether a deferring work holds back its inserts (see [`crate::pending`]).
    fn deferrable(self) -> bool {
        matches!(self, DocTable::Orders | DocTable::Invoices | DocTable::Transactions)
    }

    /// The head of an insert of a row from [`doc_row`].
    fn insert_head(self) -> &'static str {
        match self {
            DocTable::CheckoutSessions => {
                "INSERT INTO checkout_sessions (id, org_id, environment, status, doc, created_at, expires_at)"
            }
            DocTable::Subscriptions => {
                "INSERT INTO subscriptions (id, org_id, environment, customer_id, status, next_due_at, doc, \
                 started_at, created_at, modified_at)"
            }
            DocTable::Orders => {
                "INSERT INTO orders (id, invoice_id, org_id, environment, customer_id, subscription_id, status, \
                 billing_type, is_renewal, doc, paid_at, created_at)"
            }
            DocTable::Invoices => {
                "INSERT INTO invoices (id, number, org_id, environment, customer_id, subscription_id, order_id, \
                 status, billing_key, doc, created_at)"
            }
            DocTable::Transactions => {
                "INSERT INTO transactions (id, org_id, environment, order_id, status, doc, created_at)"
            }
            DocTable::Refunds => "INSERT INTO refunds (id, org_id, environment, order_id, status, doc, created_at)",
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

pub(crate) fn doc_from_row<T: DeserializeOwned>(row: &AnyRow) -> Result<T> {
    let text: String = row.try_get("doc")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("doc: {e}")))
}

/// A new document's row, for its table's [`DocTable::insert_head`].
fn doc_row(table: DocTable, tenant: &Tenant, id: &str, text: String, cols: &DocColumns) -> Vec<Arg> {
    let (org, env) = tenant_binds(tenant);
    let key = cols.billing_key.clone().unwrap_or_else(|| id.to_string());
    let (org, env, id) = (Arg::Text(org), Arg::Text(env.to_string()), Arg::Text(id.to_string()));
    let status = Arg::Text(cols.status.clone().unwrap_or_default());
    let created = to_micros(cols.created_at);
    let text_or_empty = |v: &Option<String>| Arg::Text(v.clone().unwrap_or_default());
    match table {
        DocTable::CheckoutSessions => vec![
            id,
            org,
            env,
            status,
            Arg::Text(text),
            Arg::Int(created),
            Arg::Int(cols.expires_at.map(to_micros).unwrap_or(created)),
        ],
        DocTable::Subscriptions => vec![
            id,
            org,
            env,
            text_or_empty(&cols.customer_id),
            status,
            Arg::OptInt(cols.next_due_at.map(to_micros)),
            Arg::Text(text),
            Arg::Int(cols.started_at.map(to_micros).unwrap_or(created)),
            Arg::Int(created),
            Arg::Int(to_micros(cols.modified_at)),
        ],
        DocTable::Orders => vec![
            id,
            text_or_empty(&cols.invoice_id),
            org,
            env,
            text_or_empty(&cols.customer_id),
            Arg::OptText(cols.subscription_id.clone()),
            status,
            text_or_empty(&cols.billing_type),
            Arg::Bool(cols.is_renewal),
            Arg::Text(text),
            Arg::OptInt(cols.paid_at.map(to_micros)),
            Arg::Int(created),
        ],
        DocTable::Invoices => vec![
            id,
            text_or_empty(&cols.number),
            org,
            env,
            text_or_empty(&cols.customer_id),
            Arg::OptText(cols.subscription_id.clone()),
            text_or_empty(&cols.order_id),
            status,
            Arg::Text(key),
            Arg::Text(text),
            Arg::Int(created),
        ],
        DocTable::Transactions | DocTable::Refunds => {
            vec![id, org, env, text_or_empty(&cols.order_id), status, Arg::Text(text), Arg::Int(created)]
        }
    }
}

pub(crate) fn to_doc<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("documents serialise")
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
        self.flush().await?;
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
        self.flush().await?;
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
        if let (DocTable::Subscriptions, Some(pending)) = (table, self.pending.as_mut()) {
            // A deferring work updates only subscriptions it holds.
            let next = cols.next_due_at.map(to_micros);
            let modified = to_micros(cols.modified_at);
            pending.update_subscription(
                id,
                [Arg::Text(status), Arg::Text(text), Arg::OptInt(next), Arg::Int(modified), Arg::Text(org)],
            );
            return Ok(());
        }
        self.flush().await?;
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
        let row = doc_row(table, &self.tenant, id, to_doc(doc), cols);
        if let (true, Some(pending)) = (table.deferrable(), self.pending.as_mut()) {
            if table == DocTable::Orders {
                pending.order_ids.insert(id.to_string());
                pending.order_ids.insert(cols.invoice_id.clone().unwrap_or_default());
            }
            pending.insert(table.insert_head(), row);
            return Ok(());
        }
        crate::pending::insert_row(&mut self.tx, table.insert_head(), row).await
    }

    /// Documents of a table matching filters, locked, oldest first.
    pub async fn lock_all<T: DeserializeOwned>(&mut self, table: DocTable, filters: &[Filter]) -> Result<Vec<T>> {
        self.flush().await?;
        let (org, env) = tenant_binds(&self.tenant);
        let (clause, binds) = where_clause(filters, 3);
        let sql = format!("SELECT doc FROM {} WHERE {clause} ORDER BY pk{}", table.name(), self.backend.for_update());
        let rows = bind_all(sqlx::query(&sql).bind(org).bind(env), binds).fetch_all(&mut *self.tx).await?;
        rows.iter().map(doc_from_row).collect()
    }

    /// Writes an event to the outbox, with a delivery to each endpoint
    /// that wants it; the dispatcher hears of them once the work commits.
    pub async fn event(&mut self, event: &OutboxEvent) -> Result<()> {
        let subscribers = match self.subscribers.take() {
            Some((tenant, known)) if tenant == self.tenant => known,
            _ => crate::webhooks::subscribers(&mut self.tx, &self.tenant).await?,
        };
        let queued = match self.pending.as_mut() {
            Some(pending) => {
                pending.insert(EVENT_INSERT, event_row(&self.tenant, event));
                let rows = crate::webhooks::delivery_rows(&self.tenant, &subscribers, event);
                let n = rows.len();
                rows.into_iter().for_each(|r| pending.insert(crate::webhooks::DELIVERY_INSERT, r));
                Ok(n)
            }
            None => match write_event(&mut self.tx, &self.tenant, event).await {
                Ok(()) => crate::webhooks::fan_out(&mut self.tx, &self.tenant, &subscribers, event).await,
                Err(e) => Err(e),
            },
        };
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
        if let Some(pending) = self.pending.as_mut() {
            let row = vec![Arg::Text(TOPIC_ENTITLEMENTS.into()), Arg::Text(subject), Arg::Int(to_micros(now))];
            pending.insert(crate::changes::CHANGE_INSERT, row);
            pending.topic(TOPIC_ENTITLEMENTS);
            return Ok(());
        }
        record_change(&mut self.tx, self.backend, TOPIC_ENTITLEMENTS, &subject, now).await
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
