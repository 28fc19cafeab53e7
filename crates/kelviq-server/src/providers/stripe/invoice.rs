//! An unpaid invoice paid through its payment link with Stripe: a
//! Checkout Session in `payment` mode for what is due (Stripe asks for
//! 3-D Secure on its page when the bank wants it; the card is saved for
//! the next renewals), completed on the return or on Stripe's webhook,
//! whichever comes first.

use super::checkout::{api, saved_method};
use super::client::StripeClient;
use crate::error::ServiceError;
use crate::selling::{self, CheckoutError};
use crate::state::AppState;
use kelviq_core::billing::{Invoice, PaymentMethod};
use kelviq_core::events::{self, OutboxEvent};
use kelviq_core::Tenant;
use serde_json::json;

/// Sends the payer of `invoice` to Stripe's page; the URL to go to.
/// `back` is the page's own address (with its query), returned to.
pub async fn hand_off(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    invoice: &Invoice,
    back: &str,
) -> Result<String, CheckoutError> {
    let due = invoice.totals.total_minor - invoice.amount_paid_minor;
    if due <= 0 {
        return Err(CheckoutError::Payer("invoice", "Nothing is due on this invoice.".into()));
    }
    let customer = super::methods::stripe_customer(state, tenant, stripe, &invoice.customer_id)
        .await
        .map_err(CheckoutError::Api)?;
    let success = format!("{back}&session_id={{CHECKOUT_SESSION_ID}}");
    let name = format!("Invoice {}", invoice.number);
    let metadata = json!({"kelviq_invoice": invoice.id});
    let key = format!("kelviq-invoice-{}-{}", invoice.id, uuid::Uuid::new_v4().simple());
    let session = stripe
        .create_checkout_session(&customer, Some((due, &invoice.currency, &name)), &success, Some(back), metadata, &key)
        .await
        .map_err(api)?;
    session.url.ok_or_else(|| api("a checkout session without a url"))
}

/// Pays invoice `id` with the Stripe session the payer completed (read
/// from Stripe): the card is saved as the customer's default and the
/// invoice, its order and the subscription are settled. Returns false when
/// the invoice was settled before (by the other of the return and the
/// webhook).
pub async fn complete(
    state: &AppState,
    tenant: &Tenant,
    stripe: &StripeClient,
    id: &str,
    stripe_session: &str,
) -> Result<bool, CheckoutError> {
    let session = stripe.checkout_session(stripe_session).await.map_err(api)?;
    if session.metadata.get("kelviq_invoice").map(String::as_str) != Some(id) {
        return Err(CheckoutError::Api(ServiceError::NotFound("This payment is not for this invoice.".into())));
    }
    if session.status != "complete" || session.payment_status != "paid" {
        return Err(CheckoutError::Payer("card", "The payment was not completed.".into()));
    }
    let invoice = crate::invoices::get(state, tenant, id).await?;
    let (method, payment_ref) = saved_method(stripe, &session).await?;
    let now = crate::clock::tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let customer = w
        .lock_customer(&invoice.customer_id)
        .await?
        .ok_or_else(|| CheckoutError::Api(ServiceError::Internal(anyhow::anyhow!("an invoice's customer is gone"))))?;
    let method = PaymentMethod { customer_uuid: customer.id, customer_id: customer.customer_id.clone(), ..method };
    let method_id = w.insert_payment_method(&customer.customer_id, &method, true, now).await?;
    let object = events::payment_method_object(method_id, &method, true, &customer, tenant);
    w.event(&OutboxEvent::new("payment_method.created", object, None, now)).await?;
    if !selling::collect_paid(state, &mut w, &invoice.order_id, payment_ref, Some(method_id), now).await? {
        // Settled meanwhile: the card stays as it was saved by the first.
        return Ok(false);
    }
    selling::finish(state, w).await?;
    Ok(true)
}
