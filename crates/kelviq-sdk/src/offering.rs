//! A product's offering: what a pricing page renders (server or client key).

use crate::http::{decode, Host, Http};
use crate::Error;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

/// A plan as offered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedPlan {
    pub name: String,
    pub description: String,
    pub identifier: String,
    pub is_visible: bool,
    pub metadata: Value,
    pub base_plan: Option<String>,
    /// `{id, priceType, freeTrial, trialPeriod, currency, enabled, charges[…]}`.
    pub price: Option<Value>,
    /// The plan's price per charge period (`{"MONTHLY": 19.0}`).
    pub original_price: std::collections::BTreeMap<String, f64>,
    pub features: Vec<Value>,
    pub should_highlight: bool,
    pub enabled: bool,
    pub display_name: String,
    pub display_description: String,
    pub includes: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferingSubscription {
    pub has_previous_subscription: bool,
    pub plan_identifier: Option<String>,
    pub subscription_id: Option<String>,
    pub charge_period: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingPeriod {
    pub enabled: bool,
    pub display_name: String,
    pub charge_period: String,
    pub promo_caption: String,
}

/// `GET /monetization/product-offering/{product_id}/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductOffering {
    pub organization_id: i64,
    pub country_code: Option<String>,
    pub pricing_locale: String,
    pub currency_code: String,
    pub currency_symbol: String,
    pub currency_conversion_rate: f64,
    pub base_currency_code: String,
    pub base_currency_symbol: String,
    pub plans: Vec<OfferedPlan>,
    pub subscription: OfferingSubscription,
    pub is_customer_exists: bool,
    pub billing_periods: Vec<BillingPeriod>,
}

/// What to ask for.
#[derive(Debug, Clone, Default)]
pub struct OfferingParams {
    pub customer_id: Option<String>,
    /// Only these plans.
    pub plans_enabled: Vec<String>,
    /// The buyer's address (honoured with a server key).
    pub ip_address: Option<String>,
}

pub struct Offering<'a> {
    http: &'a Http,
}

impl<'a> Offering<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    pub async fn get(&self, product_id: &str, params: OfferingParams) -> Result<ProductOffering, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(c) = params.customer_id {
            query.push(("customer_id", c));
        }
        if !params.plans_enabled.is_empty() {
            query.push(("plans_enabled", params.plans_enabled.join(",")));
        }
        if let Some(ip) = params.ip_address {
            query.push(("ip_address", ip));
        }
        let url = self.http.url(Host::Core, &["monetization", "product-offering", product_id], true);
        decode(self.http.request(Method::GET, url, &query, None).await?)
    }
}
