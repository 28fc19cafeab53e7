//! Payment providers. The sandbox environment uses the built-in sandbox
//! provider (test cards, see `kelviq_core::sandbox_cards`); the production
//! environment refuses payments until a real provider is configured (a
//! Stripe provider implements this same trait).

use chrono::{DateTime, Datelike, Utc};
use kelviq_core::billing::PaymentMethod;
use kelviq_core::customer::Customer;
use kelviq_core::sandbox_cards::{charge_succeeds, sandbox_card, CardBehaviour};
use kelviq_core::Environment;

/// Why a payment did not go through; the message is shown to the payer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("{0}")]
    Declined(String),
    #[error("{0}")]
    InvalidCard(String),
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

pub trait PaymentProvider: Send + Sync {
    /// Saves a card for a customer, authorising it.
    fn attach(&self, card: &CardInput, customer: &Customer, now: DateTime<Utc>) -> Result<PaymentMethod, PayError>;
    /// Charges a saved method; `method.charges` counts attempts.
    fn charge(&self, method: &mut PaymentMethod, amount_minor: i64, currency: &str) -> Result<(), PayError>;
    /// Returns money to a saved method.
    fn refund(&self, method: Option<&PaymentMethod>, amount_minor: i64, currency: &str) -> Result<(), PayError>;
}

/// The provider serving an environment.
pub fn provider_for(env: Environment) -> &'static dyn PaymentProvider {
    match env {
        Environment::Sandbox => &Sandbox,
        Environment::Production => &NotConfigured,
    }
}

pub struct Sandbox;

fn behaviour_name(b: CardBehaviour) -> &'static str {
    match b {
        CardBehaviour::Pays => "pays",
        CardBehaviour::Declined => "declined",
        CardBehaviour::FailsLater => "fails_later",
    }
}

const DECLINED: &str = "Your card was declined.";

impl PaymentProvider for Sandbox {
    fn attach(&self, card: &CardInput, customer: &Customer, now: DateTime<Utc>) -> Result<PaymentMethod, PayError> {
        let parsed = sandbox_card(&card.number).map_err(|e| PayError::InvalidCard(e.to_string()))?;
        let (month, year) = (card.exp_month.unwrap_or(12), card.exp_year.unwrap_or(now.year() + 3));
        if !(1..=12).contains(&month) {
            return Err(PayError::InvalidCard("Your card's expiration month is invalid.".into()));
        }
        let year = if year < 100 { 2000 + year } else { year };
        if (year, month) < (now.year(), now.month()) {
            return Err(PayError::InvalidCard("Your card has expired.".into()));
        }
        if parsed.behaviour == CardBehaviour::Declined {
            return Err(PayError::Declined(DECLINED.into()));
        }
        Ok(PaymentMethod {
            customer_uuid: customer.id,
            customer_id: customer.customer_id.clone(),
            method_type: "card".into(),
            brand: parsed.brand.into(),
            last4: parsed.last4,
            exp_month: month,
            exp_year: year,
            funding: "credit".into(),
            country: Some("US".into()),
            sandbox: Some(behaviour_name(parsed.behaviour).into()),
            charges: 0,
            status: "succeeded".into(),
            created_at: now,
            modified_at: now,
        })
    }

    fn charge(&self, method: &mut PaymentMethod, _amount_minor: i64, _currency: &str) -> Result<(), PayError> {
        let behaviour = match method.sandbox.as_deref() {
            Some("pays") => CardBehaviour::Pays,
            Some("fails_later") => CardBehaviour::FailsLater,
            _ => CardBehaviour::Declined,
        };
        let nth = method.charges;
        method.charges += 1;
        if charge_succeeds(behaviour, nth) {
            Ok(())
        } else {
            Err(PayError::Declined(DECLINED.into()))
        }
    }

    fn refund(&self, _method: Option<&PaymentMethod>, _amount_minor: i64, _currency: &str) -> Result<(), PayError> {
        Ok(())
    }
}

pub struct NotConfigured;

impl PaymentProvider for NotConfigured {
    fn attach(&self, _: &CardInput, _: &Customer, _: DateTime<Utc>) -> Result<PaymentMethod, PayError> {
        Err(PayError::NotConfigured)
    }

    fn charge(&self, _: &mut PaymentMethod, _: i64, _: &str) -> Result<(), PayError> {
        Err(PayError::NotConfigured)
    }

    fn refund(&self, _: Option<&PaymentMethod>, _: i64, _: &str) -> Result<(), PayError> {
        Err(PayError::NotConfigured)
    }
}
