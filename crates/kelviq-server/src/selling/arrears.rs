//! Usage billed in arrears: a subscription's pay-as-you-go charges and the
//! usage counted in its billing periods, read before the work that bills
//! them begins (a transaction never waits for another pool connection).

use crate::error::ServiceResult;
use crate::state::AppState;
use crate::usage::engine::{self, Counters};
use chrono::{DateTime, Utc};
use kelviq_core::billing::{
    arrears_lines, committed_meters, metered_charges, overage_lines, CommittedMeter, Line, MeteredCharge, SubStatus,
    Subscription,
};
use kelviq_core::plans::PlanVersion;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// What a subscription's plan bills in arrears, and the customer's usage.
#[derive(Debug, Default)]
pub struct Metered {
    /// The plan version it was read for.
    plan_id: Option<uuid::Uuid>,
    charges: Vec<MeteredCharge>,
    /// Committed meters with a soft limit: their overage is billed in arrears.
    committed: Vec<CommittedMeter>,
    counters: Counters,
}

impl Metered {
    /// Whether it was read for the subscription as it is now.
    pub fn is_for(&self, s: &Subscription) -> bool {
        self.plan_id.is_none() || self.plan_id == Some(s.plan_id)
    }

    /// The usage lines due at `at` for the subscription's current period
    /// (and late usage of earlier ones); `close` ends the period. The
    /// subscription records what was billed.
    pub fn lines(&self, s: &mut Subscription, at: DateTime<Utc>, close: bool) -> Vec<Line> {
        let (Some(start), Some(end)) = (s.period_start, s.period_end) else { return Vec::new() };
        let usage = |feature: &str, start: DateTime<Utc>| self.counters.get(feature, to_micros(start)).max(0) as u64;
        // A free trial's usage is billed only for the charges that say so.
        let trial = s.status == SubStatus::Trialing;
        let charges: Vec<MeteredCharge> =
            self.charges.iter().filter(|c| !trial || c.bill_trial_usage).cloned().collect();
        let mut lines = match charges.is_empty() {
            true => Vec::new(),
            false => arrears_lines(&mut s.billed_usage, &charges, &usage, (start, end), at, close),
        };
        // Overage counts from the end of the trial.
        if !self.committed.is_empty() && !trial {
            let since = s.trial_end.filter(|t| *t <= at).unwrap_or(s.started_at);
            let (meters, anchor) = (&self.committed, s.started_at);
            lines.extend(overage_lines(&mut s.billed_overage, meters, anchor, &usage, (since, at), close));
        }
        lines
    }
}

/// Reads what `s` bills in arrears, with the usage so far.
pub async fn metered(state: &AppState, tenant: &Tenant, s: &Subscription) -> ServiceResult<Metered> {
    Ok(metered_many(state, tenant, std::slice::from_ref(s)).await?.pop().unwrap_or_default())
}

/// [`metered`] for the subscription `id` as it is now (read without a lock),
/// before a request's work begins; nothing when there is no such subscription.
pub async fn metered_of(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Metered> {
    match state.store.find_doc::<Subscription>(kelviq_store::DocTable::Subscriptions, tenant, id).await? {
        Some(s) => metered(state, tenant, &s).await,
        None => Ok(Metered::default()),
    }
}

/// The answer when a subscription changed between reading its usage and locking it.
pub fn changed_meanwhile() -> crate::error::ServiceError {
    crate::error::ServiceError::Conflict("The subscription changed meanwhile; try again.".into())
}

/// [`metered`] for many subscriptions at once: each plan, what it grants
/// and the feature identifiers read once.
pub async fn metered_many(state: &AppState, tenant: &Tenant, subs: &[Subscription]) -> ServiceResult<Vec<Metered>> {
    type Read = Option<(Arc<PlanVersion>, Arc<Vec<Arc<engine::GrantDef>>>)>;
    let mut plans: HashMap<uuid::Uuid, Read> = HashMap::new();
    let mut identifiers = None;
    let mut out = Vec::with_capacity(subs.len());
    let mut counted = Vec::new();
    for s in subs {
        if s.is_one_time() {
            out.push(Metered::default());
            continue;
        }
        if let Entry::Vacant(slot) = plans.entry(s.plan_id) {
            slot.insert(match state.store.find_plan_version(tenant, s.plan_id).await? {
                Some(plan) => Some((Arc::new(plan), engine::plan_grants(state, tenant, s.plan_id).await?)),
                None => None,
            });
        }
        let Some((plan, grants)) = &plans[&s.plan_id] else {
            out.push(Metered::default());
            continue;
        };
        if identifiers.is_none() {
            identifiers = Some(super::feature_identifiers(state, tenant).await?);
        }
        let ids = identifiers.as_ref().expect("read");
        let identifier = |id: &str| ids.get(id).cloned();
        let charges = metered_charges(plan, s.charge_period, &s.currency, &identifier);
        let entitlement =
            |feature: &str| grants.iter().find(|g| g.feature == feature).map(|g| (g.feature_type, g.details.clone()));
        let bought = |feature: &str| s.features.iter().find(|q| q.identifier == feature).map(|q| q.quantity);
        let committed = committed_meters(plan, s.charge_period, &s.currency, &identifier, &entitlement, &bought);
        if !charges.is_empty() || !committed.is_empty() {
            counted.push((out.len(), s.customer_id.as_str()));
        }
        out.push(Metered { plan_id: Some(s.plan_id), charges, committed, counters: Default::default() });
    }
    // The usage of every customer with something to bill, in one read.
    let customers: Vec<&str> = counted.iter().map(|c| c.1).collect();
    for ((i, _), counters) in counted.iter().zip(engine::counters_many(state, tenant, &customers).await?) {
        out[*i].counters = counters;
    }
    Ok(out)
}
