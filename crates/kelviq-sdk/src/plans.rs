//! Plans: versions, publishing, prices and plan entitlements.

use crate::catalog::ListCatalog;
use crate::http::{decode, Host, Http};
use crate::models::{Page, Plan, PlanFeature, PlanPrice};
use crate::Error;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A new plan: `name` and `product` (UUID or identifier) are required.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePlan {
    pub name: String,
    pub product: String,
    /// Identifier of a plan to inherit features from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlan {
    /// `Some(None)` stops inheriting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering: Option<i64>,
}

pub struct Plans<'a> {
    http: &'a Http,
}

fn version_query(version: Option<i64>) -> Vec<(&'static str, String)> {
    version.map(|v| vec![("version", v.to_string())]).unwrap_or_default()
}

impl<'a> Plans<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, identifier: &str, rest: &[&str]) -> url::Url {
        let mut segments = vec!["catalog", "plans", identifier];
        segments.extend_from_slice(rest);
        self.http.url(Host::Core, &segments, true)
    }

    /// The newest version of each plan.
    pub async fn list(&self, params: ListCatalog) -> Result<Page<Plan>, Error> {
        let mut query = Vec::new();
        if let Some(p) = params.page {
            query.push(("page", p.to_string()));
        }
        if let Some(s) = params.page_size {
            query.push(("page_size", s.to_string()));
        }
        let url = self.http.url(Host::Core, &["catalog", "plans"], true);
        decode(self.http.request(Method::GET, url, &query, None).await?)
    }

    /// Creates version 1 as a draft.
    pub async fn create(&self, plan: CreatePlan) -> Result<Plan, Error> {
        let url = self.http.url(Host::Core, &["catalog", "plans"], true);
        let body = serde_json::to_value(&plan).expect("plan serialises");
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    /// A given version, or the newest.
    pub async fn retrieve(&self, identifier: &str, version: Option<i64>) -> Result<Plan, Error> {
        decode(self.http.request(Method::GET, self.url(identifier, &[]), &version_query(version), None).await?)
    }

    /// Edits the draft (a new draft when the newest version is published).
    pub async fn update(&self, identifier: &str, changes: UpdatePlan) -> Result<Plan, Error> {
        let body = serde_json::to_value(&changes).expect("changes serialise");
        decode(self.http.request(Method::PATCH, self.url(identifier, &[]), &[], Some(&body)).await?)
    }

    /// Archives every version.
    pub async fn archive(&self, identifier: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(identifier, &[]), &[], None).await.map(|_| ())
    }

    /// Publishes the newest draft; returns the published version number.
    pub async fn publish(&self, identifier: &str, update_features: bool, update_pricing: bool) -> Result<i64, Error> {
        let body = json!({"updateFeatures": update_features, "updatePricing": update_pricing});
        let out = self.http.request(Method::POST, self.url(identifier, &["publish"]), &[], Some(&body)).await?;
        Ok(out.get("version").and_then(Value::as_i64).unwrap_or_default())
    }

    /// Deletes the newest version if it is an unpublished draft.
    pub async fn discard(&self, identifier: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(identifier, &["discard"]), &[], None).await.map(|_| ())
    }

    pub async fn prices(&self, identifier: &str, version: Option<i64>) -> Result<Page<PlanPrice>, Error> {
        decode(self.http.request(Method::GET, self.url(identifier, &["prices"]), &version_query(version), None).await?)
    }

    /// Replaces all prices at once. Each price is the API's `PlanPrice` shape.
    pub async fn replace_prices(&self, identifier: &str, prices: Vec<Value>) -> Result<Vec<PlanPrice>, Error> {
        let body = json!({ "prices": prices });
        let out = self.http.request(Method::POST, self.url(identifier, &["prices", "bulk"]), &[], Some(&body)).await?;
        decode(out.get("prices").cloned().unwrap_or_else(|| json!([])))
    }

    pub async fn features(&self, identifier: &str, version: Option<i64>) -> Result<Page<PlanFeature>, Error> {
        decode(
            self.http.request(Method::GET, self.url(identifier, &["features"]), &version_query(version), None).await?,
        )
    }

    /// Grants features: `(feature UUID or identifier, details)` pairs.
    pub async fn add_features(&self, identifier: &str, features: Vec<(String, Value)>) -> Result<Plan, Error> {
        let items: Vec<Value> = features.into_iter().map(|(f, d)| json!({"feature": f, "details": d})).collect();
        let body = json!({ "planEntitlements": items });
        decode(self.http.request(Method::POST, self.url(identifier, &["features"]), &[], Some(&body)).await?)
    }

    pub async fn update_feature(&self, identifier: &str, feature: &str, details: Value) -> Result<PlanFeature, Error> {
        let body = json!({ "details": details });
        decode(self.http.request(Method::PATCH, self.url(identifier, &["features", feature]), &[], Some(&body)).await?)
    }

    pub async fn remove_feature(&self, identifier: &str, feature: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(identifier, &["features", feature]), &[], None).await.map(|_| ())
    }
}
