//! Invoices as the API shows them: money as a decimal string beside its
//! integer minor units, as orders show it.

use kelviq_core::billing::{amount_text, Invoice, Line};
use kelviq_core::customer::BillingAddress;
use kelviq_core::money::{currency_exponent, micro_minor_to_decimal, TierShare};
use kelviq_core::timefmt::iso_seconds;
use serde::Serialize;
use utoipa::ToSchema;

/// An invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceOut {
    /// `INV-YYYYMMDDHHMMSS-XXXXX`: what its order shows as `invoiceId`.
    pub id: String,
    /// Sequential per environment (`INV-000042`).
    pub number: String,
    /// DRAFT, OPEN, PAID, PAYMENT_FAILED, VOID or UNCOLLECTIBLE.
    pub status: String,
    /// Upper-case ISO 4217.
    pub currency: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub order_id: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub subtotal: String,
    pub subtotal_units: i64,
    pub discount: String,
    pub discount_units: i64,
    pub tax: String,
    pub tax_units: i64,
    pub total: String,
    pub total_units: i64,
    pub amount_paid: String,
    pub amount_paid_units: i64,
    pub amount_due: String,
    pub amount_due_units: i64,
    pub credit_applied: String,
    pub credit_applied_units: i64,
    pub due_date: String,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
    pub created_on: String,
    #[schema(value_type = Option<Object>)]
    pub billing_address: Option<BillingAddress>,
    pub lines: Vec<InvoiceLineOut>,
}

/// One line of an invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLineOut {
    /// BASE, QUANTITY, USAGE, PRORATION, DISCOUNT, TAX, CREDIT or LATE_USAGE.
    pub kind: String,
    pub description: String,
    /// The feature's identifier, for per-unit and usage lines.
    pub feature_id: Option<String>,
    pub quantity: Option<u64>,
    /// The price of one unit, where the line has one (may have more decimals than the currency).
    pub unit_amount: Option<String>,
    pub amount: String,
    pub amount_units: i64,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// A usage line's breakdown: every tier the quantity reached, in order.
    pub tiers: Vec<InvoiceTierOut>,
}

/// A tier's share of a usage line.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceTierOut {
    /// The tier's upper bound; null: no bound.
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_amount: String,
    pub flat_amount: String,
    pub amount: String,
    pub amount_units: i64,
}

impl InvoiceLineOut {
    pub fn new(l: &Line, currency: &str) -> Self {
        let exp = currency_exponent(currency).unwrap_or(2);
        InvoiceLineOut {
            kind: l.kind.as_str().to_string(),
            description: l.description.clone(),
            feature_id: l.feature.clone(),
            quantity: l.quantity,
            unit_amount: l.unit_micro.map(|u| micro_minor_to_decimal(u, exp)),
            amount: amount_text(l.amount_minor, currency),
            amount_units: l.amount_minor,
            period_start: l.period_start.map(iso_seconds),
            period_end: l.period_end.map(iso_seconds),
            tiers: l.tiers.iter().map(|t| InvoiceTierOut::new(t, currency)).collect(),
        }
    }
}

impl InvoiceTierOut {
    fn new(t: &TierShare, currency: &str) -> Self {
        InvoiceTierOut {
            up_to: t.up_to,
            quantity: t.quantity,
            unit_amount: micro_minor_to_decimal(t.unit_micro, currency_exponent(currency).unwrap_or(2)),
            flat_amount: amount_text(t.flat_minor, currency),
            amount: amount_text(t.amount_minor, currency),
            amount_units: t.amount_minor,
        }
    }
}

impl From<&Invoice> for InvoiceOut {
    fn from(i: &Invoice) -> Self {
        let t = |minor: i64| amount_text(minor, &i.currency);
        let due = i.amount_due_minor();
        InvoiceOut {
            id: i.id.clone(),
            number: i.number.clone(),
            status: i.status.as_str().to_string(),
            currency: i.currency.clone(),
            customer_id: i.customer_id.clone(),
            subscription_id: i.subscription_id.map(|s| s.to_string()),
            order_id: i.order_id.clone(),
            period_start: i.period_start.map(iso_seconds),
            period_end: i.period_end.map(iso_seconds),
            subtotal: t(i.totals.subtotal_minor),
            subtotal_units: i.totals.subtotal_minor,
            discount: t(i.totals.discount_minor),
            discount_units: i.totals.discount_minor,
            tax: t(i.totals.tax_minor),
            tax_units: i.totals.tax_minor,
            total: t(i.totals.total_minor),
            total_units: i.totals.total_minor,
            amount_paid: t(i.amount_paid_minor),
            amount_paid_units: i.amount_paid_minor,
            amount_due: t(due),
            amount_due_units: due,
            credit_applied: t(i.totals.credit_applied_minor),
            credit_applied_units: i.totals.credit_applied_minor,
            due_date: iso_seconds(i.due_at),
            paid_at: i.paid_at.map(iso_seconds),
            voided_at: i.voided_at.map(iso_seconds),
            created_on: iso_seconds(i.created_at),
            billing_address: i.billing_address.clone(),
            lines: i.lines.iter().map(|l| InvoiceLineOut::new(l, &i.currency)).collect(),
        }
    }
}
