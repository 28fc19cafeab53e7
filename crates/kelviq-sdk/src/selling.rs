//! Selling: checkout, subscriptions, charges, refunds, transactions and
//! payment methods, with the Python SDK's client-side checks (§5.5) and its
//! enums (§5.6).

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            /// Raw strings are accepted wherever the enum is.
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(validation(stringify!($name), &format!("\"{other}\" is not one of {}", [$($text),+].join(", ")))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Billing cycles (spec §4.8).
    ChargePeriod {
        OneTime = "ONE_TIME",
        Monthly = "MONTHLY",
        Yearly = "YEARLY",
        Weekly = "WEEKLY",
        Daily = "DAILY",
        TwentyEightDays = "TWENTY_EIGHT_DAYS",
        ThreeMonths = "THREE_MONTHS",
        SixMonths = "SIX_MONTHS",
    }
);

string_enum!(
    CancellationType { Immediate = "IMMEDIATE", CurrentPeriodEnds = "CURRENT_PERIOD_ENDS", SpecificDate = "SPECIFIC_DATE" }
);

string_enum!(
    ProrationBehavior {
        ImmediateCharge = "IMMEDIATE_CHARGE",
        ProrateNextInvoice = "PRORATE_NEXT_INVOICE",
        NoProration = "NO_PRORATION",
    }
);

string_enum!(TaxBehavior { Inclusive = "INCLUSIVE", Exclusive = "EXCLUSIVE" });

string_enum!(
    RefundReason { Duplicate = "DUPLICATE", Fraudulent = "FRAUDULENT", RequestedByCustomer = "REQUESTED_BY_CUSTOMER", Other = "OTHER" }
);

string_enum!(
    RefundStatus { Pending = "PENDING", Processing = "PROCESSING", Succeeded = "SUCCEEDED", Failed = "FAILED", Canceled = "CANCELED" }
);

string_enum!(TransactionStatus { Success = "success", Failure = "failure", Pending = "pending" });

/// A pydantic-style validation error, raised before anything is sent.
fn validation(field: &str, message: &str) -> Error {
    Error::invalid_request(
        format!("Invalid parameters: {field} {message}"),
        Some(json!([{ "loc": [field], "msg": message, "type": "value_error" }])),
    )
}

/// A feature quantity (seats and other purchased units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureQuantity {
    pub identifier: String,
    pub quantity: i64,
}

