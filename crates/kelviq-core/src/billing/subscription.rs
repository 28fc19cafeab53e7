//! The subscription record and its state machine: what falls due next.

use super::*;
use crate::periods::{boundary, Interval};
use crate::plans::{ChargePeriod, PlanVersion};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

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
    /// Usage billed in arrears, per feature and period (the latest few).
    #[serde(default)]
    pub billed_usage: Vec<BilledUsage>,
    /// How far each committed meter's overage was invoiced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub billed_overage: Vec<super::BilledOverage>,
    /// The price's `taxBehavior` (EXCLUSIVE, INCLUSIVE); None: the environment's default.
    #[serde(default)]
    pub tax_behavior: Option<String>,
    /// A discount code's terms while they last (the invoices they still cover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<crate::discounts::AppliedDiscount>,
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
            discount: None,
            checkout_session: None,
            unpaid_order: None,
            billed_usage: Vec::new(),
            billed_overage: Vec::new(),
            tax_behavior: price_tax_behavior(plan, currency),
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

    /// Where pay-as-you-go usage periods count from: during a free trial
    /// the trial's start (the trial is billed as a period of its own, when
    /// its charges bill trial usage), else the billing anchor.
    pub fn usage_anchor(&self) -> DateTime<Utc> {
        match (self.status, self.period_start) {
            (SubStatus::Trialing, Some(start)) => start,
            _ => self.anchor_at,
        }
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
