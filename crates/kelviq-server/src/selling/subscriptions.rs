//! Changing and cancelling subscriptions.

use super::payments::{charging, Op};
use super::records::*;
use super::renewals::*;
use super::*;
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{plan_change, FeatureQuantity, Order, Proration, Quote, SubStatus, Subscription};
use kelviq_core::events::{self};
use kelviq_core::plans::{ChargePeriod, PlanVersion};
use kelviq_core::Tenant;
use kelviq_store::{DocTable, Filter};

/// A subscription change request, parsed.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub plan: PlanVersion,
    pub period: ChargePeriod,
    pub features: Vec<FeatureQuantity>,
    pub quote: Quote,
    pub proration: Option<Proration>,
    /// `trialEnd`: `Some(None)` is "now".
    pub trial_end: Option<Option<DateTime<Utc>>>,
    pub activate_on_payment: bool,
}

impl ChangeRequest {
    /// What the subscription takes on.
    pub fn adoption(&self) -> Adoption<'_> {
        Adoption {
            plan: &self.plan,
            period: self.period,
            features: self.features.clone(),
            amount_minor: self.quote.total_minor,
        }
    }
}

/// The request to move `s` to a published plan, period and quantities,
/// priced in the subscription's currency; the API's defaults otherwise.
pub async fn plan_change_request(
    state: &AppState,
    tenant: &Tenant,
    s: &Subscription,
    identifier: &str,
    period: ChargePeriod,
    features: Vec<FeatureQuantity>,
) -> ServiceResult<ChangeRequest> {
    let plan = super::published_plan(state, tenant, identifier).await?;
    let identifiers = super::feature_identifiers(state, tenant).await?;
    let quote = super::quote_plan(&plan, period, Some(&s.currency), &features, &identifiers)?;
    Ok(ChangeRequest { plan, period, features, quote, proration: None, trial_end: None, activate_on_payment: false })
}

/// Whether a subscription can be changed through `update/`.
pub fn check_changeable(s: &Subscription) -> ServiceResult<()> {
    if s.is_one_time() {
        return Err(ServiceError::BadRequest(
            "Upgrading from a free or one-time plan is not supported here; start a checkout for the new plan.".into(),
        ));
    }
    if !s.status.grants() {
        return Err(ServiceError::BadRequest(format!("A {} subscription cannot be changed.", s.status.as_str())));
    }
    Ok(())
}

/// Applies a plan change (or trial change) now or schedules it; returns the
/// id of the subscription that carries on (a new one with `activate_on_payment`).
pub async fn change_subscription(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    req: ChangeRequest,
) -> ServiceResult<uuid::Uuid> {
    charging(state, tenant, Op::request(), move || Box::pin(change_now(state, tenant, id, req.clone()))).await
}

