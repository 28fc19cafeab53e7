//! Tax rates of an environment on a self-hosted kelviq server: a
//! percentage for a country or one of its regions.

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// A tax rate. `percentage` is in percent (`8.875`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxRate {
    pub id: String,
    pub name: String,
    pub country: String,
    /// None: the whole country.
    pub region: Option<String>,
    pub percentage: f64,
    pub created_on: String,
    pub modified_on: String,
}

/// A new rate (name, country and percentage required) or, for
/// [`TaxRates::update`], the fields to change. The percentage is sent as
/// a decimal string so that it arrives exactly (`"8.875"`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaxRateParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `Some(None)`: the whole country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<String>,
}

impl TaxRateParams {
    pub fn new(name: impl Into<String>, country: impl Into<String>, percentage: impl Into<String>) -> Self {
        TaxRateParams {
            name: Some(name.into()),
            country: Some(country.into()),
            region: None,
            percentage: Some(percentage.into()),
        }
    }
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(Some(region.into()));
        self
    }
}

/// An environment's tax settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxSettings {
    /// `EXCLUSIVE` or `INCLUSIVE` for prices that leave it UNSPECIFIED;
    /// None: the server's default.
    pub default_tax_behavior: Option<String>,
    /// Business buyers with a tax id of their country's format pay no tax.
    pub reverse_charge: bool,
    /// The merchant's own country: its buyers are never reverse charged.
    pub origin_country: Option<String>,
}

/// The settings to change (`Some(None)`: cleared).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxSettingsParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_tax_behavior: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_charge: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_country: Option<Option<String>>,
}

pub struct TaxRates<'a> {
    http: &'a Http,
}

impl<'a> TaxRates<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    pub async fn create(&self, params: TaxRateParams) -> Result<TaxRate, Error> {
        let body = serde_json::to_value(&params).expect("params serialise");
        decode(self.http.request(Method::POST, self.url(&["tax-rates"]), &[], Some(&body)).await?)
    }

    /// A page of the rates, oldest first, optionally of one country.
    pub async fn list(&self, country: Option<&str>, page: Option<u32>) -> Result<Page<TaxRate>, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(c) = country {
            query.push(("country", c.to_string()));
        }
        if let Some(p) = page {
            query.push(("page", p.to_string()));
        }
        decode(self.http.request(Method::GET, self.url(&["tax-rates"]), &query, None).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<TaxRate, Error> {
        decode(self.http.request(Method::GET, self.url(&["tax-rates", id]), &[], None).await?)
    }

    pub async fn update(&self, id: &str, changes: TaxRateParams) -> Result<TaxRate, Error> {
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, self.url(&["tax-rates", id]), &[], Some(&body)).await?)
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.http.request(Method::DELETE, self.url(&["tax-rates", id]), &[], None).await?;
        Ok(())
    }

    /// The environment's tax settings.
    pub async fn settings(&self) -> Result<TaxSettings, Error> {
        decode(self.http.request(Method::GET, self.url(&["tax-settings"]), &[], None).await?)
    }

    /// Changes the environment's tax settings.
    pub async fn update_settings(&self, changes: TaxSettingsParams) -> Result<TaxSettings, Error> {
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, self.url(&["tax-settings"]), &[], Some(&body)).await?)
    }
}
