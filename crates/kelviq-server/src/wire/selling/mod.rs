//! How selling records look on the wire (camelCase, spec §1.2, §1.5, §1.6):
//! one typed struct per record, each with its OpenAPI schema, built by a
//! [`Renderer`] that loads what they name (products, plans, customers) once
//! per request.

mod answers;
mod orders;
mod session;
mod subscription;

pub use answers::*;
pub use orders::*;
pub use session::*;
pub use subscription::*;

use crate::error::ServiceResult;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::LogEntry;
use kelviq_core::customer::Customer;
use kelviq_core::plans::PlanVersion;
use kelviq_core::timefmt::{date, iso_seconds};
use kelviq_core::Tenant;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;

fn time_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(iso_seconds)
}

fn date_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| date(t.date_naive()))
}

/// A product as a record names it, archived or not (a product since
/// deleted keeps its id, with `identifier` and `name` null).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductRef {
    pub id: String,
    pub identifier: Option<String>,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Loads what rendering selling records needs, once per request.
pub struct Renderer<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub now: DateTime<Utc>,
    features: Option<HashMap<uuid::Uuid, kelviq_core::catalog::Feature>>,
    plans: HashMap<uuid::Uuid, Option<PlanVersion>>,
    products: HashMap<uuid::Uuid, ProductRef>,
    customers: HashMap<String, Option<Customer>>,
    /// The server's address for links (signed file downloads).
    base: String,
}

impl<'a> Renderer<'a> {
    /// Links in what is rendered start with `base` (the request's address).
    pub fn with_base(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self
    }

    pub fn new(state: &'a AppState, tenant: &'a Tenant, now: DateTime<Utc>) -> Self {
        Renderer {
            state,
            tenant,
            now,
            features: None,
            plans: HashMap::new(),
            products: HashMap::new(),
            customers: HashMap::new(),
            base: state.config.public_url.clone().unwrap_or_default().trim_end_matches('/').to_string(),
        }
    }

    pub async fn plan(&mut self, id: uuid::Uuid) -> ServiceResult<Option<PlanVersion>> {
        if !self.plans.contains_key(&id) {
            let p = self.state.store.find_plan_version(self.tenant, id).await?;
            self.plans.insert(id, p);
        }
        Ok(self.plans[&id].clone())
    }

    /// `{id, identifier, name, description}` of a product, archived or not.
    pub async fn product(&mut self, id: uuid::Uuid) -> ServiceResult<ProductRef> {
        if !self.products.contains_key(&id) {
            let p = self.state.store.find_product_any(self.tenant, &id.to_string()).await?;
            let r = match p {
                Some(p) => ProductRef {
                    id: p.id.to_string(),
                    identifier: Some(p.identifier),
                    name: Some(p.name),
                    description: Some(p.description),
                },
                None => ProductRef { id: id.to_string(), identifier: None, name: None, description: None },
            };
            self.products.insert(id, r);
        }
        Ok(self.products[&id].clone())
    }

    pub async fn customer(&mut self, customer_id: &str) -> ServiceResult<Option<Customer>> {
        if !self.customers.contains_key(customer_id) {
            let c = self.state.store.find_customer_any(self.tenant, customer_id).await?;
            self.customers.insert(customer_id.to_string(), c);
        }
        Ok(self.customers[customer_id].clone())
    }
}

/// An entry of a session's or an order's event log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogEntryOut {
    pub id: i64,
    pub title: String,
    pub code: String,
    pub status: String,
    pub timestamp: String,
    pub metadata: Value,
    /// The order's events only: the order's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

impl LogEntryOut {
    pub fn new(e: &LogEntry, order: Option<&str>) -> Self {
        LogEntryOut {
            id: e.id,
            title: e.title.clone(),
            code: e.code.clone(),
            status: e.status.clone(),
            timestamp: iso_seconds(e.at),
            metadata: e.metadata.clone(),
            order: order.map(str::to_string),
        }
    }
}

/// Log entries as the events endpoints list them (newest first).
pub fn log_entries(log: &[LogEntry], order: Option<&str>) -> Vec<LogEntryOut> {
    log.iter().rev().map(|e| LogEntryOut::new(e, order)).collect()
}
