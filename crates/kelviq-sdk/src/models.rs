//! Response models. Field names follow the API's camelCase; the snake_case
//! spellings are accepted too, as the Python SDK does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A DRF page: `count`, absolute `next`/`previous` URLs, and `results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub count: u64,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    pub results: Vec<T>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, alias = "postal_code", skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The buyer's tax id (a VAT number), checked against the country's format.
    #[serde(default, alias = "tax_id", skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Server id (UUID).
    pub id: String,
    #[serde(alias = "customer_id")]
    pub customer_id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default, alias = "billing_address")]
    pub billing_address: Option<BillingAddress>,
    #[serde(alias = "created_on")]
    pub created_on: DateTime<Utc>,
    #[serde(alias = "modified_on")]
    pub modified_on: DateTime<Utc>,
}

/// What archiving answers (the server sends 204; the SDK fills in the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveResponse {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductImage {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub image: String,
    #[serde(default)]
    pub ordering: i64,
    #[serde(default)]
    pub thumbnail: bool,
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: String,
    pub identifier: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub tax_code: String,
    #[serde(default)]
    pub created_by: Option<String>,
    pub modified_on: DateTime<Utc>,
    #[serde(default)]
    pub images: Vec<ProductImage>,
    /// Identifiers of published plans; only on retrieve.
    #[serde(default)]
    pub plans: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSettings {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub currency: String,
    #[serde(default)]
    pub product_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    pub id: String,
    pub identifier: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `BOOLEAN`, `CUSTOMIZABLE` or `METER`.
    pub feature_type: String,
    #[serde(default)]
    pub feature_details: Value,
    #[serde(default)]
    pub meter: Value,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub is_archived: bool,
    pub modified_on: DateTime<Utc>,
}

/// One version of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub identifier: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// UUID of the product.
    pub product: String,
    /// The plan this one inherits features from.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    pub version: i64,
    /// True only for the published version.
    pub is_latest: bool,
    /// `draft`, `published` or `superseded`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_visible: bool,
    #[serde(default)]
    pub license: Option<Value>,
    #[serde(default)]
    pub links: Vec<Value>,
    #[serde(default)]
    pub ordering: Option<i64>,
    pub created_on: DateTime<Utc>,
    pub modified_on: DateTime<Utc>,
}

/// A plan price in one currency, with its charges (amounts in major units, as the API shows them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanPrice {
    pub id: String,
    pub price_type: String,
    pub currency: String,
    #[serde(default)]
    pub free_trial: bool,
    #[serde(default)]
    pub trial_period: i64,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub tax_behavior: Option<String>,
    #[serde(default)]
    pub charge_catalog_price: Vec<Value>,
}

/// A feature granted by a plan, with its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFeature {
    pub feature: Feature,
    pub details: Value,
}
