use crate::Work;
use crate::{json_col, search_binds, search_filter, tenant_binds, uuid_col, Backend, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::customer::{BillingAddress, Customer, CustomerChanges, NewCustomer};
use kelviq_core::events;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// What a customer search matches.
const SEARCHED: &[&str] = &["COALESCE(name, '')", "COALESCE(email, '')", "customer_id"];

const COLUMNS: &str =
    "id, customer_id, name, email, metadata, billing_address, details, created_at, modified_at, archived_at";

fn customer_from_row(row: &AnyRow) -> Result<Customer> {
    let address: Option<String> = row.try_get("billing_address")?;
    let billing_address = address
        .map(|a| serde_json::from_str::<BillingAddress>(&a))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("billing_address: {e}")))?;
    Ok(Customer {
        id: uuid_col(row, "id")?,
        customer_id: row.try_get("customer_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        metadata: json_col(row, "metadata")?,
        billing_address,
        details: json_col(row, "details")?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
        archived_at: row.try_get::<Option<i64>, _>("archived_at")?.map(from_micros),
    })
}

fn address_json(a: &Option<BillingAddress>) -> Option<String> {
    a.as_ref().map(|a| serde_json::to_string(a).expect("an address always serialises"))
}

impl Store {
    /// Inserts a customer and its `customer.created` event in one transaction.
    /// A customer id already used in this tenant, even by an archived
    /// customer, is `Conflict("customer id")`.
    pub async fn insert_customer(&self, tenant: &Tenant, new: &NewCustomer, now: DateTime<Utc>) -> Result<Customer> {
        let mut work = self.begin(tenant).await?;
        let customer = work.insert_customer(new, now).await?;
        work.commit().await?;
        Ok(customer)
    }

