//! The money records: payment methods, checkout sessions, orders with
//! their invoices, transactions with the platform's fee, and refunds.

use super::*;
use crate::money::{self, currency_exponent};
use crate::plans::ChargePeriod;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A decimal string of minor units in `currency` (`"49.00"`).
pub fn amount_text(minor: i64, currency: &str) -> String {
    money::minor_to_decimal(minor, currency_exponent(currency).unwrap_or(2))
}

/// The same amount as a JSON number (refunds and transactions show numbers).
pub fn amount_number(minor: i64, currency: &str) -> Value {
    money::minor_number(minor, currency_exponent(currency).unwrap_or(2))
}

/// Whether a charge went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    Paid,
    Declined,
}

impl Charged {
    pub fn paid(self) -> bool {
        self == Charged::Paid
    }
}

/// Why an order was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// The first payment of a purchase.
    Purchase,
    /// A purchase that starts with a trial (nothing is charged yet).
    TrialStart,
    /// A renewal, or the first period after a trial.
    Renewal,
    /// A plan change charged now.
    Change,
    /// The usage of a period that ends early (a cancellation), in arrears.
    FinalUsage,
}

impl OrderKind {
    /// A short name (what a payment attempt is for).
    pub fn name(self) -> &'static str {
        match self {
            OrderKind::Purchase => "purchase",
            OrderKind::TrialStart => "trial_start",
            OrderKind::Renewal => "renewal",
            OrderKind::Change => "change",
            OrderKind::FinalUsage => "final_usage",
        }
    }
}

/// What a fee is taken on: subscriptions carry a surcharge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sale {
    OneTime,
    Subscription,
}

/// The platform fee schedule a transaction's `morFee` is computed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Percentage of the amount, in basis points (350 = 3.5 %).
    pub base_bp: i64,
    /// A fixed fee per charge, in minor units of the charge's currency.
    pub fixed_minor: i64,
    /// Extra basis points on subscription charges.
    pub subscription_bp: i64,
}

impl Default for FeeSchedule {
    fn default() -> Self {
        FeeSchedule { base_bp: 350, fixed_minor: 30, subscription_bp: 50 }
    }
}

/// One line of a fee breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeLine {
    pub name: String,
    /// Basis points, when the line is a percentage.
    pub bp: Option<i64>,
    pub value_minor: i64,
}

pub(super) fn bp_of(amount: i64, bp: i64) -> i64 {
    ((amount as i128 * bp as i128 * 2 + 10_000) / 20_000) as i64
}

impl FeeSchedule {
    /// The fee lines for a charge of `amount_minor` (none on a zero charge).
    pub fn fees(&self, amount_minor: i64, sale: Sale) -> Vec<FeeLine> {
        let subscription = sale == Sale::Subscription;
        if amount_minor <= 0 {
            return Vec::new();
        }
        let mut lines = vec![
            FeeLine { name: "base_fee".into(), bp: Some(self.base_bp), value_minor: bp_of(amount_minor, self.base_bp) },
            FeeLine { name: "fixed_fee".into(), bp: None, value_minor: self.fixed_minor },
        ];
        if subscription && self.subscription_bp > 0 {
            lines.push(FeeLine {
                name: "subscription_fee".into(),
                bp: Some(self.subscription_bp),
                value_minor: bp_of(amount_minor, self.subscription_bp),
            });
        }
        lines
    }
}

/// Basis points as the API's percentage text (`350` → `"3.5"`).
pub fn bp_text(bp: i64) -> String {
    money::minor_to_decimal(bp, 2).trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A saved payment method (cards only, for now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub customer_uuid: uuid::Uuid,
    pub customer_id: String,
    pub method_type: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub funding: String,
    pub country: Option<String>,
    /// The sandbox card's behaviour (`pays`, `fails_later`); `None` for a real provider's method.
    pub sandbox: Option<String>,
    /// Charges attempted on it so far.
    pub charges: u32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    /// A networked provider's customer and payment method (Stripe's
    /// `cus_…` and `pm_…`); `None` for a sandbox card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderMethod>,
}

/// Where a payment method lives at its provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMethod {
    /// `stripe`.
    pub name: String,
    pub customer: String,
    pub method: String,
}

/// An entry of a checkout session's or an order's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: i64,
    pub title: String,
    pub code: String,
    pub status: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub metadata: Value,
}

/// A checkout session: everything asked at `POST /checkout/`, priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub status: SessionStatus,
    pub plan_id: uuid::Uuid,
    pub plan_identifier: String,
    pub plan_name: String,
    pub plan_version: i64,
    pub product_id: uuid::Uuid,
    pub charge_period: ChargePeriod,
    pub quote: Quote,
    /// Trial days this checkout gives (0: none).
    pub trial_days: i64,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub features: Vec<FeatureQuantity>,
    pub metadata: Value,
    pub discounts_enabled: bool,
    pub discount_code: Option<String>,
    /// The terms of the code applied (held for the session while it is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<crate::discounts::AppliedDiscount>,
    /// The country whose local price the quote is, and whether only a
    /// buyer billed there pays it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_country: Option<String>,
    #[serde(default)]
    pub price_strict: bool,
    pub lock_email: bool,
    pub default_billing_country: Option<String>,
    pub billing_country: Option<String>,
    pub ip_address: Option<String>,
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
    pub custom_amount: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub order_id: Option<String>,
    pub subscription_id: Option<uuid::Uuid>,
    pub payment_method_id: Option<i64>,
    pub log: Vec<LogEntry>,
    /// While the payer is on a provider's own payment page (Stripe
    /// Checkout): that page's session and what the payer typed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_off: Option<HandedOff>,
}

