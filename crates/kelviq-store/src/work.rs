//! A unit of work: one transaction for one tenant (which may switch tenant
//! for usage), with the customers whose entitlements it changed and the
//! change-feed wake-up to send once it commits. Every write that belongs
//! together goes through one, so it is all-or-nothing.

use crate::{Backend, Result, Store, StoreError};
use kelviq_core::Tenant;
use sqlx::{Any, Row, Transaction};

impl Store {
    /// Starts a unit of work for a tenant.
    pub async fn begin(&self, tenant: &Tenant) -> Result<Work> {
        Ok(Work {
            tx: self.begin_write().await?,
            _held: crate::held::Held::enter(),
            backend: self.backend,
            tenant: tenant.clone(),
            changed: Vec::new(),
            waker: self.waker.clone(),
            wake: None,
            usage_tenants: self.usage_tenants.clone(),
            webhook_bell: self.webhook_bell.clone(),
            webhooks_queued: false,
            subscribers: None,
            pending: None,
            invoice_number: None,
            payment_methods: None,
            free_order_ids: Vec::new(),
            tax: None,
            held_for_payment: false,
        })
    }
}

/// One transaction of writes for one tenant.
pub struct Work {
    pub(crate) tx: Transaction<'static, Any>,
    /// Marks this task as holding a transaction (see [`crate::held`]).
    pub(crate) _held: crate::held::Held,
    pub(crate) backend: Backend,
    pub(crate) tenant: Tenant,
    /// Customers whose entitlements this work changed.
    pub(crate) changed: Vec<(Tenant, String)>,
    /// Wakes the change feed's followers after the commit, when `wake` names
    /// the process whose writes the wake-up announces.
    pub(crate) waker: crate::changes::Waker,
    pub(crate) wake: Option<String>,
    /// The usage tables' tenant numbers (the store's).
    pub(crate) usage_tenants: crate::UsageTenants,
    /// Rung after the commit when the work queued webhook deliveries.
    pub(crate) webhook_bell: crate::WebhookBell,
    pub(crate) webhooks_queued: bool,
    /// The endpoints the work's events go to, read with its first event.
    pub(crate) subscribers: Option<(Tenant, crate::webhooks::Subscribers)>,
    /// Writes held back until the commit (see [`crate::pending`]).
    pub(crate) pending: Option<crate::pending::Pending>,
    /// A deferring work's invoice counter: its tenant, the last number it
    /// gave, and whether that is not written yet.
    pub(crate) invoice_number: Option<(Tenant, i64, bool)>,
    /// Customers' default payment methods read for the whole work (customer
    /// id → id and document), kept current by its writes.
    pub(crate) payment_methods: Option<std::collections::HashMap<String, Option<(i64, String)>>>,
    /// Order and invoice id pairs found free in this work, with the second
    /// they were drawn for.
    pub(crate) free_order_ids: Vec<(i64, String, String)>,
    /// The tax settings and each country's rates, read once per work (a
    /// billing run's batch taxes many invoices), for the tenant named.
    pub(crate) tax: Option<crate::tax_rates::TaxRead>,
    /// Set by [`Work::hold_commit`]: the commit rolls back.
    pub(crate) held_for_payment: bool,
}

impl Work {
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub(crate) fn changed_customer(&mut self, customer_id: &str) {
        self.changed.push((self.tenant.clone(), customer_id.to_string()));
    }

    pub(crate) fn set_tenant(&mut self, tenant: Tenant) {
        self.tenant = tenant;
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The usage tables' number of the tenant the work is for.
    pub(crate) async fn own_usage_tenant_number(&mut self) -> Result<i64> {
        let tenant = self.tenant.clone();
        self.usage_tenant_number(&tenant).await
    }

    /// The usage tables' number of a tenant (see [`crate::usage_binds`]).
    pub(crate) async fn usage_tenant_number(&mut self, tenant: &Tenant) -> Result<i64> {
        if let Some(n) = self.usage_tenants.get(tenant) {
            return Ok(n);
        }
        let (org, env) = crate::usage_binds(tenant);
        let row = sqlx::query(&format!("SELECT {} AS n", crate::usage_tenant("$1", "$2")))
            .bind(org)
            .bind(env)
            .fetch_one(&mut *self.tx)
            .await?;
        let n: Option<i64> = row.try_get("n")?;
        let n = n.ok_or(StoreError::NotFound)?;
        self.usage_tenants.insert(tenant, n);
        Ok(n)
    }

    /// Commits; returns the customers whose entitlements changed, so that
    /// this process can forget what it cached about them at once.
    pub async fn commit(mut self) -> Result<Vec<(Tenant, String)>> {
        if self.held_for_payment {
            return Err(StoreError::Held);
        }
        self.flush().await?;
        self.tx.commit().await?;
        if let Some(origin) = &self.wake {
            self.waker.wake(Some(origin));
        }
        if self.webhooks_queued {
            self.webhook_bell.ring();
        }
        Ok(self.changed)
    }
}
