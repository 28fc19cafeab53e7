//! The customer portal: a session for one customer, whose signed link
//! (`{customer_portal_url}?token={token}`) opens their portal.

use crate::http::{decode, Host, Http};
use crate::Error;
use reqwest::Method;
use serde::Deserialize;
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

pub struct Portal<'a> {
    http: &'a Http,
}

impl<'a> Portal<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// Opens a session for a customer with an e-mail address (server key).
    pub async fn create_session(&self, customer_id: &str) -> Result<PortalSession, Error> {
        let url = self.http.url(Host::Core, &["portal", "session"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&json!({ "customerId": customer_id }))).await?)
    }
}
