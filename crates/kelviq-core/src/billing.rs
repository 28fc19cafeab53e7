//! Selling: what a plan costs for a charge period, the subscription record
//! and its state machine (what falls due next), and the money records.
//!
//! Amounts are integer minor units of the record's currency throughout.

use crate::money::{self, currency_exponent, PriceModel, Tier};
use crate::periods::{boundary, Interval};
use crate::plans::{ChargePeriod, PlanVersion};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A quantity asked for a feature (seats and other purchased units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureQuantity {
    pub identifier: String,
    pub quantity: u64,
}

/// One line of what a plan costs for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub description: String,
    pub amount_minor: i64,
    /// The feature identifier for per-unit lines.
    pub feature: Option<String>,
    pub quantity: Option<u64>,
}

impl Line {
    /// A line that is not per unit.
    pub fn plain(description: impl Into<String>, amount_minor: i64) -> Line {
        Line { description: description.into(), amount_minor, feature: None, quantity: None }
    }
}

/// What a plan costs for one period of a charge period, in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub currency: String,
    pub lines: Vec<Line>,
    pub total_minor: i64,
    /// Free-trial days the price offers (0: none).
    pub trial_days: i64,
    pub tax_behavior: String,
    pub free: bool,
}

/// Why a plan cannot be quoted; the field the caller got wrong and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteError {
    pub field: &'static str,
    pub message: String,
}

fn quote_err(field: &'static str, message: impl Into<String>) -> QuoteError {
    QuoteError { field, message: message.into() }
}