async fn change_now(state: &AppState, tenant: &Tenant, id: &str, req: ChangeRequest) -> ServiceResult<uuid::Uuid> {
    let now = tenant_now(state, tenant).await?;
    let metered = super::arrears::metered_of(state, tenant, id).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut s: Subscription = w.lock(DocTable::Subscriptions, id).await?.ok_or_else(sub_not_found)?;
    check_changeable(&s)?;
    if !metered.is_for(&s) {
        return Err(super::arrears::changed_meanwhile());
    }
    if req.quote.currency != s.currency {
        return Err(ServiceError::field("plan_identifier", format!("The new plan has no price in {}.", s.currency)));
    }
    let p = parties(&mut w, &s.customer_id, s.product_id).await?;
    let before = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    let old_plan = s.plan_id;
    // A trial ending now is billed as a fresh cycle of the new plan.
    let end_trial_now = matches!(req.trial_end, Some(None)) && s.status == SubStatus::Trialing;
    let same_plan = req.plan.id == s.plan_id && req.period == s.charge_period && req.features == s.features;
    if req.activate_on_payment && !same_plan {
        let change =
            plan_change(&s, req.quote.total_minor, req.period, req.proration.or(Some(Proration::ImmediateCharge)), now);
        // The usage so far is billed at the old prices once the new plan is
        // paid for; the new subscription bills only what follows.
        let mut billed = s.clone();
        let usage = metered.lines(&mut billed, now, change.restart_cycle);
        let mut next = billed.clone();
        next.id = uuid::Uuid::new_v4();
        next.status = SubStatus::Incomplete;
        next.adopt_plan(req.adoption());
        next.created_at = now;
        next.modified_at = now;
        next.credit_minor = s.credit_minor + change.credit_minor;
        next.debit_minor = s.debit_minor + change.debit_minor;
        if change.restart_cycle {
            next.restart_cycle(now);
        }
        let order = charge_subscription(
            state,
            &mut w,
            &next,
            &p,
            change.lines.clone(),
            change.charge_now_minor,
            OrderKind::Change,
            now,
        )
        .await?;
        order_events(&mut w, &order, &p, Some(pay_link(state, tenant, &order)), OrderNews::Created).await?;
        if order.status == OrderStatus::Complete {
            if !usage.is_empty() {
                bill_final_usage(state, &mut w, &billed, &p, usage, now).await?;
            }
            s.billed_usage = billed.billed_usage;
            s.supersede(&mut next, now);
            crate::licenses::follow_subscription(&mut w, s.id, next.id, now).await?;
            save_subscription(&mut w, &s).await?;
            save_subscription(&mut w, &next).await?;
            subscription_event(&mut w, "subscription.plan_changed", &next, &p, before.as_object().cloned(), now)
                .await?;
        } else {
            next.status = SubStatus::IncompleteExpired;
            save_subscription(&mut w, &next).await?;
        }
        w.entitlements_changed(&s.customer_id, now).await?;
        finish(state, w).await?;
        return Ok(next.id);
    }
    if let Some(Some(end)) = req.trial_end {
        s.status = SubStatus::Trialing;
        s.trial_start = s.trial_start.or(Some(now));
        s.trial_end = Some(end);
        s.period_start = Some(now);
        s.period_end = Some(end);
    }
    if end_trial_now {
        s.trial_end = Some(now);
        s.status = SubStatus::Active;
    }
    if !same_plan || end_trial_now {
        let change = if end_trial_now {
            s.adopt_plan(req.adoption());
            s.restart_cycle(now);
            let lines = req.quote.lines.clone();
            let order =
                charge_subscription(state, &mut w, &s, &p, lines, req.quote.total_minor, OrderKind::Change, now)
                    .await?;
            settle_immediate(state, &mut s, &order, now);
            order_events(&mut w, &order, &p, Some(pay_link(state, tenant, &order)), OrderNews::Created).await?;
            None
        } else {
            Some(plan_change(&s, req.quote.total_minor, req.period, req.proration, now))
        };
        if let Some(change) = change {
            if change.now {
                // The old plan's usage so far is billed now; a new cycle ends the period.
                let usage = metered.lines(&mut s, now, change.restart_cycle);
                if !usage.is_empty() {
                    bill_final_usage(state, &mut w, &s, &p, usage, now).await?;
                }
                s.adopt_plan(req.adoption());
                s.pending_change = None;
                s.credit_minor += change.credit_minor;
                s.debit_minor += change.debit_minor;
                if change.restart_cycle {
                    s.restart_cycle(now);
                }
                if change.charge_now_minor > 0 {
                    let order = charge_subscription(
                        state,
                        &mut w,
                        &s,
                        &p,
                        change.lines.clone(),
                        change.charge_now_minor,
                        OrderKind::Change,
                        now,
                    )
                    .await?;
                    settle_immediate(state, &mut s, &order, now);
                    order_events(&mut w, &order, &p, Some(pay_link(state, tenant, &order)), OrderNews::Created).await?;
                }
            } else {
                s.pending_change = Some(kelviq_core::billing::PendingChange {
                    plan_id: req.plan.id,
                    plan_identifier: req.plan.identifier.clone(),
                    plan_name: req.plan.name.clone(),
                    plan_version: req.plan.version,
                    product_id: req.plan.product_id,
                    charge_period: req.period,
                    features: req.features.clone(),
                    amount_minor: req.quote.total_minor,
                });
            }
        }
    }
    s.modified_at = now;
    save_subscription(&mut w, &s).await?;
    let p2 = parties(&mut w, &s.customer_id, s.product_id).await?;
    let after = events::subscription_object(&s, &p2.sold(s.product_id), tenant);
    let previous = previous_attributes(&before, &after);
    if s.plan_id != old_plan {
        subscription_event(&mut w, "subscription.plan_changed", &s, &p2, before.as_object().cloned(), now).await?;
    } else if !previous.is_empty() || s.pending_change.is_some() {
        subscription_event(&mut w, "subscription.updated", &s, &p2, Some(previous), now).await?;
    }
    w.entitlements_changed(&s.customer_id, now).await?;
    finish(state, w).await?;
    Ok(s.id)
}

/// After an immediate charge: a declined one puts the subscription past due.
pub(super) fn settle_immediate(state: &AppState, s: &mut Subscription, order: &Order, now: DateTime<Utc>) {
    if order.status != OrderStatus::Complete {
        s.fall_past_due(now, &order.id, &dunning(state));
    }
}

pub fn sub_not_found() -> ServiceError {
    ServiceError::NotFound("Subscription not found.".into())
}

