//! How a subscription moves between states: onto another plan, into a new
//! cycle, past due after a declined charge, superseded by its successor,
//! and ended. Each is a method that changes the record in memory; the
//! selling services write the result (with its order and events) in one
//! transaction.

use super::{Dunning, FeatureQuantity, SubStatus, Subscription};
use crate::plans::{ChargePeriod, PlanVersion};
use chrono::{DateTime, Utc};

/// What a subscription takes on when it changes plan.
#[derive(Debug, Clone)]
pub struct Adoption<'a> {
    pub plan: &'a PlanVersion,
    pub period: ChargePeriod,
    pub features: Vec<FeatureQuantity>,
    /// The new price per period.
    pub amount_minor: i64,
}

impl Subscription {
    /// Takes on a plan version, its charge period, quantities and price.
    /// The cycle carries on (see [`Subscription::restart_cycle`]).
    pub fn adopt_plan(&mut self, to: Adoption<'_>) {
        self.plan_id = to.plan.id;
        self.plan_identifier = to.plan.identifier.clone();
        self.plan_name = to.plan.name.clone();
        self.plan_version = to.plan.version;
        self.product_id = to.plan.product_id;
        self.features = to.features;
        self.amount_minor = to.amount_minor;
        self.tax_behavior = super::price_tax_behavior(to.plan, &self.currency);
        self.charge_period = to.period;
    }

    /// Starts a new cycle at `now` (a change of interval): the first period
    /// is counted from `now`.
    pub fn restart_cycle(&mut self, now: DateTime<Utc>) {
        self.anchor_at = now;
        self.period_index = 0;
        if let Some((start, end)) = self.period_bounds(0) {
            (self.period_start, self.period_end) = (Some(start), Some(end));
        }
    }

    /// A charge of `unpaid_order` was declined at `now`: the subscription is
    /// past due (access continues) and retried on the dunning schedule.
    pub fn fall_past_due(&mut self, now: DateTime<Utc>, unpaid_order: &str, dunning: &Dunning) {
        self.status = SubStatus::PastDue;
        self.past_due_since = Some(now);
        self.retries = 0;
        self.next_retry_at = dunning.next_retry(now, 0);
        self.unpaid_order = Some(unpaid_order.to_string());
    }

    /// `next` carries on from this subscription (a paid plan change that
    /// made a new one): it is live as this one was (trialing or active),
    /// and this one stops granting. A discount carries over.
    pub fn supersede(&mut self, next: &mut Subscription, now: DateTime<Utc>) {
        next.status = if self.status == SubStatus::Trialing { SubStatus::Trialing } else { SubStatus::Active };
        self.status = SubStatus::Superseded;
        self.superseded_by = Some(next.id);
        next.discount = self.discount.take();
        self.modified_at = now;
    }

    /// Ends the subscription at `at` for `reason` (the first cancellation
    /// time and reason given are kept).
    pub fn end(&mut self, at: DateTime<Utc>, reason: &str) {
        self.status = SubStatus::Canceled;
        self.ended_at = Some(at);
        self.cancel_at = None;
        self.next_retry_at = None;
        self.pending_change = None;
        if self.canceled_at.is_none() {
            self.canceled_at = Some(at);
        }
        if self.cancellation_reason.is_none() {
            self.cancellation_reason = Some(reason.into());
        }
    }
}
