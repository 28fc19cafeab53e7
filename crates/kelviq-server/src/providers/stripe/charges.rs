//! Charges off session through Stripe: a PaymentIntent confirmed at once
//! with the saved payment method, the attempt's key as its
//! `Idempotency-Key`, and Stripe's answer read into an outcome.

use super::client::{StripeClient, StripeError};
use super::objects::{ApiError, PaymentIntent};
use kelviq_store::PaymentAttempt;
use serde_json::json;

/// Stripe's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// `succeeded`, `declined` or `requires_action`.
    pub status: &'static str,
    pub payment_ref: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// Charges the attempt. An `Err` is no answer (the network, Stripe's own
/// fault, a refused key): the charge may or may not have happened, and is
/// asked again with the same key.
pub async fn charge(stripe: &StripeClient, a: &PaymentAttempt) -> Result<Answered, StripeError> {
    let metadata = json!({"kelviq_purpose": a.purpose, "kelviq_attempt": a.key});
    match stripe.charge_off_session(&a.customer_ref, &a.method_ref, a.amount_minor, &a.currency, metadata, &a.key).await
    {
        Ok(pi) => Ok(from_intent(&pi)),
        Err(StripeError::Api { status, error }) if status == 402 || error.kind == "card_error" => {
            Ok(from_card_error(&error))
        }
        // A request Stripe refuses for good (the method detached at Stripe, …): a decline.
        Err(StripeError::Api { status, error }) if status == 400 || status == 404 => Ok(Answered {
            status: "declined",
            payment_ref: None,
            error_code: error.code.clone(),
            message: Some(error.message.clone().unwrap_or_else(|| "The payment method cannot be charged.".into())),
        }),
        Err(e) => Err(e),
    }
}

/// Refunds the attempt's amount of its payment (`method_ref`, a
/// PaymentIntent). An `Err` is no answer, as for a charge.
pub async fn refund(stripe: &StripeClient, a: &PaymentAttempt) -> Result<Answered, StripeError> {
    match stripe.refund(&a.method_ref, Some(a.amount_minor), &a.key).await {
        Ok(r) if r.status == "failed" || r.status == "canceled" => Ok(Answered {
            status: "declined",
            payment_ref: Some(r.id),
            error_code: Some(r.status),
            message: Some("The payment provider could not refund this payment.".into()),
        }),
        Ok(r) => Ok(Answered { status: "succeeded", payment_ref: Some(r.id), error_code: None, message: None }),
        Err(StripeError::Api { status, error }) if (400..500).contains(&status) && status != 401 && status != 429 => {
            Ok(Answered {
                status: "declined",
                payment_ref: None,
                error_code: error.code.clone(),
                message: Some(error.message.unwrap_or_else(|| "The refund was refused.".into())),
            })
        }
        Err(e) => Err(e),
    }
}

fn from_intent(pi: &PaymentIntent) -> Answered {
    match pi.status.as_str() {
        "succeeded" | "processing" => {
            Answered { status: "succeeded", payment_ref: Some(pi.id.clone()), error_code: None, message: None }
        }
        "requires_action" | "requires_confirmation" => Answered {
            status: "requires_action",
            payment_ref: Some(pi.id.clone()),
            error_code: Some("authentication_required".into()),
            message: None,
        },
        _ => {
            let error = pi.last_payment_error.clone().unwrap_or_default();
            Answered { payment_ref: Some(pi.id.clone()), ..from_card_error(&error) }
        }
    }
}

fn from_card_error(e: &ApiError) -> Answered {
    let payment_ref = e.payment_intent.as_ref().map(|pi| pi.id.clone());
    if e.code.as_deref() == Some("authentication_required") {
        return Answered {
            status: "requires_action",
            payment_ref,
            error_code: e.code.clone(),
            message: e.message.clone(),
        };
    }
    Answered {
        status: "declined",
        payment_ref,
        error_code: e.decline_code.clone().or_else(|| e.code.clone()),
        message: Some(e.message.clone().unwrap_or_else(|| "Your card was declined.".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(status: &str) -> PaymentIntent {
        PaymentIntent {
            id: "pi_1".into(),
            status: status.into(),
            amount: 100,
            currency: "usd".into(),
            customer: None,
            payment_method: None,
            latest_charge: None,
            last_payment_error: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn intents_read_as_outcomes() {
        assert_eq!(from_intent(&intent("succeeded")).status, "succeeded");
        assert_eq!(from_intent(&intent("requires_action")).status, "requires_action");
        let declined = from_intent(&intent("requires_payment_method"));
        assert_eq!((declined.status, declined.payment_ref.as_deref()), ("declined", Some("pi_1")));
        let auth = ApiError {
            kind: "card_error".into(),
            code: Some("authentication_required".into()),
            payment_intent: Some(Box::new(intent("requires_payment_method"))),
            ..Default::default()
        };
        assert_eq!(from_card_error(&auth).status, "requires_action");
        assert_eq!(from_card_error(&auth).payment_ref.as_deref(), Some("pi_1"));
    }
}
