//! Purchasing-power-parity promotions on a self-hosted kelviq server: made
//! and managed with a server key; [`Promotions::get`] is the edge answer a
//! page asks for with a client key.

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// A promotion's banner (`type` BANNER).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlight_font_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub border_radius: Option<String>,
    /// top or bottom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub un_styled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_close_icon: Option<bool>,
    /// With `{country}`, `{country_flag}`, `{coupon_code}`, `{discount_percentage}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_message: Option<String>,
}

/// What the security checks found of a visitor (`true`: flagged).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Security {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
}

/// The edge answer: the promotion for the visitor's country.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionResponse {
    pub country: String,
    pub country_code: String,
    /// 0: no discount for this visitor.
    pub percentage: f64,
    pub code: String,
    pub message: String,
    pub widgets: Vec<Widget>,
    pub security: Security,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPercentage {
    pub group: String,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountryPercentage {
    pub country_code: String,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coupon {
    pub country_code: String,
    pub code: String,
    pub percentage: f64,
}

/// A promotion.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub id: String,
    pub name: String,
    pub products: Vec<String>,
    pub plans: Vec<String>,
    pub group_percentages: Vec<GroupPercentage>,
    pub country_overrides: Vec<CountryPercentage>,
    pub widgets: Vec<Widget>,
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
    pub strict_country: bool,
    pub coupon_codes: Vec<Coupon>,
    pub created_on: String,
    pub modified_on: String,
}

/// A new promotion (or, for [`Promotions::update`], a new name or banner).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_percentages: Option<Vec<GroupPercentage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_overrides: Option<Vec<CountryPercentage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub widgets: Option<Vec<Widget>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tor: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crawler: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_country: Option<bool>,
}

/// A group of countries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CountryGroup {
    pub group: String,
    pub countries: Vec<String>,
}

pub struct Promotions<'a> {
    http: &'a Http,
}

impl<'a> Promotions<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    /// The promotion for the caller's location (a client key will do).
    pub async fn get(&self, promotion_id: &str) -> Result<PromotionResponse, Error> {
        let url = self.http.url(Host::Edge, &["promotions"], false);
        decode(self.http.request(Method::GET, url, &[("promotion_id", promotion_id.to_string())], None).await?)
    }

    pub async fn create(&self, params: PromotionParams) -> Result<Promotion, Error> {
        let body = serde_json::to_value(&params).expect("params serialise");
        decode(self.http.request(Method::POST, self.url(&["promotions"]), &[], Some(&body)).await?)
    }

    pub async fn list(&self, page: Option<u32>) -> Result<Page<Promotion>, Error> {
        let query: Vec<(&str, String)> = page.map(|p| ("page", p.to_string())).into_iter().collect();
        decode(self.http.request(Method::GET, self.url(&["promotions"]), &query, None).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<Promotion, Error> {
        decode(self.http.request(Method::GET, self.url(&["promotions", id]), &[], None).await?)
    }

    /// A new name or banner (what a promotion targets cannot change).
    pub async fn update(&self, id: &str, changes: PromotionParams) -> Result<Promotion, Error> {
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, self.url(&["promotions", id]), &[], Some(&body)).await?)
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(&["promotions", id]), &[], None).await?;
        Ok(())
    }

    /// The country groups, highest income first.
    pub async fn country_groups(&self) -> Result<Page<CountryGroup>, Error> {
        decode(self.http.request(Method::GET, self.url(&["promotions", "country-groups"]), &[], None).await?)
    }

    pub async fn update_country_group(&self, group: &str, countries: Vec<String>) -> Result<CountryGroup, Error> {
        let body = serde_json::json!({ "countries": countries });
        let url = self.url(&["promotions", "country-groups", group]);
        decode(self.http.request(Method::PATCH, url, &[], Some(&body)).await?)
    }
}
