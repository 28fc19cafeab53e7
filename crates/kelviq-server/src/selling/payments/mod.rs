//! Payments: cards saved and charged through the payment method's
//! provider. A sandbox card (Kelviq's test cards) is charged in memory by
//! [`Sandbox`]; a card saved at Stripe is charged over the network, never
//! inside an open transaction: see [`scope`] for how a work that needs a
//! charge runs, asks, and runs again on the answer. The production
//! environment refuses payments until a provider is configured.

mod sandbox;
pub mod scope;
pub mod sweep;

use crate::error::ServiceResult;
use crate::state::AppState;
use kelviq_core::billing::PaymentMethod;
use kelviq_store::Work;

pub use sandbox::Sandbox;
pub use scope::{charging, Op};

/// Why a payment did not go through; the message is shown to the payer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("{0}")]
    Declined(String),
    #[error("{0}")]
    InvalidCard(String),
    /// The card's bank asks the customer to authenticate the payment
    /// (3-D Secure); the provider's payment waits for it.
    #[error("This payment needs the customer to authenticate it.")]
    AuthenticationRequired { payment_ref: String },
    /// The provider is being asked: the work that needed this charge is a
    /// rehearsal and will not commit (see [`scope`]).
    #[error("The payment is being processed.")]
    Pending,
    #[error("Payments are not configured for the production environment: configure a payment provider first.")]
    NotConfigured,
}

/// Card details as typed by the payer.
#[derive(Debug, Clone)]
pub struct CardInput {
    pub number: String,
    pub exp_month: Option<u32>,
    pub exp_year: Option<i32>,
}

/// A payment that went through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paid {
    /// The provider's payment (a Stripe PaymentIntent); `None` in the sandbox.
    pub payment_ref: Option<String>,
}

/// Charges `amount_minor` to a saved method, for `purpose` (what the
/// charge is for, unique within the operation: `renewal:<sub>:<due>`).
/// `method.charges` counts attempts. The outer error is the server's; the
/// inner one is the payment's.
pub async fn charge(
    state: &AppState,
    w: &mut Work,
    method: &mut PaymentMethod,
    amount_minor: i64,
    currency: &str,
    purpose: &str,
) -> ServiceResult<Result<Paid, PayError>> {
    if let Some(at) = method.provider.clone() {
        let outcome = scope::charge_at_provider(state, w, &at, amount_minor, currency, purpose).await?;
        if !matches!(outcome, Err(PayError::Pending)) {
            method.charges += 1;
        }
        return Ok(outcome);
    }
    if method.sandbox.is_some() {
        return Ok(Sandbox.charge(method, amount_minor, currency).map(|()| Paid::default()));
    }
    Ok(Err(PayError::NotConfigured))
}

/// Returns `amount_minor` of an order's payment: through the provider
/// that took it, or nothing to do for a sandbox card.
pub async fn refund(
    state: &AppState,
    w: &mut Work,
    order: &kelviq_core::billing::Order,
    method: Option<&PaymentMethod>,
    amount_minor: i64,
    purpose: &str,
) -> ServiceResult<Result<(), PayError>> {
    if let Some(payment) = &order.provider_payment {
        let provider = method.and_then(|m| m.provider.as_ref()).map_or("stripe", |p| p.name.as_str());
        return Ok(scope::refund_at_provider(state, w, provider, payment, amount_minor, &order.currency, purpose)
            .await?
            .map(|_| ()));
    }
    match (method, w.tenant().env) {
        (Some(m), _) if m.sandbox.is_some() => Ok(Ok(())),
        (_, kelviq_core::Environment::Sandbox) => Ok(Ok(())),
        _ => Ok(Err(PayError::NotConfigured)),
    }
}

/// Which provider takes a card typed into one of our own forms (the
/// sandbox checkout page, `POST /payment-methods/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardTaker {
    /// The sandbox provider's test cards.
    Sandbox,
    /// Stripe is the environment's provider: card numbers go to Stripe's
    /// own page, never through this server.
    Stripe,
    /// No provider (production before one is set).
    None,
}

/// The provider an environment saves new cards with.
pub async fn card_taker(state: &AppState, tenant: &kelviq_core::Tenant) -> ServiceResult<CardTaker> {
    if state.store.payment_provider(tenant).await?.is_some_and(|p| p.provider == "stripe") {
        return Ok(CardTaker::Stripe);
    }
    Ok(match tenant.env {
        kelviq_core::Environment::Sandbox => CardTaker::Sandbox,
        kelviq_core::Environment::Production => CardTaker::None,
    })
}

impl CardTaker {
    /// Saves a typed card: only the sandbox provider takes one.
    pub fn attach(
        self,
        card: &CardInput,
        customer: &kelviq_core::customer::Customer,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<PaymentMethod, PayError> {
        match self {
            CardTaker::Sandbox => Sandbox.attach(card, customer, now),
            CardTaker::Stripe => Err(PayError::InvalidCard(
                "Cards are saved through Stripe's own page (checkout or the customer portal), never sent here.".into(),
            )),
            CardTaker::None => Err(PayError::NotConfigured),
        }
    }
}
