//! The customer portal: a session for one customer, whose signed link
//! (`{customer_portal_url}?token={token}`) opens their portal; and the
//! environment's storefront settings, which govern the portal (plan
//! changes, quantities, cancellation, usage) and the look of the hosted
//! pages (seller name, logo, brand colour, support and legal links).

use crate::http::{decode, Host, Http};
use crate::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortalSession {
    /// `cpt-<uuid>:<uuid>`: opaque, one customer's, expires.
    pub token: String,
    pub email: String,
    pub customer_portal_url: String,
}

impl PortalSession {
    /// The link to send the customer to.
    pub fn link(&self) -> String {
        format!("{}?token={}", self.customer_portal_url, self.token)
    }
}

/// An environment's storefront settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontSettings {
    pub allow_plan_changes: bool,
    /// Plan identifiers customers may change to; None: the published plans of the subscription's product.
    pub allowed_plans: Option<Vec<String>>,
    pub allow_quantity_changes: bool,
    /// `AT_PERIOD_END`, `IMMEDIATELY` or `DISABLED`.
    pub cancellation_mode: String,
    pub show_usage: bool,
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    pub brand_color: Option<String>,
    pub support_email: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
}

/// The settings to change: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontSettingsParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plan_changes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_plans: Option<Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_quantity_changes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_usage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Option<String>>,
    /// The file key of an image uploaded through `/media/`; `Some(None)` removes the logo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_email: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_url: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy_url: Option<Option<String>>,
}

pub struct Portal<'a> {
    http: &'a Http,
}

impl<'a> Portal<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// The environment's storefront settings (server key).
    pub async fn settings(&self) -> Result<StorefrontSettings, Error> {
        let url = self.http.url(Host::Core, &["storefront-settings"], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }

    /// Changes the environment's storefront settings (server key).
    pub async fn update_settings(&self, changes: StorefrontSettingsParams) -> Result<StorefrontSettings, Error> {
        let url = self.http.url(Host::Core, &["storefront-settings"], true);
        let body = serde_json::to_value(&changes).expect("params serialise");
        decode(self.http.request(Method::PATCH, url, &[], Some(&body)).await?)
    }

    /// Opens a session for a customer with an e-mail address (server key).
    pub async fn create_session(&self, customer_id: &str) -> Result<PortalSession, Error> {
        let url = self.http.url(Host::Core, &["portal", "session"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&json!({ "customerId": customer_id }))).await?)
    }
}
