//! Discount codes on a self-hosted kelviq server: made, listed, changed and
//! deleted (server key); a checkout redeems one by `discount_code`.

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// An amount of one currency, in major units (`5.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrencyAmount {
    pub currency: String,
    /// Sent as a decimal string so that it arrives exactly.
    #[serde(with = "amount_text")]
    pub amount: String,
}

mod amount_text {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

impl CurrencyAmount {
    pub fn new(currency: impl Into<String>, amount: impl Into<String>) -> Self {
        CurrencyAmount { currency: currency.into(), amount: amount.into() }
    }
}

/// A discount code.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discount {
    pub id: String,
    pub code: String,
    pub name: String,
    /// PERCENTAGE or FIXED.
    pub discount_type: String,
    pub percentage: Option<f64>,
    pub amounts: Vec<CurrencyAmount>,
    /// ONCE, REPEATING or FOREVER.
    pub duration: String,
    pub duration_in_cycles: Option<u32>,
    pub max_redemptions: Option<u32>,
    pub max_redemptions_per_customer: Option<u32>,
    pub times_redeemed: i64,
    pub starts_at: Option<String>,
    pub expires_at: Option<String>,
    pub products: Vec<String>,
    pub plans: Vec<String>,
    pub first_purchase_only: bool,
    pub minimum_amount: Option<CurrencyAmount>,
    pub countries: Vec<String>,
    pub promotion_id: Option<String>,
    /// ACTIVE or EXPIRED.
    pub status: String,
    pub created_on: String,
    pub modified_on: String,
}

/// A new code, or for [`Discounts::update`] the fields to change
/// (`Some(None)`: cleared).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_type: Option<String>,
    /// Percent off as a decimal string (`"12.5"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Vec<CurrencyAmount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_in_cycles: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_redemptions: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_redemptions_per_customer: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_purchase_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_amount: Option<Option<CurrencyAmount>>,
}

impl DiscountParams {
    /// `percentage` percent off (a decimal string), once.
    pub fn percentage(code: impl Into<String>, percentage: impl Into<String>) -> Self {
        DiscountParams {
            code: Some(code.into()),
            discount_type: Some("PERCENTAGE".into()),
            percentage: Some(percentage.into()),
            ..Default::default()
        }
    }

    /// A fixed amount off, once.
    pub fn fixed(code: impl Into<String>, amounts: Vec<CurrencyAmount>) -> Self {
        DiscountParams {
            code: Some(code.into()),
            discount_type: Some("FIXED".into()),
            amounts: Some(amounts),
            ..Default::default()
        }
    }

    /// For the first `cycles` invoices (REPEATING).
    pub fn repeating(mut self, cycles: u32) -> Self {
        self.duration = Some("REPEATING".into());
        self.duration_in_cycles = Some(Some(cycles));
        self
    }

    /// For every invoice (FOREVER).
    pub fn forever(mut self) -> Self {
        self.duration = Some("FOREVER".into());
        self
    }
}

pub struct Discounts<'a> {
    http: &'a Http,
}

impl<'a> Discounts<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    pub async fn create(&self, params: DiscountParams) -> Result<Discount, Error> {
        let body = serde_json::to_value(&params).expect("params serialise");
        decode(self.http.request(Method::POST, self.url(&["discounts"]), &[], Some(&body)).await?)
    }

    /// A page of the codes, oldest first.
    pub async fn list(&self, page: Option<u32>) -> Result<Page<Discount>, Error> {
        let query: Vec<(&str, String)> = page.map(|p| ("page", p.to_string())).into_iter().collect();
        decode(self.http.request(Method::GET, self.url(&["discounts"]), &query, None).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<Discount, Error> {
        decode(self.http.request(Method::GET, self.url(&["discounts", id]), &[], None).await?)
    }

    pub async fn update(&self, id: &str, changes: DiscountParams) -> Result<Discount, Error> {
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, self.url(&["discounts", id]), &[], Some(&body)).await?)
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(&["discounts", id]), &[], None).await?;
        Ok(())
    }
}
