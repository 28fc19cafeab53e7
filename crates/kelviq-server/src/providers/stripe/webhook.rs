//! Stripe's webhooks, received at `/stripe/webhook/{environment}`: the
//! `Stripe-Signature` is checked against the webhook secret of each
//! organisation whose provider in that environment is Stripe (the one that
//! verifies is the sender's), within 300 s of the wall clock (Stripe's
//! timestamp is real time; a sandbox's test clock does not move it); then
//! the event id is taken once, in the transaction that applies the event,
//! so a 2xx answer means committed and a repeated delivery changes nothing.
//! Types this server does not act on are recorded and answered 2xx.

use crate::error::ServiceError;
use crate::selling::CheckoutError;
use crate::state::AppState;
use kelviq_core::stripe::{verify_header, SignatureError, TOLERANCE_SECONDS};
use kelviq_core::{Environment, Tenant};

/// How a delivery was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub event_id: String,
    /// False when this event id was received before.
    pub first: bool,
}

/// Why a delivery is refused with 400 (Stripe retries it).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Signature(SignatureError),
    #[error("no organisation's Stripe webhook secret verifies this signature")]
    NoSecret,
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

#[derive(serde::Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: i64,
}

fn wall_clock_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Acts on an event of a type this server handles; whether it did.
async fn handle(state: &AppState, tenant: &Tenant, kind: &str, body: &[u8]) -> Result<bool, Refused> {
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            #[derive(serde::Deserialize)]
            struct Session {
                id: String,
                #[serde(default)]
                metadata: std::collections::BTreeMap<String, String>,
            }
            #[derive(serde::Deserialize)]
            struct Data {
                object: Session,
            }
            #[derive(serde::Deserialize)]
            struct Event {
                data: Data,
            }
            let event: Event = serde_json::from_slice(body).map_err(|e| Refused::NotAnEvent(e.to_string()))?;
            let Some(stripe) = crate::providers::stripe_client(state, tenant).await? else { return Ok(false) };
            let (metadata, session) = (&event.data.object.metadata, &event.data.object.id);
            let done = match (metadata.get("kelviq_checkout"), metadata.get("kelviq_invoice")) {
                (Some(ours), _) => super::checkout::complete(state, tenant, &stripe, ours, session).await.map(|_| ()),
                (None, Some(invoice)) => {
                    super::invoice::complete(state, tenant, &stripe, invoice, session).await.map(|_| ())
                }
                (None, None) if metadata.contains_key("kelviq_customer") => {
                    super::methods::complete(state, tenant, &stripe, None, session)
                        .await
                        .map_err(CheckoutError::Api)
                        .map(|_| ())
                }
                (None, None) => return Ok(false),
            };
            let ours = metadata.get("kelviq_checkout").or(metadata.get("kelviq_invoice")).cloned().unwrap_or_default();
            match done {
                Ok(()) => Ok(true),
                Err(CheckoutError::Api(ServiceError::NotFound(_))) => Ok(false),
                Err(CheckoutError::Payer(field, message)) => {
                    tracing::warn!(checkout = %ours, field, message, "stripe: a completed session did not complete its checkout");
                    Ok(false)
                }
                Err(CheckoutError::Api(e)) => Err(Refused::Service(e)),
            }
        }
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            #[derive(serde::Deserialize)]
            struct Object {
                id: String,
            }
            #[derive(serde::Deserialize)]
            struct Data {
                object: Object,
            }
            #[derive(serde::Deserialize)]
            struct Event {
                data: Data,
            }
            let event: Event = serde_json::from_slice(body).map_err(|e| Refused::NotAnEvent(e.to_string()))?;
            let Some(stripe) = crate::providers::stripe_client(state, tenant).await? else { return Ok(false) };
            // The dispute as it is now (a late `created` after an `updated` changes nothing).
            let d = match stripe.dispute(&event.data.object.id).await {
                Ok(d) => d,
                // Not a dispute of this account: nothing to act on.
                Err(super::StripeError::Api { status: 404, .. }) => return Ok(false),
                Err(e) => {
                    tracing::warn!(error = %e, "stripe: a dispute could not be read");
                    return Err(Refused::Service(ServiceError::Unavailable("Stripe did not answer.".into())));
                }
            };
            let Some(payment) = d.payment_intent.as_deref() else { return Ok(false) };
            let Some(order) =
                state.store.order_of_provider_payment(tenant, payment).await.map_err(ServiceError::from)?
            else {
                return Ok(false);
            };
            crate::selling::record_dispute(state, tenant, &order, &d.id, d.amount, &d.reason, &d.status).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Receives one delivery.
pub async fn receive(state: &AppState, env: Environment, signature: &str, body: &[u8]) -> Result<Received, Refused> {
    let now = wall_clock_seconds();
    let mut stale = None;
    let mut sender = None;
    for (tenant, row) in state.store.payment_providers_in(env).await.map_err(ServiceError::from)? {
        let secret =
            state.webhooks.key.open(&row.webhook_secret_sealed).map_err(|e| ServiceError::Internal(e.into()))?;
        match verify_header(signature, body, &[secret.as_str()], now, TOLERANCE_SECONDS) {
            Ok(_) => {
                sender = Some(tenant);
                break;
            }
            Err(SignatureError::Malformed) => return Err(Refused::Signature(SignatureError::Malformed)),
            Err(SignatureError::Stale(s)) => stale = Some(s),
            Err(SignatureError::Mismatch) => {}
        }
    }
    let Some(tenant) = sender else {
        return Err(stale.map_or(Refused::NoSecret, |s| Refused::Signature(SignatureError::Stale(s))));
    };
    let head: EventHead = serde_json::from_slice(body).map_err(|e| Refused::NotAnEvent(e.to_string()))?;
    if head.id.is_empty() || head.id.len() > 255 || head.kind.len() > 255 {
        return Err(Refused::NotAnEvent("an event id and type are required".into()));
    }
    if state.store.stripe_event_taken(&tenant, &head.id).await.map_err(ServiceError::from)? {
        return Ok(Received { event_id: head.id, first: false });
    }
    // Handlers are idempotent (a delivery repeated while this one runs
    // finds their work done), and read the objects again from Stripe, so
    // events that arrive out of order act on the object as it is now.
    let handled = handle(state, &tenant, &head.kind, body).await?;
    let received_at = state.clock.now();
    let mut w = state.store.begin(&tenant).await.map_err(ServiceError::from)?;
    let first = w
        .take_stripe_event(&head.id, &head.kind, handled, head.created, received_at)
        .await
        .map_err(ServiceError::from)?;
    w.commit().await.map_err(ServiceError::from)?;
    if first {
        tracing::info!(org = tenant.org_id.to_string(), env = env.as_str(), event = %head.id, kind = %head.kind, "stripe event received");
    }
    Ok(Received { event_id: head.id, first })
}