/// The stored price model of a charge of a feature group.
fn charge_model(group_model: &str, charge: &Value) -> PriceModel {
    let amount = charge["amount_minor"].as_i64().unwrap_or(0);
    let tiers = || -> Vec<Tier> {
        charge["tiers"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| Tier {
                        up_to: t["up_to"].as_u64(),
                        unit_micro: t["unit_micro"].as_i64().unwrap_or(0),
                        flat_minor: t["flat_minor"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    match group_model {
        "PACKAGE" => {
            PriceModel::Package { block_size: charge["block_size"].as_u64().unwrap_or(1), block_minor: amount }
        }
        "TIERED" => PriceModel::Graduated(tiers()),
        "VOLUME" => PriceModel::Volume(tiers()),
        "STAIRSTEP" => PriceModel::StairStep(tiers()),
        _ => PriceModel::Flat { unit_micro: amount.saturating_mul(1_000_000) },
    }
}

/// Prices `plan` for `period` in `currency` (the plan's first paid currency
/// when `None`), with `quantities` for per-unit features. `feature_identifier`
/// maps a stored feature id to its identifier.
pub fn quote(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: Option<&str>,
    quantities: &[FeatureQuantity],
    feature_identifier: &dyn Fn(&str) -> Option<String>,
) -> Result<Quote, QuoteError> {
    let enabled: Vec<&Value> = plan.prices.iter().filter(|p| p["enabled"].as_bool().unwrap_or(true)).collect();
    if enabled.is_empty() {
        return Err(quote_err("plan_identifier", "This plan has no price."));
    }
    let wanted = currency.map(str::to_ascii_uppercase);
    let price = match &wanted {
        Some(c) => enabled
            .iter()
            .find(|p| p["currency"].as_str() == Some(c.as_str()) && p["price_type"] == "PAID")
            .or_else(|| enabled.iter().find(|p| p["price_type"] != "PAID"))
            .ok_or_else(|| quote_err("currency_code", format!("This plan has no price in {c}.")))?,
        None => enabled.iter().find(|p| p["price_type"] == "PAID").or(enabled.first()).expect("not empty"),
    };
    let currency = price["currency"].as_str().unwrap_or("USD").to_string();
    let tax_behavior = price["tax_behavior"].as_str().unwrap_or("UNSPECIFIED").to_string();
    if price["price_type"] != "PAID" {
        if period != ChargePeriod::OneTime {
            return Err(quote_err("charge_period", "This plan is free: use the charge period ONE_TIME."));
        }
        return Ok(Quote { currency, lines: Vec::new(), total_minor: 0, trial_days: 0, tax_behavior, free: true });
    }
    let mut lines = Vec::new();
    let mut offered = false;
    let mut used_features = Vec::new();
    for group in price["charge_catalog_price"].as_array().into_iter().flatten() {
        let Some(charge) = group["charges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["charge_period"].as_str() == Some(period.as_str())))
        else {
            continue;
        };
        offered = true;
        match group["feature"].as_str() {
            None => lines.push(Line::plain(plan.name.clone(), charge["amount_minor"].as_i64().unwrap_or(0))),
            Some(feature_id) => {
                if group["payment_type"] == "PAY_AS_YOU_GO" {
                    continue; // billed in arrears from metered usage
                }
                let identifier = feature_identifier(feature_id).unwrap_or_else(|| feature_id.to_string());
                let min = charge["advanced"]["min_quantity"].as_u64();
                let max = charge["advanced"]["max_quantity"].as_u64();
                let asked = quantities.iter().find(|q| q.identifier == identifier).map(|q| q.quantity);
                let quantity = asked.or(min).unwrap_or(0);
                if min.is_some_and(|m| quantity < m) || max.is_some_and(|m| quantity > m) {
                    return Err(quote_err(
                        "features",
                        format!(
                            "The quantity of {identifier} must be from {} to {}.",
                            min.unwrap_or(0),
                            max.map_or("unlimited".to_string(), |m| m.to_string())
                        ),
                    ));
                }
                used_features.push(identifier.clone());
                let amount = charge_model(group["price_model"].as_str().unwrap_or("FLAT"), charge).charge(quantity);
                lines.push(Line {
                    description: format!("{identifier} × {quantity}"),
                    amount_minor: amount,
                    feature: Some(identifier),
                    quantity: Some(quantity),
                });
            }
        }
    }
    if !offered {
        return Err(quote_err("charge_period", format!("This plan has no {} price.", period.as_str())));
    }
    if let Some(q) = quantities.iter().find(|q| !used_features.contains(&q.identifier)) {
        return Err(quote_err("features", format!("{} has no per-unit price on this plan.", q.identifier)));
    }
    let total_minor = lines.iter().map(|l| l.amount_minor).sum();
    let trial_days = if price["free_trial"].as_bool().unwrap_or(false) && period.is_recurring() {
        price["trial_period"].as_i64().unwrap_or(0)
    } else {
        0
    };
    Ok(Quote { currency, lines, total_minor, trial_days, tax_behavior, free: false })
}

/// Subscription statuses (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Superseded,
}

impl SubStatus {
    pub const ALL: [SubStatus; 7] = [
        SubStatus::Incomplete,
        SubStatus::IncompleteExpired,
        SubStatus::Trialing,
        SubStatus::Active,
        SubStatus::PastDue,
        SubStatus::Canceled,
        SubStatus::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Incomplete => "incomplete",
            SubStatus::IncompleteExpired => "incomplete_expired",
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        SubStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a subscription in this status grants its plan's entitlements.
    /// `past_due` does, during the grace period (seed 004).
    pub fn grants(self) -> bool {
        matches!(self, SubStatus::Trialing | SubStatus::Active | SubStatus::PastDue)
    }
}

/// A change to apply when the current period ends (a downgrade).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    pub plan_id: uuid::Uuid,
    pub plan_identifier: String,
    pub plan_name: String,
    pub plan_version: i64,
    pub product_id: uuid::Uuid,
    pub charge_period: ChargePeriod,
    pub features: Vec<FeatureQuantity>,
    pub amount_minor: i64,
}

/// A subscription or a one-time purchase (`billing_type` ONE_TIME): both grant
/// the plan's entitlements while they are live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: uuid::Uuid,
    pub customer_uuid: uuid::Uuid,
    pub customer_id: String,
    pub plan_id: uuid::Uuid,
    pub plan_identifier: String,
    pub plan_name: String,
    pub plan_version: i64,
    pub product_id: uuid::Uuid,
    pub charge_period: ChargePeriod,
    pub currency: String,
    /// What one period costs.
    pub amount_minor: i64,
    pub features: Vec<FeatureQuantity>,
    pub status: SubStatus,
    pub started_at: DateTime<Utc>,
    /// Where billing periods are counted from (the start, or the end of the trial).
    pub anchor_at: DateTime<Utc>,
    /// How many periods since the anchor the current one is.
    pub period_index: i64,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    /// When a scheduled cancellation takes effect.
    pub cancel_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub cancellation_reason: Option<String>,
    pub cancellation_feedback: Option<String>,
    pub cancellation_comment: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub pending_change: Option<PendingChange>,
    /// Owed to the customer, taken off the next invoice.
    pub credit_minor: i64,
    /// Owed by the customer, added to the next invoice (PRORATE_NEXT_INVOICE).
    pub debit_minor: i64,
    pub payment_method_id: Option<i64>,
    pub past_due_since: Option<DateTime<Utc>>,
    pub retries: u32,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub superseded_by: Option<uuid::Uuid>,
    /// The checkout session that created it, if any.
    pub checkout_session: Option<String>,
    /// The order of a failed renewal being retried.
    pub unpaid_order: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// What falls due for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The trial ends: charge the first period.
    TrialEnd,
    /// The period ends: apply any pending change and charge the next period.
    Renew,
    /// Retry a failed renewal charge.
    Retry,
    /// A scheduled cancellation takes effect.
    Cancel,
}

/// The retry schedule after a failed renewal: `retries` attempts spread
/// evenly over `grace_days`; when the last one fails the subscription is
/// cancelled. Access remains meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dunning {
    pub grace_days: i64,
    pub retries: u32,
}

impl Default for Dunning {
    fn default() -> Self {
        // Kelviq retries up to 8 times over 14 days (spec §4.7).
        Dunning { grace_days: 14, retries: 8 }
    }
}

impl Dunning {
    /// When the retry after `done` failed retries happens, or `None`: give up.
    pub fn next_retry(&self, since: DateTime<Utc>, done: u32) -> Option<DateTime<Utc>> {
        if done >= self.retries || self.grace_days <= 0 {
            return None;
        }
        let grace = Duration::days(self.grace_days).num_seconds();
        Some(since + Duration::seconds(grace * (done as i64 + 1) / self.retries as i64))
    }
}

impl Subscription {
    /// A new, active subscription (or one-time purchase) of `plan` from
    /// `at`, in its first period.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        customer_uuid: uuid::Uuid,
        customer_id: &str,
        plan: &PlanVersion,
        charge_period: ChargePeriod,
        currency: &str,
        amount_minor: i64,
        features: Vec<FeatureQuantity>,
        at: DateTime<Utc>,
    ) -> Subscription {
        let mut s = Subscription {
            id: uuid::Uuid::new_v4(),
            customer_uuid,
            customer_id: customer_id.to_string(),
            plan_id: plan.id,
            plan_identifier: plan.identifier.clone(),
            plan_name: plan.name.clone(),
            plan_version: plan.version,
            product_id: plan.product_id,
            charge_period,
            currency: currency.to_string(),
            amount_minor,
            features,
            status: SubStatus::Active,
            started_at: at,
            anchor_at: at,
            period_index: 0,
            period_start: None,
            period_end: None,
            trial_start: None,
            trial_end: None,
            cancel_at: None,
            canceled_at: None,
            cancellation_reason: None,
            cancellation_feedback: None,
            cancellation_comment: None,
            ended_at: None,
            pending_change: None,
            credit_minor: 0,
            debit_minor: 0,
            payment_method_id: None,
            past_due_since: None,
            retries: 0,
            next_retry_at: None,
            superseded_by: None,
            checkout_session: None,
            unpaid_order: None,
            created_at: at,
            modified_at: at,
        };
        if let Some((start, end)) = s.period_bounds(0) {
            (s.period_start, s.period_end) = (Some(start), Some(end));
        }
        s
    }

    pub fn interval(&self) -> Option<Interval> {
        self.charge_period.interval()
    }

    pub fn is_one_time(&self) -> bool {
        !self.charge_period.is_recurring()
    }

    /// The period that follows `index` from the anchor.
    pub fn period_bounds(&self, index: i64) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let i = self.interval()?;
        Some((boundary(self.anchor_at, i, index), boundary(self.anchor_at, i, index + 1)))
    }

    /// The next thing that falls due, and when.
    pub fn next_due(&self) -> Option<(DateTime<Utc>, Due)> {
        let scheduled_cancel = self.cancel_at.map(|at| (at, Due::Cancel));
        let natural = match self.status {
            SubStatus::Trialing => self.trial_end.map(|at| (at, Due::TrialEnd)),
            SubStatus::Active if !self.is_one_time() => self.period_end.map(|at| (at, Due::Renew)),
            SubStatus::PastDue => self.next_retry_at.map(|at| (at, Due::Retry)),
            _ => None,
        };
        if !self.status.grants() {
            return None;
        }
        match (scheduled_cancel, natural) {
            // A cancellation at or before the next renewal wins: nothing is charged at it.
            (Some(c), Some(n)) if c.0 <= n.0 => Some(c),
            (Some(c), None) => Some(c),
            (_, n) => n,
        }
    }

    /// `trialDaysRemaining`: whole days left, rounded up, while trialing.
    pub fn trial_days_remaining(&self, now: DateTime<Utc>) -> i64 {
        match (self.status, self.trial_end) {
            (SubStatus::Trialing, Some(end)) if end > now => {
                let secs = (end - now).num_seconds();
                (secs + 86_399) / 86_400
            }
            _ => 0,
        }
    }
}

