//! Saved cards with Stripe: a card is added on Stripe's page (a Checkout
//! Session in `setup` mode, from the portal), saved on the return or on
//! Stripe's webhook, whichever comes first (once: a card is known by its
//! Stripe payment method); our default and our removals are mirrored to
//! Stripe (the customer's `invoice_settings.default_payment_method`, a
//! detach), after our commit: ours is the record the renewals charge.

use super::checkout::saved_method;
use super::client::StripeClient;
use crate::error::{ServiceError, ServiceResult};
use crate::selling::methods;
use crate::state::AppState;
use kelviq_core::billing::{PaymentMethod, ProviderMethod};
use kelviq_core::Tenant;
use serde_json::json;

fn unavailable(e: impl std::fmt::Display) -> ServiceError {
    tracing::warn!(error = %e, "stripe: a payment method call failed");
    ServiceError::Unavailable("The payment provider did not answer; try again shortly.".into())
}

/// The customer's Stripe customer: the one their saved Stripe cards
/// belong to, else a new one.
pub async fn stripe_customer(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    customer_id: &str,
) -> ServiceResult<String> {
    let known = state.store.payment_methods::<PaymentMethod>(tenant, Some(customer_id)).await?;
    if let Some(at) = known.into_iter().find_map(|m| m.doc.provider.filter(|p| p.name == "stripe")) {
        return Ok(at.customer);
    }
    let customer = state.store.find_customer(tenant, customer_id).await?.ok_or_else(ServiceError::not_found)?;
    let key = format!("kelviq-customer-{}", customer.id);
    let created = stripe.create_customer(customer.email.as_deref(), customer.name.as_deref(), customer_id, &key).await;
    Ok(created.map_err(unavailable)?.id)
}

/// Sends the customer to Stripe's page to add a card; where to send them.
pub async fn hand_off(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    customer_id: &str,
    make_default: bool,
    success_url: &str,
    cancel_url: &str,
) -> ServiceResult<String> {
    let customer = stripe_customer(state, tenant, stripe, customer_id).await?;
    let metadata = json!({"kelviq_customer": customer_id, "kelviq_default": if make_default { "yes" } else { "no" }});
    let key = format!("kelviq-card-{}", uuid::Uuid::new_v4().simple());
    let session = stripe.create_checkout_session(&customer, None, success_url, Some(cancel_url), metadata, &key).await;
    session.map_err(unavailable)?.url.ok_or_else(|| unavailable("a checkout session without a url"))
}

/// Saves the card of a completed setup session for the customer it was
/// opened for (`customer_id` when given must be that one). Whether a card
/// was saved now (false: saved before).
pub async fn complete(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    customer_id: Option<&str>,
    stripe_session: &str,
) -> ServiceResult<bool> {
    let session = stripe.checkout_session(stripe_session).await.map_err(unavailable)?;
    let Some(owner) = session.metadata.get("kelviq_customer").cloned() else { return Err(ServiceError::not_found()) };
    if customer_id.is_some_and(|c| c != owner) || session.mode != "setup" {
        return Err(ServiceError::not_found());
    }
    if session.status != "complete" {
        return Err(ServiceError::BadRequest("The card was not saved on Stripe's page.".into()));
    }
    let (method, _) = saved_method(stripe, &session).await.map_err(|e| match e {
        crate::selling::CheckoutError::Payer(_, m) => ServiceError::BadRequest(m),
        crate::selling::CheckoutError::Api(e) => e,
    })?;
    let make_default = session.metadata.get("kelviq_default").map(String::as_str) == Some("yes");
    let at = method.provider.clone();
    let saved = methods::add_provider_card(state, tenant, &owner, method, make_default).await?;
    if let (Some(_), Some(at), true) = (saved, at, make_default) {
        mirror_default(state, tenant, &at).await;
    }
    Ok(saved.is_some())
}

/// Makes a card the customer's default at Stripe too (logged on failure:
/// our record is the one renewals charge).
pub async fn mirror_default(state: &AppState, tenant: &Tenant, at: &ProviderMethod) {
    let Ok(Some(stripe)) = crate::providers::stripe_client(state, tenant).await else { return };
    let key = format!("kelviq-default-{}-{}", at.method, uuid::Uuid::new_v4().simple());
    if let Err(e) = stripe.set_default(&at.customer, &at.method, &key).await {
        tracing::warn!(error = %e, method = %at.method, "stripe: the default card was not set at Stripe");
    }
}

/// Detaches a removed card at Stripe (logged on failure: removed here, it
/// is never charged).
pub async fn mirror_detach(state: &AppState, tenant: &Tenant, at: &ProviderMethod) {
    let Ok(Some(stripe)) = crate::providers::stripe_client(state, tenant).await else { return };
    let key = format!("kelviq-detach-{}", at.method);
    if let Err(e) = stripe.detach(&at.method, &key).await {
        tracing::warn!(error = %e, method = %at.method, "stripe: a removed card was not detached at Stripe");
    }
}
