//! The sandbox provider: Kelviq's test cards (`kelviq_core::sandbox_cards`),
//! charged in memory, inside the work that needs the charge.

use super::{CardInput, PayError};
use chrono::{DateTime, Datelike, Utc};
use kelviq_core::billing::PaymentMethod;
use kelviq_core::customer::Customer;
use kelviq_core::sandbox_cards::{charge_succeeds, sandbox_card, CardBehaviour};

pub struct Sandbox;

fn behaviour_name(b: CardBehaviour) -> &'static str {
    match b {
        CardBehaviour::Pays => "pays",
        CardBehaviour::Declined => "declined",
        CardBehaviour::FailsLater => "fails_later",
    }
}

const DECLINED: &str = "Your card was declined.";

impl Sandbox {
    pub fn attach(&self, card: &CardInput, customer: &Customer, now: DateTime<Utc>) -> Result<PaymentMethod, PayError> {
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
            provider: None,
        })
    }

    pub fn charge(&self, method: &mut PaymentMethod, _amount_minor: i64, _currency: &str) -> Result<(), PayError> {
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
}
