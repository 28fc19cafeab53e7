//! Invoices on a self-hosted kelviq server: one per order, with typed
//! lines (usage with its tier breakdown) and totals; the upcoming invoice
//! of a subscription; voiding and paying a failed one.

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use reqwest::Method;
use serde::Deserialize;

/// An invoice. Money is a decimal string beside its integer minor units.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// Empty for an upcoming invoice.
    pub id: String,
    /// `INV-000042`, sequential per environment; empty for an upcoming invoice.
    pub number: String,
    /// DRAFT, OPEN, PAID, PAYMENT_FAILED, VOID or UNCOLLECTIBLE.
    pub status: String,
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
    pub billing_address: Option<serde_json::Value>,
    pub lines: Vec<InvoiceLine>,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// BASE, QUANTITY, USAGE, PRORATION, DISCOUNT, TAX, CREDIT or LATE_USAGE.
    pub kind: String,
    pub description: String,
    pub feature_id: Option<String>,
    pub quantity: Option<u64>,
    pub unit_amount: Option<String>,
    pub amount: String,
    pub amount_units: i64,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub tiers: Vec<InvoiceTier>,
}

/// A tier's share of a usage line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceTier {
    /// None: the last tier, without bound.
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_amount: String,
    pub flat_amount: String,
    pub amount: String,
    pub amount_units: i64,
}

/// Which invoices [`Invoices::list`] answers (all when empty).
#[derive(Debug, Clone, Default)]
pub struct ListInvoices {
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    /// `YYYY-MM-DD`, issued on or after.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`, issued on or before.
    pub end_date: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

pub struct Invoices<'a> {
    http: &'a Http,
}

impl<'a> Invoices<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    /// A page of invoices, newest first.
    pub async fn list(&self, q: ListInvoices) -> Result<Page<Invoice>, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let texts = [
            ("customer_id", q.customer_id),
            ("subscription_id", q.subscription_id),
            ("status", q.status),
            ("start_date", q.start_date),
            ("end_date", q.end_date),
        ];
        query.extend(texts.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        query.extend(q.page.map(|p| ("page", p.to_string())));
        query.extend(q.page_size.map(|p| ("page_size", p.to_string())));
        decode(self.http.request(Method::GET, self.url(&["invoices"]), &query, None).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<Invoice, Error> {
        decode(self.http.request(Method::GET, self.url(&["invoices", id]), &[], None).await?)
    }

    /// What the subscription's next invoice would be if its period ended now.
    pub async fn upcoming(&self, subscription_id: &str) -> Result<Invoice, Error> {
        let url = self.url(&["subscriptions", subscription_id, "upcoming-invoice"]);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }

    /// The invoice as a document: `"html"` or `"pdf"`, as bytes.
    pub async fn document(&self, id: &str, format: &str) -> Result<Vec<u8>, Error> {
        self.http.download(self.url(&["invoices", id, "document"]), &[("format", format.to_string())]).await
    }

    /// Voids an unpaid invoice.
    pub async fn void(&self, id: &str) -> Result<Invoice, Error> {
        let body = serde_json::json!({});
        decode(self.http.request(Method::POST, self.url(&["invoices", id, "void"]), &[], Some(&body)).await?)
    }

    /// Tries now to collect an invoice whose payment failed.
    pub async fn pay(&self, id: &str) -> Result<Invoice, Error> {
        let body = serde_json::json!({});
        decode(self.http.request(Method::POST, self.url(&["invoices", id, "pay"]), &[], Some(&body)).await?)
    }
}