    /// A live (not archived) customer by its merchant-chosen id.
    pub async fn find_customer(&self, tenant: &Tenant, customer_id: &str) -> Result<Option<Customer>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM customers WHERE org_id = $1 AND environment = $2 AND customer_id = $3 AND archived_at IS NULL"
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(customer_from_row).transpose()
    }

    /// A customer by id, archived or not.
    pub async fn find_customer_any(&self, tenant: &Tenant, customer_id: &str) -> Result<Option<Customer>> {
        customer_any(self.read_pool(), tenant, customer_id).await
    }

    /// How many live customers match `search` (see [`Store::list_customers`]).
    pub async fn count_customers(&self, tenant: &Tenant, search: Option<&str>) -> Result<i64> {
        let (org, env) = tenant_binds(tenant);
        let (search, pattern) = search_binds(search);
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM customers WHERE {}", search_filter(SEARCHED)))
            .bind(&org)
            .bind(env)
            .bind(search)
            .bind(&pattern)
            .fetch_one(self.read_pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Live customers, newest first, optionally filtered by a case-insensitive
    /// substring of name, email or customer id.
    pub async fn list_customers(
        &self,
        tenant: &Tenant,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Customer>> {
        let (org, env) = tenant_binds(tenant);
        let (search, pattern) = search_binds(search);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM customers WHERE {} ORDER BY created_at DESC, pk DESC LIMIT $5 OFFSET $6",
            search_filter(SEARCHED)
        ))
        .bind(&org)
        .bind(env)
        .bind(search)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// Applies `changes` to a live customer and writes `customer.updated` (with
    /// the old values) when anything actually changed, in one transaction.
    pub async fn update_customer(
        &self,
        tenant: &Tenant,
        customer_id: &str,
        changes: &CustomerChanges,
        now: DateTime<Utc>,
    ) -> Result<Customer> {
        let mut work = self.begin(tenant).await?;
        let current = work.lock_customer(customer_id).await?.ok_or(StoreError::NotFound)?;
        let next = work.update_customer(&current, changes, now).await?;
        work.commit().await?;
        Ok(next)
    }

    /// Archives a live customer. Its id stays taken.
    pub async fn archive_customer(&self, tenant: &Tenant, customer_id: &str, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let done = sqlx::query(
            "UPDATE customers SET archived_at = $1, modified_at = $1 \
             WHERE org_id = $2 AND environment = $3 AND customer_id = $4 AND archived_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .execute(self.write_pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

async fn insert_customer_tx(w: &mut Work, new: &NewCustomer, now: DateTime<Utc>) -> Result<Customer> {
    let tenant = w.tenant().clone();
    let customer = Customer {
        id: uuid::Uuid::new_v4(),
        customer_id: new.customer_id.clone(),
        name: new.name.clone(),
        email: new.email.clone(),
        metadata: new.metadata.clone(),
        billing_address: new.billing_address.clone(),
        details: serde_json::json!({}),
        created_at: now,
        modified_at: now,
        archived_at: None,
    };
    let (org, env) = tenant_binds(&tenant);
    sqlx::query(
        "INSERT INTO customers (id, org_id, environment, customer_id, name, email, metadata, billing_address, details, created_at, modified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(customer.id.to_string())
    .bind(&org)
    .bind(env)
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.email)
    .bind(customer.metadata.to_string())
    .bind(address_json(&customer.billing_address))
    .bind(customer.details.to_string())
    .bind(to_micros(now))
    .bind(to_micros(now))
    .execute(&mut **w.tx())
    .await
    .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict("customer id") } else { e.into() })?;
    let event = events::customer_created(&customer, &tenant, now);
    w.event(&event).await?;
    Ok(customer)
}

async fn lock_customer(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    tenant: &Tenant,
    customer_id: &str,
) -> Result<Option<Customer>> {
    let (org, env) = tenant_binds(tenant);
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM customers WHERE org_id = $1 AND environment = $2 AND customer_id = $3 AND archived_at IS NULL{}",
        backend.for_update()
    ))
    .bind(&org)
    .bind(env)
    .bind(customer_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(customer_from_row).transpose()
}

async fn update_customer_tx(
    w: &mut Work,
    current: &Customer,
    changes: &CustomerChanges,
    now: DateTime<Utc>,
) -> Result<Customer> {
    let tenant = w.tenant().clone();
    let (mut next, previous) = changes.apply(current);
    if previous.is_empty() {
        return Ok(current.clone());
    }
    next.modified_at = now;
    sqlx::query(
        "UPDATE customers SET name = $1, email = $2, metadata = $3, billing_address = $4, modified_at = $5 WHERE id = $6",
    )
    .bind(&next.name)
    .bind(&next.email)
    .bind(next.metadata.to_string())
    .bind(address_json(&next.billing_address))
    .bind(to_micros(now))
    .bind(next.id.to_string())
    .execute(&mut **w.tx())
    .await?;
    let event = events::customer_updated(&next, &tenant, previous, now);
    w.event(&event).await?;
    Ok(next)
}

impl Work {
    /// A live customer, locked until the work ends.
    pub async fn lock_customer(&mut self, customer_id: &str) -> Result<Option<Customer>> {
        let (backend, tenant) = (self.backend(), self.tenant().clone());
        lock_customer(self.tx(), backend, &tenant, customer_id).await
    }

    /// The live customers among `customer_ids`, locked until the work ends.
    pub async fn lock_customers(&mut self, customer_ids: &[&str]) -> Result<Vec<Customer>> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, env) = tenant_binds(self.tenant());
        let sql = format!(
            "SELECT {COLUMNS} FROM customers WHERE org_id = $1 AND environment = $2 AND archived_at IS NULL \
             AND customer_id IN {} ORDER BY customer_id{}",
            crate::pending::placeholders(1, customer_ids.len(), 3),
            self.backend().for_update()
        );
        let q = sqlx::query(&sql).bind(org).bind(env);
        let rows = customer_ids.iter().fold(q, |q, c| q.bind(*c)).fetch_all(&mut **self.tx()).await?;
        rows.iter().map(customer_from_row).collect()
    }

    /// Creates a customer (with its `customer.created` event).
    pub async fn insert_customer(&mut self, new: &NewCustomer, now: DateTime<Utc>) -> Result<Customer> {
        insert_customer_tx(self, new, now).await
    }

    /// Changes a customer (with `customer.updated` when something changed).
    pub async fn update_customer(
        &mut self,
        current: &Customer,
        changes: &CustomerChanges,
        now: DateTime<Utc>,
    ) -> Result<Customer> {
        update_customer_tx(self, current, changes, now).await
    }
}

/// A customer, archived or not, on a pool or a transaction.
async fn customer_any<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Any>,
    tenant: &Tenant,
    customer_id: &str,
) -> Result<Option<Customer>> {
    let (org, env) = tenant_binds(tenant);
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM customers WHERE org_id = $1 AND environment = $2 AND customer_id = $3"
    ))
    .bind(org)
    .bind(env)
    .bind(customer_id)
    .fetch_optional(on)
    .await?;
    row.as_ref().map(customer_from_row).transpose()
}

impl Work {
    /// [`Store::find_customer_any`], read inside this transaction.
    pub async fn find_customer_any(&mut self, customer_id: &str) -> Result<Option<Customer>> {
        let tenant = self.tenant().clone();
        customer_any(&mut **self.tx(), &tenant, customer_id).await
    }
}
