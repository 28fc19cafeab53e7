//! Customers: list, create, retrieve, update, archive.

use crate::http::{decode, Host, Http};
use crate::models::{ArchiveResponse, BillingAddress, Customer, Page};
use crate::Error;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Parameters of [`Customers::list`].
#[derive(Debug, Clone, Default)]
pub struct ListCustomers {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Substring of name, email or customer id.
    pub search: Option<String>,
}

/// A new customer. `customer_id` is required and must not be empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateCustomer {
    pub customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<BillingAddress>,
}

impl CreateCustomer {
    pub fn new(customer_id: impl Into<String>) -> Self {
        Self { customer_id: customer_id.into(), ..Default::default() }
    }
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }
    pub fn billing_address(mut self, address: BillingAddress) -> Self {
        self.billing_address = Some(address);
        self
    }
}

/// A partial update: at least one field must be set. `metadata` replaces.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateCustomer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<BillingAddress>,
}

pub struct Customers<'a> {
    http: &'a Http,
}

fn validation(field: &str, message: &str) -> Error {
    Error::invalid_request(
        format!("Invalid parameters: {field} {message}"),
        Some(json!([{ "loc": [field], "msg": message, "type": "value_error" }])),
    )
}

impl<'a> Customers<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `GET /customers/`: newest first.
    pub async fn list(&self, params: ListCustomers) -> Result<Page<Customer>, Error> {
        let mut query = Vec::new();
        if let Some(p) = params.page {
            query.push(("page", p.to_string()));
        }
        if let Some(s) = params.page_size {
            query.push(("page_size", s.to_string()));
        }
        if let Some(s) = params.search {
            query.push(("search", s));
        }
        let url = self.http.url(Host::Core, &["customers"], true);
        decode(self.http.request(Method::GET, url, &query, None).await?)
    }

    /// `POST /customers/`.
    pub async fn create(&self, customer: CreateCustomer) -> Result<Customer, Error> {
        if customer.customer_id.is_empty() {
            return Err(validation("customerId", "String should have at least 1 character"));
        }
        let body = serde_json::to_value(&customer).expect("customer serialises");
        let url = self.http.url(Host::Core, &["customers"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    /// `GET /customers/{customerId}/`.
    pub async fn retrieve(&self, customer_id: &str) -> Result<Customer, Error> {
        let url = self.http.url(Host::Core, &["customers", customer_id], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }

    /// `PATCH /customers/{customerId}/`. An empty update is refused before sending.
    pub async fn update(&self, customer_id: &str, changes: UpdateCustomer) -> Result<Customer, Error> {
        let body = serde_json::to_value(&changes).expect("changes serialise");
        if body.as_object().is_none_or(Map::is_empty) {
            return Err(Error::invalid_request(
                "Update payload cannot be empty for PATCH request. At least one field to update must be provided.",
                None,
            ));
        }
        let url = self.http.url(Host::Core, &["customers", customer_id], true);
        decode(self.http.request(Method::PATCH, url, &[], Some(&body)).await?)
    }

    /// `DELETE /customers/{customerId}/`: archives (soft-deletes) the customer.
    pub async fn archive(&self, customer_id: &str) -> Result<ArchiveResponse, Error> {
        let url = self.http.url(Host::Core, &["customers", customer_id], true);
        let body = self.http.request(Method::DELETE, url, &[], None).await?;
        match body.get("message").and_then(Value::as_str) {
            Some(m) => Ok(ArchiveResponse { message: m.to_string() }),
            None => Ok(ArchiveResponse { message: "Customer archived successfully.".into() }),
        }
    }
}
