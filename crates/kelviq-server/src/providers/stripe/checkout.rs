//! The hosted checkout with Stripe as the provider: the payer's details
//! are checked here, the checkout is rehearsed for the first invoice's
//! total, and the payer goes to a Stripe Checkout Session (`payment` mode
//! for that total, saving the card for later charges off session; `setup`
//! mode when nothing is due now, as in a trial). Card numbers never reach
//! this server. The purchase completes when the payer comes back or when
//! Stripe's `checkout.session.completed` arrives, whichever is first; the
//! other finds it complete.

use super::client::StripeClient;
use super::objects;
use crate::error::ServiceError;
use crate::selling::{self, CheckoutError, CheckoutForm, CheckoutPayment};
use crate::state::AppState;
use kelviq_core::billing::{CheckoutSession, HandedOff, PaymentMethod, ProviderMethod, SessionStatus};
use kelviq_core::Tenant;
use kelviq_store::{DocColumns, DocTable};
use serde_json::json;

pub(super) fn api(e: impl std::fmt::Display) -> CheckoutError {
    tracing::warn!(error = %e, "stripe: a checkout call failed");
    CheckoutError::Api(ServiceError::Unavailable("The payment provider did not answer; try again shortly.".into()))
}

/// Hands an open checkout to Stripe's page; returns where to send the payer.
pub async fn hand_off(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    cs: &CheckoutSession,
    form: CheckoutForm,
    base_url: &str,
) -> Result<String, CheckoutError> {
    let (due, currency) = selling::rehearse_checkout(state, tenant, &cs.id, form.clone()).await?;
    let customer = match &cs.handed_off {
        Some(h) => h.customer.clone(),
        None => {
            let email = form.email.as_deref().or(cs.customer_email.as_deref());
            let our_id = cs.customer_id.as_deref().unwrap_or("new");
            let key = format!("kelviq-customer-{}", cs.id);
            stripe.create_customer(email, form.name.as_deref(), our_id, &key).await.map_err(api)?.id
        }
    };
    let success = format!("{base_url}/checkout/{}/return?session_id={{CHECKOUT_SESSION_ID}}", cs.id);
    let back = format!("{base_url}/checkout/{}", cs.id);
    let metadata = json!({"kelviq_checkout": cs.id});
    let charge = (due > 0).then_some((due, currency.as_str(), cs.plan_name.as_str()));
    let key = format!("kelviq-checkout-{}-{}", cs.id, uuid::Uuid::new_v4().simple());
    let session =
        stripe.create_checkout_session(&customer, charge, &success, Some(&back), metadata, &key).await.map_err(api)?;
    let url = session.url.clone().ok_or_else(|| api("a checkout session without a url"))?;
    let handed = HandedOff {
        provider: "stripe".into(),
        session: session.id,
        customer,
        amount_minor: due.max(0),
        email: form.email,
        name: form.name,
        billing_country: form.billing_country,
        tax_id: form.tax_id,
        discount_code: form.discount_code,
    };
    let now = crate::clock::tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let Some(mut cs) = w.lock::<CheckoutSession>(DocTable::CheckoutSessions, &cs.id).await? else {
        return Err(CheckoutError::Api(ServiceError::NotFound("Checkout session not found.".into())));
    };
    if cs.status != SessionStatus::Open {
        return Err(CheckoutError::Api(ServiceError::BadRequest("This checkout session is already complete.".into())));
    }
    cs.log("checkout_session.handed_off", "The payer went to Stripe's payment page", "open", now);
    cs.handed_off = Some(handed);
    cs.modified_at = now;
    let cols = DocColumns {
        status: Some(cs.status.as_str().into()),
        created_at: cs.created_at,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, &cs.id, &cs, &cols).await?;
    w.commit().await?;
    Ok(url)
}

