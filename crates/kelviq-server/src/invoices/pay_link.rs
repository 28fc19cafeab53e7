//! An unpaid invoice's payment link (the `payment_link` of
//! `invoice.payment_failed`, the portal's "Pay now"): a hosted page where
//! the customer pays it, completing 3-D Secure when the bank asks. The
//! link names its organisation and environment and carries an HMAC of
//! them and the invoice id under a key derived from the server's secret
//! key, so it is unguessable, checked in constant time, and useless for
//! any other invoice.

use crate::state::AppState;
use kelviq_core::signing::{sign, verify};
use kelviq_core::Tenant;

fn message(tenant: &Tenant, invoice_id: &str) -> String {
    format!("{}:{}:{invoice_id}", tenant.org_id, tenant.env.as_str())
}

fn key(state: &AppState) -> [u8; 32] {
    state.webhooks.key.derive("invoice payment links")
}

/// The link's token for an invoice.
pub fn token(state: &AppState, tenant: &Tenant, invoice_id: &str) -> String {
    sign(&key(state), message(tenant, invoice_id).as_bytes())
}

/// Whether `token` is the invoice's.
pub fn check(state: &AppState, tenant: &Tenant, invoice_id: &str, token: &str) -> bool {
    verify(&key(state), message(tenant, invoice_id).as_bytes(), token)
}

/// The query that opens the page (after `/invoices/{id}/pay/`).
pub fn query(state: &AppState, tenant: &Tenant, invoice_id: &str) -> String {
    format!("org={}&env={}&token={}", tenant.org_id, tenant.env.as_str(), token(state, tenant, invoice_id))
}

/// The whole link, on the server's public URL (a path when none is set).
pub fn url(state: &AppState, tenant: &Tenant, invoice_id: &str) -> String {
    let base = state.config.public_url.clone().unwrap_or_default();
    format!("{}/invoices/{invoice_id}/pay/?{}", base.trim_end_matches('/'), query(state, tenant, invoice_id))
}
