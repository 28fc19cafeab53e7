//! The blocking client: the same modules as the async one, each call run to
//! completion on a private single-threaded runtime.

use crate::customers::{CreateCustomer, ListCustomers, UpdateCustomer};
use crate::models::{ArchiveResponse, Customer, Page};
use crate::Error;
use std::sync::Arc;

/// A blocking Kelviq client. Do not use it from inside an async runtime.
#[derive(Debug, Clone)]
pub struct Kelviq {
    inner: crate::Kelviq,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Kelviq {
    pub(crate) fn new(inner: crate::Kelviq) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(crate::ErrorKind::Api, None, format!("cannot start runtime: {e}"), None))?;
        Ok(Self { inner, rt: Arc::new(rt) })
    }

    pub fn customers(&self) -> Customers<'_> {
        Customers { client: self }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

pub struct Customers<'a> {
    client: &'a Kelviq,
}

impl Customers<'_> {
    pub fn list(&self, params: ListCustomers) -> Result<Page<Customer>, Error> {
        self.client.block_on(self.client.inner.customers().list(params))
    }
    pub fn create(&self, customer: CreateCustomer) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().create(customer))
    }
    pub fn retrieve(&self, customer_id: &str) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().retrieve(customer_id))
    }
    pub fn update(&self, customer_id: &str, changes: UpdateCustomer) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().update(customer_id, changes))
    }
    pub fn archive(&self, customer_id: &str) -> Result<ArchiveResponse, Error> {
        self.client.block_on(self.client.inner.customers().archive(customer_id))
    }
}
