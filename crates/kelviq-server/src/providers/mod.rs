//! Payment providers per organisation and environment. The sandbox
//! provider serves an environment with no provider set; Stripe is set
//! with `kelviq providers set stripe`: its secret key (a test key for the
//! sandbox, a live key for production) and its webhook signing secret,
//! both sealed at rest under the server's secret key, never logged and
//! never returned by the API.

pub mod stripe;

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::stripe::keys::check_key_for;
use kelviq_core::Tenant;
use kelviq_store::ProviderRow;

/// What may be shown of a configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    pub provider: String,
    /// The key's mode and last four characters, e.g. `sk_test_…4242`.
    pub key_hint: String,
    pub modified_at: chrono::DateTime<chrono::Utc>,
}

/// `sk_test_…wxyz`: the key's prefix up to its mode, and its last four.
fn hint(key: &str) -> String {
    let prefix: String = key.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
    let last: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{prefix}_…{last}")
}

/// Sets Stripe for an environment, checking the key's mode against it.
pub async fn set_stripe(
    state: &AppState,
    tenant: &Tenant,
    secret_key: &str,
    webhook_secret: &str,
) -> ServiceResult<ProviderInfo> {
    let (secret_key, webhook_secret) = (secret_key.trim(), webhook_secret.trim());
    check_key_for(secret_key, tenant.env).map_err(|m| {
        ServiceError::field("secret_key", format!("Refused for the {} environment: {m}.", tenant.env.as_str()))
    })?;
    if !webhook_secret.starts_with("whsec_")
        || webhook_secret.len() < 14
        || webhook_secret.chars().any(char::is_whitespace)
    {
        return Err(ServiceError::field("webhook_secret", "A Stripe webhook signing secret (whsec_…) is required."));
    }
    let now = state.clock.now();
    let created_at = state.store.payment_provider(tenant).await?.map_or(now, |p| p.created_at);
    let row = ProviderRow {
        provider: "stripe".into(),
        secret_key_sealed: state.webhooks.key.seal(secret_key),
        webhook_secret_sealed: state.webhooks.key.seal(webhook_secret),
        key_hint: hint(secret_key),
        created_at,
        modified_at: now,
    };
    state.store.put_payment_provider(tenant, &row).await?;
    tracing::info!(org = tenant.org_id.to_string(), env = tenant.env.as_str(), key = %row.key_hint, "payment provider set: stripe");
    Ok(ProviderInfo { provider: row.provider, key_hint: row.key_hint, modified_at: now })
}

/// The environment's provider, if one is set.
pub async fn show(state: &AppState, tenant: &Tenant) -> ServiceResult<Option<ProviderInfo>> {
    Ok(state.store.payment_provider(tenant).await?.map(|p| ProviderInfo {
        provider: p.provider,
        key_hint: p.key_hint,
        modified_at: p.modified_at,
    }))
}

/// The HTTP client every Stripe call shares (one connection pool).
fn stripe_http() -> reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(stripe::StripeClient::http).clone()
}

/// The environment's Stripe account, when Stripe is its provider.
pub async fn stripe_client(state: &AppState, tenant: &Tenant) -> ServiceResult<Option<stripe::StripeClient>> {
    let Some(row) = state.store.payment_provider(tenant).await?.filter(|p| p.provider == "stripe") else {
        return Ok(None);
    };
    let key =
        state.webhooks.key.open(&row.secret_key_sealed).map_err(|_| {
            ServiceError::Internal(anyhow::anyhow!("the Stripe key does not open with this secret key"))
        })?;
    Ok(Some(stripe::StripeClient::new(stripe_http(), &state.config.stripe_api_base, &key)))
}

/// Removes the environment's provider (the sandbox provider serves the
/// sandbox again; production refuses payments). Whether one was set.
pub async fn remove(state: &AppState, tenant: &Tenant) -> ServiceResult<bool> {
    Ok(state.store.remove_payment_provider(tenant).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hints_show_the_mode_and_last_four_only() {
        assert_eq!(super::hint("sk_test_4eC39HqLyjWDarjtT1zdp7dc"), "sk_test_…p7dc");
        assert_eq!(super::hint("rk_live_51Habcdefgh1234"), "rk_live_…1234");
    }
}
