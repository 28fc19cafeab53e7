//! The customer portal: a merchant's server asks for a session for one
//! customer (`POST /portal/session/`) and sends the customer to the signed
//! link `{customerPortalUrl}?token=…`. The token (`cpt-<uuid>:<uuid>`, 244
//! random bits) is kept only as its SHA-256, is one customer's, and expires
//! (`portal_session_minutes`, default 60). Opening the link moves the token
//! into an HttpOnly cookie scoped to the portal's path, and every page and
//! action checks it. Every action goes through the same services as the API.

pub mod account;
pub mod change_page;
pub mod changes;
pub mod pages;
pub mod signin;

use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use kelviq_core::Tenant;

/// What `POST /portal/session/` answers.
pub struct NewSession {
    pub token: String,
    pub email: String,
    pub url: String,
}

pub fn token_hash(token: &str) -> String {
    kelviq_core::keys::hash(token.trim())
}

/// The form token of a session: forms carry it, so that no other site can
/// post them with the customer's cookie.
pub fn form_token(token: &str) -> String {
    kelviq_core::keys::hash(&format!("kelviq-portal-form:{token}"))[..32].to_string()
}

/// Opens a session for a customer with an e-mail address.
pub async fn create_session(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    base: &str,
) -> ServiceResult<NewSession> {
    let now = tenant_now(state, tenant).await?;
    let customer = state
        .store
        .find_customer(tenant, customer_id)
        .await?
        .ok_or_else(|| ServiceError::field("customer_id", "Invalid customer id"))?;
    let email = customer
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ServiceError::field("customer_id", "Customer does not have an email"))?;
    let org = state
        .store
        .find_organization(tenant.org_id)
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("organisation {} is gone", tenant.org_id)))?;
    let token = open_session(state, tenant, &customer.customer_id, now).await?;
    let base = state.config.public_url.as_deref().unwrap_or(base).trim_end_matches('/').to_string();
    Ok(NewSession { token, email, url: format!("{base}/portal/{}/", org.slug) })
}

/// A new session for a customer: its token.
pub async fn open_session(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    now: DateTime<Utc>,
) -> ServiceResult<String> {
    let token = format!("cpt-{}:{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let expires = now + Duration::minutes(i64::from(state.config.portal_session_minutes.max(1)));
    state.store.insert_portal_session(tenant, &token_hash(&token), customer_id, expires, now).await?;
    Ok(token)
}

/// Whose portal a token opens.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub tenant: Tenant,
    pub customer_id: String,
    pub slug: String,
    pub org_name: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The environment's storefront settings.
    pub settings: kelviq_core::storefront::StorefrontSettings,
}

impl Viewer {
    /// The seller's look.
    pub fn brand(&self) -> crate::storefront::look::Brand {
        crate::storefront::look::Brand::of(&self.org_name, &self.settings, self.tenant.env)
    }

    /// A portal page in the seller's look.
    pub fn page(&self, title: &str, body: &str) -> String {
        crate::storefront::look::page(title, Some(&self.brand()), crate::storefront::look::Layout::Narrow, body)
    }
}

/// Why a portal page is refused.
#[derive(Debug)]
pub enum Denied {
    /// No organisation of that slug: 404.
    NoPortal,
    /// No token, or an unknown or expired one: 401.
    SignedOut,
    Service(ServiceError),
}

impl From<ServiceError> for Denied {
    fn from(e: ServiceError) -> Self {
        Denied::Service(e)
    }
}

impl From<kelviq_store::StoreError> for Denied {
    fn from(e: kelviq_store::StoreError) -> Self {
        Denied::Service(e.into())
    }
}

/// The viewer of a token in the portal of organisation `slug`.
pub async fn viewer(state: &AppState, slug: &str, token: Option<&str>) -> Result<Viewer, Denied> {
    let org = state.store.find_organization_by_slug(slug).await?.ok_or(Denied::NoPortal)?;
    let token = token.map(str::trim).filter(|t| t.starts_with("cpt-") && t.len() <= 100).ok_or(Denied::SignedOut)?;
    let session = state.store.find_portal_session(org.id, &token_hash(token)).await?.ok_or(Denied::SignedOut)?;
    let tenant = Tenant { org_id: org.id, org_seq: org.seq, env: session.env };
    let now = tenant_now(state, &tenant).await?;
    if now >= session.expires_at {
        return Err(Denied::SignedOut);
    }
    let settings = crate::storefront::get(state, &tenant).await?;
    Ok(Viewer {
        tenant,
        customer_id: session.customer_id,
        slug: org.slug,
        org_name: org.name,
        token: token.to_string(),
        expires_at: session.expires_at,
        now,
        settings,
    })
}
