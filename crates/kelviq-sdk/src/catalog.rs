//! The product catalog: products (with settings) and features.

use crate::http::{decode, Host, Http};
use crate::models::{Feature, Page, Product, ProductSettings};
use crate::Error;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value};

/// Parameters of the catalog list calls.
#[derive(Debug, Clone, Default)]
pub struct ListCatalog {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub search: Option<String>,
}

impl ListCatalog {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(p) = self.page {
            q.push(("page", p.to_string()));
        }
        if let Some(s) = self.page_size {
            q.push(("page_size", s.to_string()));
        }
        if let Some(s) = &self.search {
            q.push(("search", s.clone()));
        }
        q
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateProduct {
    pub name: String,
    pub tax_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProduct {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProductSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tor: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_url: Option<String>,
}

/// A new feature. For METER features give `feature_details`
/// (`featureSubType`, `units`) and, for RAW_EVENTS, a `meter`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateFeature {
    pub name: String,
    /// `BOOLEAN`, `CUSTOMIZABLE` or `METER`.
    pub feature_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFeature {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Entry point of the catalog module: `client.catalog().products()…`.
pub struct Catalog<'a> {
    http: &'a Http,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }
    pub fn products(&self) -> Products<'a> {
        Products { http: self.http }
    }
    pub fn features(&self) -> Features<'a> {
        Features { http: self.http }
    }
    pub fn plans(&self) -> crate::plans::Plans<'a> {
        crate::plans::Plans::new(self.http)
    }
}

fn body<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("request bodies serialise")
}

pub struct Products<'a> {
    http: &'a Http,
}

impl Products<'_> {
    pub async fn list(&self, params: ListCatalog) -> Result<Page<Product>, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }
    pub async fn create(&self, product: CreateProduct) -> Result<Product, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body(&product))).await?)
    }
    /// By UUID or identifier.
    pub async fn retrieve(&self, key: &str) -> Result<Product, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products", key], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }
    pub async fn update(&self, key: &str, changes: UpdateProduct) -> Result<Product, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products", key], true);
        decode(self.http.request(Method::PATCH, url, &[], Some(&body(&changes))).await?)
    }
    pub async fn archive(&self, key: &str) -> Result<(), Error> {
        let url = self.http.url(Host::Core, &["catalog", "products", key], true);
        self.http.request(Method::DELETE, url, &[], None).await.map(|_| ())
    }
    pub async fn settings(&self, key: &str) -> Result<ProductSettings, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products", key, "settings"], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }
    pub async fn update_settings(&self, key: &str, changes: UpdateProductSettings) -> Result<ProductSettings, Error> {
        let url = self.http.url(Host::Core, &["catalog", "products", key, "settings"], true);
        decode(self.http.request(Method::PATCH, url, &[], Some(&body(&changes))).await?)
    }
}

pub struct Features<'a> {
    http: &'a Http,
}

impl Features<'_> {
    pub async fn list(&self, params: ListCatalog) -> Result<Page<Feature>, Error> {
        let url = self.http.url(Host::Core, &["catalog", "features"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }
    pub async fn create(&self, feature: CreateFeature) -> Result<Feature, Error> {
        let url = self.http.url(Host::Core, &["catalog", "features"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body(&feature))).await?)
    }
    /// By UUID or identifier; archived features come back with `is_archived`.
    pub async fn retrieve(&self, key: &str) -> Result<Feature, Error> {
        let url = self.http.url(Host::Core, &["catalog", "features", key], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }
    pub async fn update(&self, key: &str, changes: UpdateFeature) -> Result<Feature, Error> {
        let url = self.http.url(Host::Core, &["catalog", "features", key], true);
        decode(self.http.request(Method::PATCH, url, &[], Some(&body(&changes))).await?)
    }
    pub async fn archive(&self, key: &str) -> Result<(), Error> {
        let url = self.http.url(Host::Core, &["catalog", "features", key], true);
        self.http.request(Method::DELETE, url, &[], None).await.map(|_| ())
    }
}