/// A decimal string of minor units in `currency` (`"49.00"`).
pub fn amount_text(minor: i64, currency: &str) -> String {
    money::minor_to_decimal(minor, currency_exponent(currency).unwrap_or(2))
}

/// The same amount as a JSON number (refunds and transactions show numbers).
pub fn amount_number(minor: i64, currency: &str) -> Value {
    money::minor_number(minor, currency_exponent(currency).unwrap_or(2))
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

fn bp_of(amount: i64, bp: i64) -> i64 {
    ((amount as i128 * bp as i128 * 2 + 10_000) / 20_000) as i64
}

impl FeeSchedule {
    /// The fee lines for a charge of `amount_minor` (none on a zero charge).
    pub fn fees(&self, amount_minor: i64, subscription: bool) -> Vec<FeeLine> {
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
    pub status: String,
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
}

impl CheckoutSession {
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
    /// COMPLETE, FAILED, REFUNDED, PARTIAL_REFUND.
    pub status: String,
    /// OPEN, PAID, PAYMENT_FAILED.
    pub invoice_status: String,
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
}

/// A money movement: a charge or a refund, with the platform's fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: uuid::Uuid,
    pub order_id: String,
    pub transaction_type: String,
    /// success, failure.
    pub status: String,
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
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `ORD-YYYYMMDDHHMMSS-XXXXX` / `INV-…` (spec §2.4).
pub fn order_number(prefix: &str, at: DateTime<Utc>) -> String {
    let suffix: String = crate::ids::random_alphanumeric(16)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .take(5)
        .collect();
    format!("{prefix}-{}-{suffix}", at.format("%Y%m%d%H%M%S"))
}

/// How a plan change settles the part of the period already paid (spec §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Proration {
    /// Credit the unused old price, charge the rest of the period at the new one, collect now.
    ImmediateCharge,
    /// The same difference, put on the next invoice.
    ProrateNextInvoice,
    /// Switch now; nothing credited or charged until the next renewal.
    NoProration,
}

impl Proration {
    /// Reads `prorationBehavior`, or the legacy `probationBehaviour` values.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "IMMEDIATE_CHARGE" => Proration::ImmediateCharge,
            "PRORATE_NEXT_INVOICE" | "PRO_RATA" => Proration::ProrateNextInvoice,
            "NO_PRORATION" | "NEXT_BILLING_CYCLE" => Proration::NoProration,
            _ => return None,
        })
    }
}