impl FeatureQuantity {
    pub fn new(identifier: impl Into<String>, quantity: i64) -> Self {
        Self { identifier: identifier.into(), quantity }
    }
}

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
    fn check(&self, now: DateTime<Utc>) -> Result<(), Error> {
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
    fn body(&self) -> Value {
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
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
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
    fn query(&self) -> Vec<(&'static str, String)> {
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

pub struct Checkout<'a> {
    http: &'a Http,
}

impl<'a> Checkout<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `POST /checkout/`.
    pub async fn create_session(&self, params: CreateCheckoutSession) -> Result<CheckoutSessionCreated, Error> {
        if params.trial_period.is_some_and(|d| d < 1) {
            return Err(validation("trialPeriod", "Input should be greater than or equal to 1"));
        }
        if params.custom_amount.is_some_and(|a| !a.is_finite() || a <= 0.0) {
            return Err(validation("customAmount", "Input should be greater than 0"));
        }
        let body = serde_json::to_value(&params).expect("checkout serialises");
        let url = self.http.url(Host::Core, &["checkout"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Subscriptions<'a> {
    http: &'a Http,
}

impl<'a> Subscriptions<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `GET /subscriptions/`.
    pub async fn list(&self, params: ListSubscriptions) -> Result<Page<Subscription>, Error> {
        let mut q = Vec::new();
        for (k, v) in [
            ("customer_id", &params.customer_id),
            ("start_date_after", &params.start_date_after),
            ("start_date_before", &params.start_date_before),
            ("modified_on_after", &params.modified_on_after),
            ("modified_on_before", &params.modified_on_before),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if !params.status.is_empty() {
            q.push(("status", params.status.join(",")));
        }
        if let Some(p) = params.page {
            q.push(("page", p.to_string()));
        }
        if let Some(s) = params.page_size {
            q.push(("page_size", s.to_string()));
        }
        let url = self.http.url(Host::Core, &["subscriptions"], true);
        decode(self.http.request(Method::GET, url, &q, None).await?)
    }

    /// `GET /subscriptions/{id}/`.
    pub async fn retrieve(&self, id: &str) -> Result<Subscription, Error> {
        let url = self.http.url(Host::Core, &["subscriptions", id], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }

    /// `POST /subscriptions/create/`: for a customer with a saved payment method.
    pub async fn create(&self, params: CreateSubscription) -> Result<Subscription, Error> {
        let mut body = json!({
            "plan_identifier": params.plan_identifier,
            "charge_period": params.charge_period,
            "customer_id": params.customer_id,
        });
        if let Some(u) = params.success_url {
            body["success_url"] = json!(u);
        }
        if let Some(f) = params.features {
            body["features"] = json!(f);
        }
        if let Some(ip) = params.ip_address {
            body["ip_address"] = json!(ip);
        }
        let url = self.http.url(Host::Core, &["subscriptions", "create"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    /// `POST /subscriptions/{id}/update/`.
    pub async fn update(&self, id: &str, params: UpdateSubscription) -> Result<UpdateSubscriptionResponse, Error> {
        params.check(Utc::now())?;
        let url = self.http.url(Host::Core, &["subscriptions", id, "update"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&params.body())).await?)
    }

    /// `POST /subscriptions/{id}/update/preview/`: what an update would charge; changes nothing.
    pub async fn preview_update(&self, id: &str, params: UpdateSubscription) -> Result<UpdatePreview, Error> {
        params.check(Utc::now())?;
        let url = self.http.url(Host::Core, &["subscriptions", id, "update", "preview"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&params.body())).await?)
    }

    /// `POST /subscriptions/{id}/cancel/`. `date` (YYYY-MM-DD) is required for SPECIFIC_DATE.
    pub async fn cancel(
        &self,
        id: &str,
        cancellation_type: CancellationType,
        date: Option<&str>,
    ) -> Result<MessageResponse, Error> {
        if let Some(d) = date {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| validation("cancellationDate", "cancellationDate must be in YYYY-MM-DD format."))?;
        } else if cancellation_type == CancellationType::SpecificDate {
            return Err(validation(
                "cancellationDate",
                "cancellationDate is required when cancellationType is SPECIFIC_DATE.",
            ));
        }
        let mut body = json!({ "cancellation_type": cancellation_type });
        if let Some(d) = date {
            body["cancellation_date"] = json!(d);
        }
        let url = self.http.url(Host::Core, &["subscriptions", id, "cancel"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Charges<'a> {
    http: &'a Http,
}

impl<'a> Charges<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `POST /charges/`: charges the customer's saved method once (ONE_TIME).
    pub async fn create(&self, params: CreateCharge) -> Result<Subscription, Error> {
        if let Some(a) = params.custom_amount {
            if !a.is_finite() || a <= 0.0 {
                return Err(validation("customAmount", "Input should be greater than 0"));
            }
            if params.currency_code.is_none() {
                return Err(validation("currencyCode", "currencyCode is required when customAmount is set."));
            }
        }
        let mut body = json!({
            "plan_identifier": params.plan_identifier,
            "charge_period": "ONE_TIME",
            "customer_id": params.customer_id,
        });
        if let Some(f) = params.features {
            body["features"] = json!(f);
        }
        if let Some(c) = params.currency_code {
            body["currency_code"] = json!(c);
        }
        if let Some(a) = params.custom_amount {
            body["custom_amount"] = json!(a);
        }
        if let Some(t) = params.tax_behavior {
            body["tax_behavior"] = json!(t);
        }
        if let Some(ip) = params.ip_address {
            body["ip_address"] = json!(ip);
        }
        let url = self.http.url(Host::Core, &["charges"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Refunds<'a> {
    http: &'a Http,
}

impl<'a> Refunds<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    pub async fn list(&self, params: ListMoney) -> Result<Page<Refund>, Error> {
        let url = self.http.url(Host::Core, &["refunds"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }

    /// `POST /refunds/`.
    pub async fn create(&self, params: CreateRefund) -> Result<Refund, Error> {
        if params.order_id.is_empty() {
            return Err(validation("orderId", "String should have at least 1 character"));
        }
        if params.amount_units.is_some_and(|a| a < 1) {
            return Err(validation("amountUnits", "Input should be greater than or equal to 1"));
        }
        if params.amount.is_some_and(|a| !a.is_finite() || a <= 0.0) {
            return Err(validation("amount", "Input should be greater than 0"));
        }
        let mut body = json!({ "order_id": params.order_id });
        if let Some(u) = params.amount_units {
            body["amount_units"] = json!(u);
        }
        if let Some(a) = params.amount {
            body["amount"] = json!(a);
        }
        if let Some(r) = params.reason {
            body["reason"] = json!(r);
        }
        if let Some(n) = params.internal_note {
            body["internal_note"] = json!(n);
        }
        let url = self.http.url(Host::Core, &["refunds"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<Refund, Error> {
        let url = self.http.url(Host::Core, &["refunds", id], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }
}

pub struct Transactions<'a> {
    http: &'a Http,
}

impl<'a> Transactions<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `GET /transaction/` (singular, as the API spells it).
    pub async fn list(&self, params: ListMoney) -> Result<Page<Transaction>, Error> {
        let url = self.http.url(Host::Core, &["transaction"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }
}

pub struct PaymentMethods<'a> {
    http: &'a Http,
}

impl<'a> PaymentMethods<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    pub async fn list(
        &self,
        customer_id: Option<&str>,
        customer_email: Option<&str>,
        page_size: Option<u32>,
        page: Option<u32>,
    ) -> Result<Page<PaymentMethod>, Error> {
        let mut q = Vec::new();
        if let Some(c) = customer_id {
            q.push(("customer_id", c.to_string()));
        }
        if let Some(e) = customer_email {
            q.push(("customer_email", e.to_string()));
        }
        if let Some(s) = page_size {
            q.push(("page_size", s.to_string()));
        }
        if let Some(p) = page {
            q.push(("page", p.to_string()));
        }
        let url = self.http.url(Host::Core, &["payment-methods"], true);
        decode(self.http.request(Method::GET, url, &q, None).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_read_raw_strings() {
        assert_eq!("TWENTY_EIGHT_DAYS".parse::<ChargePeriod>().unwrap(), ChargePeriod::TwentyEightDays);
        assert!("QUARTERLY".parse::<ChargePeriod>().is_err());
        assert_eq!(ChargePeriod::ALL.len(), 8);
        assert_eq!(json!(ProrationBehavior::NoProration), json!("NO_PRORATION"));
        assert_eq!(CancellationType::SpecificDate.to_string(), "SPECIFIC_DATE");
    }

    #[test]
    fn trial_end_checks() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let mut u = UpdateSubscription::new("pro", ChargePeriod::Monthly);
        u.trial_end = Some("now".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2026-12-31 23:59:59".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2027-12-31T23:59:59Z".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2026-01-01 00:00:00".into());
        assert_eq!(u.check(now).unwrap_err().details().unwrap()[0]["loc"], json!(["trialEnd"]));
        u.trial_end = Some("someday".into());
        assert!(u.check(now).is_err());
        u.trial_end = None;
        u.payment_behavior = Some("sometime".into());
        assert!(u.check(now).is_err());
        let body = UpdateSubscription {
            ip_address: Some("1.2.3.4".into()),
            ..UpdateSubscription::new("pro", ChargePeriod::Yearly)
        }
        .body();
        assert_eq!(body, json!({"plan_identifier": "pro", "charge_period": "YEARLY", "ipAddress": "1.2.3.4"}));
    }
}
