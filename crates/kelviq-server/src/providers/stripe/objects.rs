//! The Stripe objects the provider reads: only the fields it uses, so a
//! newer API version's additions never break parsing.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Card {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    #[serde(default)]
    pub funding: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub card: Option<Card>,
}

/// What went wrong with a payment, as Stripe reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ApiError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    /// For card errors on a PaymentIntent: the intent as it stands.
    #[serde(default)]
    pub payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    /// `succeeded`, `requires_payment_method`, `requires_action`, `processing`, `canceled`, …
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub latest_charge: Option<String>,
    #[serde(default)]
    pub last_payment_error: Option<ApiError>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    pub id: String,
    pub status: String,
    pub amount: i64,
    #[serde(default)]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    /// `payment` or `setup`.
    pub mode: String,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: String,
    /// The hosted page to send the buyer to (while open).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub setup_intent: Option<String>,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SetupIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub reason: String,
    pub status: String,
}

/// A webhook event; its object is read by type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}