impl CheckoutSession {
    /// The status shown at `now`: an open session past its expiry is
    /// expired; one whose completion is under way is still open.
    pub fn shown_status(&self, now: DateTime<Utc>) -> SessionStatus {
        match self.status {
            SessionStatus::Open if now >= self.expires_at => SessionStatus::Expired,
            SessionStatus::Processing => SessionStatus::Open,
            other => other,
        }
    }

    pub fn log(&mut self, code: &str, title: &str, status: &str, at: DateTime<Utc>) {
        let id = self.log.len() as i64 + 1;
        self.log.push(LogEntry {
            id,
            title: title.into(),
            code: code.into(),
            status: status.into(),
            at,
            metadata: Value::Object(Default::default()),
        });
    }
}

/// A payment disputed by the cardholder (a chargeback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDispute {
    /// The provider's dispute (`dp_…`).
    pub id: String,
    pub amount_minor: i64,
    /// `fraudulent`, `product_not_received`, `duplicate`, …
    pub reason: String,
    /// `needs_response`, `under_review`, `won`, `lost`, …
    pub status: String,
    pub opened_at: DateTime<Utc>,
}

/// A checkout handed to a provider's payment page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOff {
    /// `stripe`.
    pub provider: String,
    /// The provider's session (`cs_…`) and customer (`cus_…`).
    pub session: String,
    pub customer: String,
    /// Charged on the provider's page: the first invoice's total; 0 when the
    /// page only saves the card (a trial, a free first period).
    pub amount_minor: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub billing_country: Option<String>,
    pub tax_id: Option<String>,
    pub discount_code: Option<String>,
}

/// An order and its invoice (one each per payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub invoice_id: String,
    pub customer_uuid: uuid::Uuid,
    pub customer_id: String,
    pub subscription_id: Option<uuid::Uuid>,
    pub plan_id: uuid::Uuid,
    pub plan_identifier: String,
    pub plan_name: String,
    pub plan_version: i64,
    pub product_id: uuid::Uuid,
    pub charge_period: ChargePeriod,
    pub billing_type: String,
    pub is_renewal: bool,
    pub is_trial: bool,
    pub status: OrderStatus,
    pub invoice_status: InvoiceStatus,
    pub currency: String,
    pub lines: Vec<Line>,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub refunded_minor: i64,
    pub paid_at: Option<DateTime<Utc>>,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub payment_method_id: Option<i64>,
    pub features: Vec<FeatureQuantity>,
    pub log: Vec<LogEntry>,
    /// The provider's payment that paid the order (a Stripe PaymentIntent),
    /// refunded through the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_payment: Option<String>,
    /// The cardholder's dispute of the payment, as the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<OrderDispute>,
}

/// A money movement: a charge or a refund, with the platform's fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: uuid::Uuid,
    pub order_id: String,
    pub transaction_type: String,
    pub status: TransactionStatus,
    pub currency: String,
    pub amount_minor: i64,
    pub fees: Vec<FeeLine>,
    pub tax_minor: i64,
    pub payment_method_type: String,
    pub payment_method_name: Option<String>,
    pub last4: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Transaction {
    pub fn fee_minor(&self) -> i64 {
        self.fees.iter().map(|f| f.value_minor).sum()
    }

    /// What the merchant receives: the amount less tax and fees (negative for refunds).
    pub fn net_minor(&self) -> i64 {
        self.amount_minor - self.tax_minor - self.fee_minor()
    }
}

/// A refund of (part of) an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: uuid::Uuid,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: Option<String>,
    pub internal_note: Option<String>,
    pub status: RefundStatus,
    pub failure_reason: Option<String>,
    /// Given back as credit on the subscription's next invoices, not to the card.
    #[serde(default)]
    pub as_credit: bool,
    pub created_at: DateTime<Utc>,
}

/// `ORD-YYYYMMDDHHMMSS-XXXXX` / `INV-…` (spec §2.4).
impl Order {
    /// The lines of the order's invoice: the order's own, and a discount
    /// line when they add up to more than the order's total (a discount the
    /// lines do not show), so that the invoice's lines always add up to it.
    pub fn invoice_lines(&self) -> Vec<super::Line> {
        let mut lines = self.lines.clone();
        let shown: i64 = lines.iter().map(|l| l.amount_minor).sum();
        if shown != self.total_minor {
            lines.push(super::Line::of_kind(super::LineKind::Discount, "Discount", self.total_minor - shown));
        }
        lines
    }
}

pub fn order_number(prefix: &str, at: DateTime<Utc>) -> String {
    let suffix: String = crate::ids::random_alphanumeric(16)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .take(5)
        .collect();
    format!("{prefix}-{}-{suffix}", at.format("%Y%m%d%H%M%S"))
}