/// A cancellation request.
#[derive(Debug, Clone)]
pub struct Cancellation {
    pub kind: String,
    pub date: Option<chrono::NaiveDate>,
    pub feedback: Option<String>,
    pub comment: Option<String>,
    /// CANCELLED_BY_MERCHANT (the API) or CANCELLED_BY_CUSTOMER (the portal).
    pub by: &'static str,
}

pub async fn cancel_subscription(state: &AppState, tenant: &Tenant, id: &str, c: Cancellation) -> ServiceResult<()> {
    // Cancelling now bills the period's usage.
    charging(state, tenant, Op::request(), move || Box::pin(cancel_now(state, tenant, id, c.clone()))).await
}

async fn cancel_now(state: &AppState, tenant: &Tenant, id: &str, c: Cancellation) -> ServiceResult<()> {
    let now = tenant_now(state, tenant).await?;
    let metered = super::arrears::metered_of(state, tenant, id).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut s: Subscription = w.lock(DocTable::Subscriptions, id).await?.ok_or_else(sub_not_found)?;
    if !metered.is_for(&s) {
        return Err(super::arrears::changed_meanwhile());
    }
    if !s.status.grants() && s.status != SubStatus::Incomplete {
        return Err(ServiceError::BadRequest(format!("A {} subscription cannot be cancelled.", s.status.as_str())));
    }
    let p = parties(&mut w, &s.customer_id, s.product_id).await?;
    let before = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    s.canceled_at = Some(now);
    s.cancellation_reason = Some(c.by.into());
    s.cancellation_feedback = c.feedback.clone();
    s.cancellation_comment = c.comment.clone();
    s.modified_at = now;
    let at = match c.kind.as_str() {
        "IMMEDIATE" => None,
        "CURRENT_PERIOD_ENDS" if s.is_one_time() => {
            return Err(ServiceError::field(
                "cancellation_type",
                "A one-time purchase has no period; cancel it IMMEDIATE.",
            ))
        }
        "CURRENT_PERIOD_ENDS" => s.period_end,
        _ => {
            let date = c
                .date
                .ok_or_else(|| ServiceError::field("cancellation_date", "This field is required for SPECIFIC_DATE."))?;
            let at = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            if at <= now {
                return Err(ServiceError::field("cancellation_date", "The cancellation date must be in the future."));
            }
            Some(at)
        }
    };
    match at {
        None => {
            // The usage of the part of the period that elapsed is billed now.
            let usage = metered.lines(&mut s, now, true);
            if !usage.is_empty() {
                bill_final_usage(state, &mut w, &s, &p, usage, now).await?;
            }
            s.end(now, c.by);
            save_subscription(&mut w, &s).await?;
            subscription_event(&mut w, "subscription.cancelled", &s, &p, None, now).await?;
        }
        Some(at) => {
            s.cancel_at = Some(at);
            save_subscription(&mut w, &s).await?;
            let after = events::subscription_object(&s, &p.sold(s.product_id), tenant);
            subscription_event(&mut w, "subscription.updated", &s, &p, Some(previous_attributes(&before, &after)), now)
                .await?;
        }
    }
    w.entitlements_changed(&s.customer_id, now).await?;
    finish(state, w).await?;
    Ok(())
}

/// Takes back a cancellation scheduled for later (at the period end or on a
/// date): the subscription renews again, as before it.
pub async fn resume_subscription(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<()> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut s: Subscription = w.lock(DocTable::Subscriptions, id).await?.ok_or_else(sub_not_found)?;
    if !s.status.grants() || s.cancel_at.is_none() {
        return Err(ServiceError::BadRequest("This subscription is not scheduled to be cancelled.".into()));
    }
    let p = parties(&mut w, &s.customer_id, s.product_id).await?;
    let before = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    (s.cancel_at, s.canceled_at, s.cancellation_reason) = (None, None, None);
    (s.cancellation_feedback, s.cancellation_comment) = (None, None);
    s.modified_at = now;
    save_subscription(&mut w, &s).await?;
    let after = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    subscription_event(&mut w, "subscription.updated", &s, &p, Some(previous_attributes(&before, &after)), now).await?;
    w.entitlements_changed(&s.customer_id, now).await?;
    finish(state, w).await?;
    Ok(())
}

/// Live subscriptions of a customer (for archive checks and entitlements).
pub async fn live_subscriptions(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
) -> ServiceResult<Vec<Subscription>> {
    let statuses = SubStatus::ALL.iter().filter(|s| s.grants()).map(|s| s.as_str().to_string()).collect();
    let filters = [Filter::Eq("customer_id", customer_id.to_string()), Filter::In("status", statuses)];
    Ok(state.store.list_docs(DocTable::Subscriptions, tenant, &filters, 1000, 0).await?)
}