/// What a plan change does, worked out before anything is written (so a
/// preview and the change itself agree to the unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePlan {
    /// Applied now (true) or at the end of the current period (a downgrade).
    pub now: bool,
    /// The billing cycle restarts now (the interval changed, or a trial ended now).
    pub restart_cycle: bool,
    /// Collected now, after credits.
    pub charge_now_minor: i64,
    /// Added to the customer's credit (taken off later invoices).
    pub credit_minor: i64,
    /// Added to the next invoice.
    pub debit_minor: i64,
    /// What the next invoice will be, with its lines.
    pub next_invoice_minor: i64,
    pub lines: Vec<Line>,
}

/// Plans a change of `sub` to a plan costing `new_minor` per `new_period`.
///
/// With `r` the seconds left in the current period and `T` its length,
/// `credit = round(old × r / T)`, `charge = round(new × r / T)` (rounding
/// half up, see [`crate::periods::prorate`]), `net = charge − credit`:
/// * `IMMEDIATE_CHARGE`: `net > 0` is collected now, `net < 0` becomes credit;
/// * `PRORATE_NEXT_INVOICE`: `net > 0` is added to the next invoice, `net < 0` becomes credit;
/// * `NO_PRORATION`: nothing.
///
/// Without an explicit behaviour an upgrade (`new ≥ old`) is `IMMEDIATE_CHARGE`
/// and a downgrade waits for the period end. A change of interval restarts the
/// cycle now: the new period's full price is collected now, less the unused
/// old price unless `NO_PRORATION`. During a trial nothing is charged: the
/// change applies now and the trial continues. The customer's existing credit
/// is taken off whatever is collected now.
pub fn plan_change(
    sub: &Subscription,
    new_minor: i64,
    new_period: ChargePeriod,
    behaviour: Option<Proration>,
    at: DateTime<Utc>,
) -> ChangePlan {
    let (start, end) = match (sub.period_start, sub.period_end) {
        (Some(s), Some(e)) if e > s => (s, e),
        _ => (at, at),
    };
    let old = sub.amount_minor;
    let next_renewal = |credit_left: i64, debit: i64| (new_minor + debit - credit_left).max(0);
    if sub.status == SubStatus::Trialing {
        return ChangePlan {
            now: true,
            restart_cycle: false,
            charge_now_minor: 0,
            credit_minor: 0,
            debit_minor: 0,
            next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
            lines: vec![],
        };
    }
    let p = crate::periods::prorate(old, new_minor, start, end, at);
    if new_period != sub.charge_period {
        let credit = if behaviour == Some(Proration::NoProration) { 0 } else { p.credit_minor };
        let available = credit + sub.credit_minor;
        let due = new_minor + sub.debit_minor;
        let charge = (due - available).max(0);
        let mut lines = vec![Line::plain(format!("New plan ({})", new_period.as_str()), new_minor)];
        if credit > 0 {
            lines.push(Line::plain("Unused time on the previous plan", -credit));
        }
        let credit_left = (available - due).max(0);
        return ChangePlan {
            now: true,
            restart_cycle: true,
            charge_now_minor: charge,
            credit_minor: credit_left - sub.credit_minor,
            debit_minor: -sub.debit_minor,
            next_invoice_minor: next_renewal(credit_left, 0),
            lines,
        };
    }
    let behaviour = match behaviour {
        Some(b) => b,
        None if new_minor >= old => Proration::ImmediateCharge,
        None => {
            return ChangePlan {
                now: false,
                restart_cycle: false,
                charge_now_minor: 0,
                credit_minor: 0,
                debit_minor: 0,
                next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
                lines: vec![],
            }
        }
    };
    let lines = if behaviour == Proration::NoProration {
        vec![]
    } else {
        vec![
            Line::plain("Remaining time on the new plan", p.charge_minor),
            Line::plain("Unused time on the previous plan", -p.credit_minor),
        ]
    };
    match behaviour {
        Proration::NoProration => ChangePlan {
            now: true,
            restart_cycle: false,
            charge_now_minor: 0,
            credit_minor: 0,
            debit_minor: 0,
            next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
            lines,
        },
        Proration::ImmediateCharge => {
            let (charge, credit) = if p.net_minor >= 0 {
                let used = p.net_minor.min(sub.credit_minor);
                (p.net_minor - used, -used)
            } else {
                (0, -p.net_minor)
            };
            ChangePlan {
                now: true,
                restart_cycle: false,
                charge_now_minor: charge,
                credit_minor: credit,
                debit_minor: 0,
                next_invoice_minor: next_renewal(sub.credit_minor + credit, sub.debit_minor),
                lines,
            }
        }
        Proration::ProrateNextInvoice => {
            let (debit, credit) = if p.net_minor >= 0 { (p.net_minor, 0) } else { (0, -p.net_minor) };
            ChangePlan {
                now: true,
                restart_cycle: false,
                charge_now_minor: 0,
                credit_minor: credit,
                debit_minor: debit,
                next_invoice_minor: next_renewal(sub.credit_minor + credit, sub.debit_minor + debit),
                lines,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::{PlanFields, PlanStatus};
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn plan(prices: Vec<Value>) -> PlanVersion {
        PlanVersion {
            id: uuid::Uuid::new_v4(),
            identifier: "pro".into(),
            version: 1,
            product_id: uuid::Uuid::new_v4(),
            name: "Pro".into(),
            fields: PlanFields::default(),
            prices,
            entitlements: vec![],
            status: PlanStatus::Published,
            created_at: at("2026-01-01T00:00:00Z"),
            modified_at: at("2026-01-01T00:00:00Z"),
            published_at: None,
            archived_at: None,
        }
    }

    fn paid() -> Value {
        json!({"price_type": "PAID", "currency": "USD", "enabled": true, "free_trial": true, "trial_period": 14,
        "tax_behavior": "EXCLUSIVE",
        "charge_catalog_price": [
            {"feature": null, "price_model": "FLAT", "payment_type": "ADVANCE_COMMITMENT",
             "charges": [{"charge_period": "MONTHLY", "amount_minor": 4900}, {"charge_period": "YEARLY", "amount_minor": 49000}]},
            {"feature": "f-seats", "price_model": "FLAT", "payment_type": "ADVANCE_COMMITMENT",
             "charges": [{"charge_period": "MONTHLY", "amount_minor": 1000, "advanced": {"min_quantity": 1, "max_quantity": 50}}]}
        ]})
    }

    fn ident(id: &str) -> Option<String> {
        (id == "f-seats").then(|| "seats".to_string())
    }

    #[test]
    fn quotes() {
        let p = plan(vec![paid()]);
        let q = quote(
            &p,
            ChargePeriod::Monthly,
            None,
            &[FeatureQuantity { identifier: "seats".into(), quantity: 5 }],
            &ident,
        )
        .unwrap();
        assert_eq!((q.total_minor, q.trial_days, q.currency.as_str()), (4900 + 5000, 14, "USD"));
        let q = quote(&p, ChargePeriod::Monthly, Some("usd"), &[], &ident).unwrap();
        assert_eq!(q.total_minor, 4900 + 1000, "the minimum quantity by default");
        assert_eq!(quote(&p, ChargePeriod::Yearly, None, &[], &ident).unwrap().total_minor, 49000);
        assert_eq!(quote(&p, ChargePeriod::Weekly, None, &[], &ident).unwrap_err().field, "charge_period");
        assert_eq!(quote(&p, ChargePeriod::Monthly, Some("EUR"), &[], &ident).unwrap_err().field, "currency_code");
        let too_many = [FeatureQuantity { identifier: "seats".into(), quantity: 51 }];
        assert_eq!(quote(&p, ChargePeriod::Monthly, None, &too_many, &ident).unwrap_err().field, "features");
        let unknown = [FeatureQuantity { identifier: "nope".into(), quantity: 1 }];
        assert_eq!(quote(&p, ChargePeriod::Monthly, None, &unknown, &ident).unwrap_err().field, "features");
        let free = plan(vec![json!({"price_type": "FREE", "currency": "USD", "enabled": true})]);
        assert!(quote(&free, ChargePeriod::OneTime, None, &[], &ident).unwrap().free);
        assert_eq!(quote(&free, ChargePeriod::Monthly, None, &[], &ident).unwrap_err().field, "charge_period");
        assert_eq!(
            quote(&plan(vec![]), ChargePeriod::Monthly, None, &[], &ident).unwrap_err().field,
            "plan_identifier"
        );
    }

    #[test]
    fn fees_and_dunning() {
        let f = FeeSchedule::default();
        let lines = f.fees(10_000, true);
        assert_eq!(lines.iter().map(|l| l.value_minor).collect::<Vec<_>>(), [350, 30, 50]);
        assert!(f.fees(0, true).is_empty());
        assert_eq!(bp_text(350), "3.5");
        assert_eq!(bp_text(50), "0.5");
        assert_eq!(bp_text(400), "4");
        let d = Dunning::default();
        let t = at("2026-03-01T00:00:00Z");
        assert_eq!(d.next_retry(t, 0), Some(at("2026-03-02T18:00:00Z")));
        assert_eq!(d.next_retry(t, 7), Some(at("2026-03-15T00:00:00Z")));
        assert_eq!(d.next_retry(t, 8), None);
        assert_eq!(amount_text(4900, "usd"), "49.00");
        assert_eq!(amount_text(500, "JPY"), "500");
    }

    fn monthly_sub(amount: i64) -> Subscription {
        let start = at("2026-04-01T00:00:00Z");
        let s = Subscription::start(
            uuid::Uuid::new_v4(),
            "c",
            &plan(vec![]),
            ChargePeriod::Monthly,
            "USD",
            amount,
            vec![],
            start,
        );
        assert_eq!(s.period_end, Some(at("2026-05-01T00:00:00Z")));
        s
    }

    #[test]
    fn plan_changes() {
        let half = at("2026-04-16T00:00:00Z");
        let sub = monthly_sub(10_000);
        // $100 → $200 at half the period (spec §4.7): collect $50 now.
        let up = plan_change(&sub, 20_000, ChargePeriod::Monthly, None, half);
        assert_eq!((up.now, up.charge_now_minor, up.credit_minor, up.next_invoice_minor), (true, 5_000, 0, 20_000));
        // The same on the next invoice.
        let next = plan_change(&sub, 20_000, ChargePeriod::Monthly, Some(Proration::ProrateNextInvoice), half);
        assert_eq!((next.charge_now_minor, next.debit_minor, next.next_invoice_minor), (0, 5_000, 25_000));
        // No proration: switch, nothing owed either way.
        let none = plan_change(&sub, 20_000, ChargePeriod::Monthly, Some(Proration::NoProration), half);
        assert_eq!((none.now, none.charge_now_minor, none.credit_minor, none.debit_minor), (true, 0, 0, 0));
        // A downgrade waits for the period end, unless a behaviour is asked for.
        let down = plan_change(&sub, 5_000, ChargePeriod::Monthly, None, half);
        assert_eq!((down.now, down.charge_now_minor), (false, 0));
        let down_now = plan_change(&sub, 5_000, ChargePeriod::Monthly, Some(Proration::ImmediateCharge), half);
        assert_eq!((down_now.now, down_now.charge_now_minor, down_now.credit_minor), (true, 0, 2_500));
        assert_eq!(down_now.next_invoice_minor, 2_500, "the credit comes off the next invoice");
        // Monthly → yearly restarts the cycle: the year now, less the unused month.
        let yearly = plan_change(&sub, 100_000, ChargePeriod::Yearly, None, half);
        assert_eq!((yearly.restart_cycle, yearly.charge_now_minor), (true, 95_000));
        let yearly_plain = plan_change(&sub, 100_000, ChargePeriod::Yearly, Some(Proration::NoProration), half);
        assert_eq!(yearly_plain.charge_now_minor, 100_000);
        // Existing credit pays first.
        let mut credited = monthly_sub(10_000);
        credited.credit_minor = 1_000;
        assert_eq!(plan_change(&credited, 20_000, ChargePeriod::Monthly, None, half).charge_now_minor, 4_000);
        // A trial changes plan without a charge.
        let mut trialing = monthly_sub(10_000);
        trialing.status = SubStatus::Trialing;
        assert_eq!(plan_change(&trialing, 20_000, ChargePeriod::Monthly, None, half).charge_now_minor, 0);
    }

    #[test]
    fn what_falls_due() {
        let mut s = monthly_sub(1_000);
        assert_eq!(s.next_due(), Some((at("2026-05-01T00:00:00Z"), Due::Renew)));
        s.cancel_at = Some(at("2026-05-01T00:00:00Z"));
        assert_eq!(s.next_due(), Some((at("2026-05-01T00:00:00Z"), Due::Cancel)), "a cancellation at the renewal wins");
        s.cancel_at = Some(at("2026-07-01T00:00:00Z"));
        assert_eq!(s.next_due().unwrap().1, Due::Renew, "a later cancellation waits");
        s.status = SubStatus::Canceled;
        assert_eq!(s.next_due(), None);
        let mut t = monthly_sub(1_000);
        t.status = SubStatus::Trialing;
        t.trial_end = Some(at("2026-04-15T00:00:00Z"));
        assert_eq!(t.next_due(), Some((at("2026-04-15T00:00:00Z"), Due::TrialEnd)));
        assert_eq!(t.trial_days_remaining(at("2026-04-01T12:00:00Z")), 14);
    }
}
