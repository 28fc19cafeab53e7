//! What the selling calls send and answer.

use super::*;
use crate::Error;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Parameters of [`Checkout::create_session`]; sent in camelCase, as the Python SDK does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCheckoutSession {
    pub plan_identifier: String,
    pub charge_period: ChargePeriod,
    pub success_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<FeatureQuantity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offering_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing_table_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_behavior: Option<TaxBehavior>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discounts_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_email: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_billing_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl CreateCheckoutSession {
    pub fn new(
        plan_identifier: impl Into<String>,
        charge_period: ChargePeriod,
        success_url: impl Into<String>,
    ) -> Self {
        Self {
            plan_identifier: plan_identifier.into(),
            charge_period,
            success_url: success_url.into(),
            customer_id: None,
            features: None,
            offering_id: None,
            pricing_table_id: None,
            rule_id: None,
            ip_address: None,
            trial_period: None,
            custom_amount: None,
            currency_code: None,
            tax_behavior: None,
            discounts_enabled: None,
            lock_email: None,
            default_billing_country: None,
            metadata: None,
        }
    }

    pub fn customer_id(mut self, id: impl Into<String>) -> Self {
        self.customer_id = Some(id.into());
        self
    }

    pub fn features(mut self, features: Vec<FeatureQuantity>) -> Self {
        self.features = Some(features);
        self
    }

    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    pub fn trial_period(mut self, days: i64) -> Self {
        self.trial_period = Some(days);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSessionCreated {
    pub checkout_session_id: String,
    pub checkout_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPlan {
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A subscription (or a one-time purchase, `billing_type` ONE_TIME).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub start_date: String,
    pub billing_type: String,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub billing_period_start_time: Option<String>,
    #[serde(default)]
    pub billing_period_end_time: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub recurrence: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub trial_days_remaining: i64,
    #[serde(default)]
    pub recurrence_unit: Option<i64>,
    #[serde(default)]
    pub recurrence_type: Option<String>,
    #[serde(default)]
    pub next_invoice_date: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    /// A product name in lists, an object on charges.
    #[serde(default)]
    pub product: Option<Value>,
    #[serde(default)]
    pub plan: Option<SubscriptionPlan>,
    #[serde(default)]
    pub features: Vec<Value>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ListSubscriptions {
    pub customer_id: Option<String>,
    /// Statuses, e.g. `["active", "trialing"]`.
    pub status: Vec<String>,
    pub start_date_after: Option<String>,
    pub start_date_before: Option<String>,
    pub modified_on_after: Option<String>,
    pub modified_on_before: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

/// Parameters of [`Subscriptions::update`] and [`Subscriptions::preview_update`].
#[derive(Debug, Clone)]
pub struct UpdateSubscription {
    pub plan_identifier: String,
    pub charge_period: ChargePeriod,
    pub proration_behavior: Option<ProrationBehavior>,
    pub features: Option<Vec<FeatureQuantity>>,
    /// `"now"` or a future ISO 8601 datetime (naive means UTC).
    pub trial_end: Option<String>,
    /// `activate_on_payment` only.
    pub payment_behavior: Option<String>,
    pub ip_address: Option<String>,
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
}

impl UpdateSubscription {
    pub fn new(plan_identifier: impl Into<String>, charge_period: ChargePeriod) -> Self {
        Self {
            plan_identifier: plan_identifier.into(),
            charge_period,
            proration_behavior: None,
            features: None,
            trial_end: None,
            payment_behavior: None,
            ip_address: None,
            offering_id: None,
            pricing_table_id: None,
            rule_id: None,
        }
    }

    /// The Python SDK's check: "now", or a datetime strictly in the future.
    pub(super) fn check(&self, now: DateTime<Utc>) -> Result<(), Error> {
        if let Some(t) = self.trial_end.as_deref().filter(|t| *t != "now") {
            let at = parse_datetime(t).ok_or_else(|| {
                validation(
                    "trialEnd",
                    "trialEnd must be 'now' or an ISO 8601 datetime string like '2025-12-31 23:59:59'.",
                )
            })?;
            if at <= now {
                return Err(validation("trialEnd", "trialEnd must be a future datetime."));
            }
        }
        if self.payment_behavior.as_deref().is_some_and(|p| p != "activate_on_payment") {
            return Err(validation("paymentBehavior", "Input should be 'activate_on_payment'"));
        }
        Ok(())
    }

    /// The body in the spelling the Python SDK sends (snake_case, `ipAddress` camel).
    pub(super) fn body(&self) -> Value {
        let mut b = Map::new();
        b.insert("plan_identifier".into(), json!(self.plan_identifier));
        b.insert("charge_period".into(), json!(self.charge_period));
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                b.insert(k.into(), v);
            }
        };
        put("proration_behavior", self.proration_behavior.map(|p| json!(p)));
        put("features", self.features.as_ref().map(|f| json!(f)));
        put("trial_end", self.trial_end.as_ref().map(|t| json!(t)));
        put("payment_behavior", self.payment_behavior.as_ref().map(|p| json!(p)));
        put("ipAddress", self.ip_address.as_ref().map(|p| json!(p)));
        put("offering_id", self.offering_id.as_ref().map(|p| json!(p)));
        put("pricing_table_id", self.pricing_table_id.as_ref().map(|p| json!(p)));
        put("rule_id", self.rule_id.as_ref().map(|p| json!(p)));
        Value::Object(b)
    }
}

/// ISO 8601 with or without a zone (naive is UTC), `T` or a space.
pub(super) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(&s.replace(' ', "T")) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| Utc.from_utc_datetime(&n))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSubscriptionResponse {
    pub subscription_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLineItem {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub amount: Option<f64>,
    #[serde(default)]
    pub amount_units: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewInvoice {
    #[serde(default)]
    pub amount_due: Option<f64>,
    #[serde(default)]
    pub amount_due_units: Option<i64>,
    #[serde(default)]
    pub next_payment_attempt: Option<String>,
    #[serde(default)]
    pub line_items: Vec<PreviewLineItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePreview {
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub recurring_amount: Option<f64>,
    #[serde(default)]
    pub recurring_amount_units: Option<i64>,
    #[serde(default)]
    pub amount_charged_immediately: Option<f64>,
    #[serde(default)]
    pub amount_charged_immediately_units: Option<i64>,
    #[serde(default)]
    pub next_invoice: Option<PreviewInvoice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: String,
}

/// Parameters of [`Subscriptions::create`].
#[derive(Debug, Clone)]
pub struct CreateSubscription {
    pub plan_identifier: String,
    pub charge_period: ChargePeriod,
    pub customer_id: String,
    pub success_url: Option<String>,
    pub features: Option<Vec<FeatureQuantity>>,
    pub ip_address: Option<String>,
}

/// Parameters of [`Charges::create`]: a one-time charge of the saved method.
#[derive(Debug, Clone, Default)]
pub struct CreateCharge {
    pub plan_identifier: String,
    pub customer_id: String,
    pub features: Option<Vec<FeatureQuantity>>,
    pub currency_code: Option<String>,
    pub custom_amount: Option<f64>,
    pub tax_behavior: Option<TaxBehavior>,
    pub ip_address: Option<String>,
}

/// Parameters of [`Refunds::create`]. No amount refunds what is left.
#[derive(Debug, Clone, Default)]
pub struct CreateRefund {
    pub order_id: String,
    pub amount_units: Option<i64>,
    pub amount: Option<f64>,
    pub reason: Option<RefundReason>,
    pub internal_note: Option<String>,
    /// A self-hosted kelviq server: give it back as credit on the
    /// subscription's next invoices instead of to the card.
    pub as_credit: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub amount_units: i64,
    pub amount: f64,
    #[serde(default)]
    pub internal_note: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    pub status: RefundStatus,
    /// A self-hosted kelviq server: given back as credit.
    #[serde(default)]
    pub as_credit: bool,
    #[serde(default)]
    pub order: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeComponent {
    pub name: String,
    #[serde(default)]
    pub percentage: Option<String>,
    pub value_units: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: String,
    #[serde(default)]
    pub order: Map<String, Value>,
    pub created_on: String,
    pub currency: String,
    pub currency_symbol: String,
    pub amount_total: f64,
    pub mor_fee: f64,
    #[serde(default)]
    pub mor_fee_breakdown: Vec<FeeComponent>,
    pub collected_tax: f64,
    pub net_payout: f64,
    pub status: TransactionStatus,
    pub transaction_type: String,
    pub payment_method_type: String,
    #[serde(default)]
    pub available_on: Option<String>,
    pub is_settled: bool,
    #[serde(default)]
    pub payment_method_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodCustomer {
    pub customer_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethod {
    pub id: i64,
    pub customer: PaymentMethodCustomer,
    pub method_type: String,
    #[serde(default)]
    pub method_data: Map<String, Value>,
    pub is_default: bool,
    pub status: String,
    pub created_on: String,
    pub modified_on: String,
}

/// List filters of refunds and transactions.
#[derive(Debug, Clone, Default)]
pub struct ListMoney {
    pub search: Option<String>,
    pub status: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub page_size: Option<u32>,
    pub page: Option<u32>,
}

impl ListMoney {
    pub(super) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("search", &self.search),
            ("status", &self.status),
            ("start_date", &self.start_date),
            ("end_date", &self.end_date),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(s) = self.page_size {
            q.push(("page_size", s.to_string()));
        }
        if let Some(p) = self.page {
            q.push(("page", p.to_string()));
        }
        q
    }
}