/// The card a completed Stripe session saved, as our payment method.
pub(super) async fn saved_method(
    stripe: &StripeClient,
    session: &objects::CheckoutSession,
) -> Result<(PaymentMethod, Option<String>), CheckoutError> {
    let (method_id, payment) = match (&session.payment_intent, &session.setup_intent) {
        (Some(pi), _) => (stripe.payment_intent(pi).await.map_err(api)?.payment_method, Some(pi.clone())),
        (None, Some(seti)) => (stripe.setup_intent(seti).await.map_err(api)?.payment_method, None),
        (None, None) => (None, None),
    };
    let Some(method_id) = method_id else {
        return Err(CheckoutError::Payer("card", "The payment page did not save a card.".into()));
    };
    let pm = stripe.payment_method(&method_id).await.map_err(api)?;
    let card = pm.card.ok_or_else(|| CheckoutError::Payer("card", "Only cards are accepted.".into()))?;
    let now = chrono::Utc::now();
    let method = PaymentMethod {
        customer_uuid: uuid::Uuid::nil(),
        customer_id: String::new(),
        method_type: "card".into(),
        brand: card.brand,
        last4: card.last4,
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        funding: card.funding.unwrap_or_else(|| "unknown".into()),
        country: card.country,
        sandbox: None,
        charges: u32::from(payment.is_some()),
        status: "succeeded".into(),
        created_at: now,
        modified_at: now,
        provider: Some(ProviderMethod {
            name: "stripe".into(),
            customer: session.customer.clone().or(pm.customer).unwrap_or_default(),
            method: method_id,
        }),
    };
    Ok((method, payment))
}

/// Completes our checkout `id` from the Stripe session the payer finished,
/// read from Stripe (never from the caller). A checkout completed before
/// (by the other of the return and the webhook) is answered as it is.
pub async fn complete(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    id: &str,
    stripe_session: &str,
) -> Result<CheckoutSession, CheckoutError> {
    let cs: CheckoutSession = state
        .store
        .find_doc(DocTable::CheckoutSessions, tenant, id)
        .await?
        .ok_or_else(|| CheckoutError::Api(ServiceError::NotFound("Checkout session not found.".into())))?;
    if cs.status == SessionStatus::Success {
        return Ok(cs);
    }
    let session = stripe.checkout_session(stripe_session).await.map_err(api)?;
    if session.metadata.get("kelviq_checkout").map(String::as_str) != Some(id) {
        return Err(CheckoutError::Api(ServiceError::NotFound("This payment is not for this checkout.".into())));
    }
    if session.status != "complete" {
        return Err(CheckoutError::Payer("card", "The payment was not completed.".into()));
    }
    let Some(payer) = cs.handed_off.clone() else {
        return Err(CheckoutError::Api(ServiceError::BadRequest("This checkout was not handed to Stripe.".into())));
    };
    let (method, payment_ref) = saved_method(stripe, &session).await?;
    let paid = if session.mode == "payment" { session.amount_total.unwrap_or(0) } else { 0 };
    let refund_to = payment_ref.clone();
    let form = CheckoutForm {
        card: None,
        payment: CheckoutPayment::Provider { method: Box::new(method), amount_minor: paid, payment_ref },
        email: payer.email,
        name: payer.name,
        billing_country: payer.billing_country,
        tax_id: payer.tax_id,
        discount_code: payer.discount_code,
    };
    match selling::complete_checkout(state, tenant, id, form).await {
        Ok(done) => Ok(done),
        Err(e) => {
            // The other of the return and the webhook may have completed it meanwhile.
            match state.store.find_doc::<CheckoutSession>(DocTable::CheckoutSessions, tenant, id).await? {
                Some(cs) if cs.status == SessionStatus::Success => Ok(cs),
                _ => match (e, refund_to) {
                    // Refused for good (the amount changed while the payer was on
                    // Stripe's page, …): nothing was bought, so the payment goes back.
                    (CheckoutError::Payer(field, message), Some(payment)) => {
                        let key = format!("kelviq-refund-unbought-{payment}");
                        stripe.refund(&payment, None, &key).await.map_err(api)?;
                        tracing::warn!(checkout = %id, payment, "stripe: a payment that bought nothing was refunded");
                        Err(CheckoutError::Payer(field, format!("{message} Your payment was refunded.")))
                    }
                    (e, _) => Err(e),
                },
            }
        }
    }
}
