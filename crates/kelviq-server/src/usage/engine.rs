//! The in-memory entitlement state behind the edge check.
//!
//! Per customer: what their live subscriptions and overrides grant (one
//! [`Grant`] per granting row) and their usage counters. Built from the
//! database on first use, changed in place by this process's usage writes,
//! and dropped (to be rebuilt on the next check) when the change feed says a
//! customer's subscriptions, overrides or usage changed, here or in another
//! process. A check that finds its customer in memory touches no database.

use super::items::Counted;
use super::tenant_map::{customer_hash, TenantMap};
use crate::error::ServiceResult;
use crate::selling::live_subscriptions;
use crate::state::AppState;
use crate::wire::usage::{CustomerEntitlementsOut, EntitlementRowOut};
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use kelviq_core::catalog::FeatureType;
use kelviq_core::entitlements::{
    boolean_row, combined_limit, customizable_row, meter_row, meter_window, rollover_carry, split_usage, RowState,
};
use kelviq_core::periods::{period_containing, Interval};
use kelviq_core::plans::EntitlementDetails;
use kelviq_core::timefmt::{from_micros, reset_at, to_micros};
use kelviq_core::{Environment, Tenant};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// What a plan grants for one feature: shared by every subscriber of the
/// plan version (one allocation, however many customers hold it).
#[derive(Debug, Clone, PartialEq)]
pub struct GrantDef {
    pub feature: String,
    pub feature_type: FeatureType,
    pub details: EntitlementDetails,
    /// The plan bills its usage in arrears (pay-as-you-go): it is counted
    /// per billing period.
    pub pay_as_you_go: bool,
}

/// What one granting row gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub def: Arc<GrantDef>,
    /// METER: the period limit before rollover (`None`: unlimited).
    pub limit: Option<i64>,
    /// Where the meter's periods are counted from.
    pub anchor: DateTime<Utc>,
    pub subscription_id: Option<uuid::Uuid>,
    pub overridden: bool,
    /// Pay-as-you-go: the subscription's billing anchor and interval, whose
    /// periods the usage is counted in (each billed when it ends).
    pub billing: Option<(DateTime<Utc>, Interval)>,
}

impl std::ops::Deref for Grant {
    type Target = GrantDef;
    fn deref(&self) -> &GrantDef {
        &self.def
    }
}

impl Grant {
    /// The usage period at `now` as (start in microseconds, 0 for never; end).
    pub fn window(&self, now: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
        if let Some((anchor, interval)) = self.billing {
            let (start, end) = period_containing(anchor, interval, now);
            return (to_micros(start), Some(end));
        }
        match meter_window(self.details.reset.as_deref(), self.details.reset_time.as_deref(), self.anchor, now) {
            Some((start, end)) => (to_micros(start), Some(end)),
            None => (0, None),
        }
    }

    fn rollover(&self) -> Option<(i64, Option<i64>)> {
        let r = self.details.rollover.as_ref()?;
        Some((r["percentage"].as_i64()?, r["limit"].as_i64()))
    }

    /// Usage-alert thresholds: kind and values.
    pub fn alerts(&self) -> Option<(String, Vec<i64>)> {
        let a = self.details.usage_alerts.as_ref()?;
        let kind = a["threshold_type"].as_str().unwrap_or("PERCENTAGE").to_string();
        let values = a["thresholds"].as_array()?.iter().filter_map(Value::as_i64).collect();
        Some((kind, values))
    }
}

/// A customer's entitlement state.
#[derive(Debug, Default)]
pub struct CustomerState {
    pub grants: Vec<Grant>,
    pub counters: Counters,
    /// The check's answer as JSON, kept until the first meter period ends
    /// (rows are the same until then); a change of counters makes a new state.
    rendered: RwLock<Option<Rendered>>,
}

/// Usage per (feature, period start). A customer has a few counters, so a
/// list: smaller than a map, and found without building a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(Vec<(Box<str>, i64, i64)>);

impl Counters {
    pub fn get(&self, feature: &str, period_start: i64) -> i64 {
        self.0.iter().find(|(f, s, _)| *s == period_start && **f == *feature).map_or(0, |c| c.2)
    }

    fn slot(&mut self, feature: &str, period_start: i64) -> &mut i64 {
        match self.0.iter().position(|(f, s, _)| *s == period_start && **f == *feature) {
            Some(i) => &mut self.0[i].2,
            None => {
                self.0.push((feature.into(), period_start, 0));
                &mut self.0.last_mut().expect("just pushed").2
            }
        }
    }

    /// Every counter: (feature, period start, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64, i64)> {
        self.0.iter().map(|(f, s, v)| (&**f, *s, *v))
    }

    pub fn add(&mut self, feature: &str, period_start: i64, delta: i64) {
        let slot = self.slot(feature, period_start);
        *slot = kelviq_core::meters::add_counter(*slot, delta);
    }

    pub fn set(&mut self, feature: &str, period_start: i64, value: i64) {
        *self.slot(feature, period_start) = value;
    }
}

/// The check's body, and until when it holds (`None`: no meter period ends).
type Rendered = (Option<DateTime<Utc>>, Bytes);

impl Clone for CustomerState {
    /// A copy to change: without the kept rendering.
    fn clone(&self) -> Self {
        CustomerState { grants: self.grants.clone(), counters: self.counters.clone(), rendered: RwLock::default() }
    }
}

/// One row of the check, as computed at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub feature_id: String,
    pub feature_type: FeatureType,
    pub state: RowState,
    pub reset_at: Option<DateTime<Utc>>,
    pub overridden: bool,
}

impl Row {
    pub fn to_wire(&self) -> EntitlementRowOut {
        let meter = self.feature_type != FeatureType::Boolean;
        EntitlementRowOut {
            feature_id: self.feature_id.clone(),
            feature_type: self.feature_type.as_str().to_string(),
            has_access: self.state.has_access,
            reset_at: meter.then_some(self.reset_at.map(reset_at)),
            hard_limit: meter.then_some(self.state.hard_limit),
            usage_limit: meter.then_some(self.state.usage_limit),
            current_usage: meter.then_some(self.state.current_usage),
            remaining: meter.then_some(self.state.remaining),
            is_overridden: self.overridden.then_some(true),
        }
    }
}

impl CustomerState {
    /// The check's answer at `now`, `{"customerId":…,"entitlements":[…]}`
    /// (this state is the customer's, so their id is part of it), from the
    /// kept rendering while it is valid: the body is shared, not copied.
    pub fn check_body(&self, customer_id: &str, now: DateTime<Utc>) -> Bytes {
        if let Some((until, body)) = self.rendered.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if until.is_none_or(|u| now < u) {
                return body.clone();
            }
        }
        let (until, body) = self.render(customer_id, now);
        *self.rendered.write().unwrap_or_else(|e| e.into_inner()) = Some((until, body.clone()));
        body
    }

    fn render(&self, customer_id: &str, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Bytes) {
        let entitlements = self.rows(now).iter().map(Row::to_wire).collect();
        let until = self.grants.iter().filter_map(|g| g.window(now).1).min();
        let out = CustomerEntitlementsOut { customer_id: customer_id.to_string(), entitlements };
        let body = serde_json::to_string(&out).expect("entitlements serialise");
        // Kept for every customer in memory: without the String's spare capacity.
        (until, Bytes::from(body.into_bytes().into_boxed_slice()))
    }

    pub fn usage(&self, feature: &str, period_start: i64) -> i64 {
        self.counters.get(feature, period_start)
    }

    /// The grants of one feature, in order.
    pub fn grants_of<'a>(&'a self, feature: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.iter().filter(move |g| g.feature == feature)
    }

    /// The feature's usage period: its first grant's (where usage is counted).
    pub fn counting_window(&self, feature: &str, now: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
        self.grants_of(feature).next().map_or((0, None), |g| g.window(now))
    }

    /// The period an event dated `at` counts in, seen at `now`: the current
    /// one (for an event of now or later); for usage billed in arrears, the
    /// earlier billing period of the subscription it is dated in (late
    /// usage, billed with the next invoice); else none (stored, not counted).
    pub fn event_window(&self, feature: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
        let first = self.grants_of(feature).next();
        let (start, _) = first.map_or((0, None), |g| g.window(now));
        if start == 0 || at >= from_micros(start) {
            return Some(start);
        }
        match first.and_then(|g| g.billing) {
            Some((anchor, interval)) if at >= anchor => Some(to_micros(period_containing(anchor, interval, at).0)),
            _ => None,
        }
    }

    /// A grant's limit for the period at `now`, with what rolled over.
    fn period_limit(&self, g: &Grant, now: DateTime<Utc>) -> Option<i64> {
        let limit = g.limit?;
        let carried = match (g.rollover(), g.window(now)) {
            // Only periods the grant lived in carry anything over.
            (Some((pct, cap)), (start, _)) if start > 0 && from_micros(start) > g.anchor => {
                let previous = g.window(from_micros(start) - chrono::Duration::microseconds(1)).0;
                rollover_carry(limit, self.usage(&g.feature, previous), pct, cap)
            }
            _ => 0,
        };
        Some(limit + carried)
    }

    /// The feature's combined limit at `now` (`None`: unlimited) and whether any grant is a hard limit.
    pub fn feature_limit(&self, feature: &str, now: DateTime<Utc>) -> (Option<i64>, bool) {
        let hard = self.grants_of(feature).any(|g| g.details.hard_limit);
        (combined_limit(self.grants_of(feature).map(|g| self.period_limit(g, now))), hard)
    }

    /// The check's rows at `now`. A feature's usage is counted once, in its
    /// first grant's period, and shown across its rows in order: each row up
    /// to its limit, the last (or an unlimited) row takes the rest, so the
    /// rows add up to the customer's usage.
    pub fn rows(&self, now: DateTime<Utc>) -> Vec<Row> {
        let limits: Vec<Option<i64>> = self.grants.iter().map(|g| self.period_limit(g, now)).collect();
        // Each meter's usage, split across its rows (grant indexes in order).
        let mut used = vec![0i64; self.grants.len()];
        let mut seen: Vec<&str> = Vec::new();
        for g in self.grants.iter().filter(|g| g.feature_type == FeatureType::Meter) {
            if seen.contains(&g.feature.as_str()) {
                continue;
            }
            seen.push(&g.feature);
            let rows: Vec<usize> = (0..self.grants.len()).filter(|&i| self.grants[i].feature == g.feature).collect();
            let (start, _) = self.counting_window(&g.feature, now);
            let row_limits: Vec<Option<i64>> = rows.iter().map(|&i| limits[i]).collect();
            for (&i, u) in rows.iter().zip(split_usage(self.usage(&g.feature, start), &row_limits)) {
                used[i] = u;
            }
        }
        let mut out = Vec::with_capacity(self.grants.len());
        for (i, g) in self.grants.iter().enumerate() {
            let (state, reset) = match g.feature_type {
                FeatureType::Boolean => (boolean_row(g.details.value.as_bool().unwrap_or(false)), None),
                FeatureType::Customizable => (customizable_row(g.details.value.as_i64()), None),
                FeatureType::Meter => {
                    // `meter_row` adds the carry to the limit itself; pass it apart.
                    let row = match (g.limit, limits[i]) {
                        (Some(base), Some(l)) => meter_row(Some(base), l - base, used[i], g.details.hard_limit),
                        _ => meter_row(None, 0, used[i], g.details.hard_limit),
                    };
                    (row, g.window(now).1)
                }
            };
            out.push(Row {
                feature_id: g.feature.clone(),
                feature_type: g.feature_type,
                state,
                reset_at: reset,
                overridden: g.overridden,
            });
        }
        out
    }
}

/// How many write epochs customers are spread over.
const EPOCHS: usize = 4096;

/// Every cached customer state of this process.
pub struct Engine {
    customers: RwLock<TenantMap<Arc<CustomerState>>>,
    /// Grant definitions per plan version.
    plans: RwLock<HashMap<uuid::Uuid, Arc<Vec<Arc<GrantDef>>>>>,
    /// Bumped whenever a customer's state is changed or dropped, so that a
    /// state built from the database meanwhile is not cached (it may predate
    /// the change).
    epochs: Vec<AtomicU64>,
    /// Usage writes in flight per epoch bucket: committed (or committing) but
    /// not yet applied to the cached states. A state built from the
    /// database meanwhile may or may not hold them, so it is not cached.
    writing: Vec<std::sync::atomic::AtomicU32>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            customers: RwLock::default(),
            plans: RwLock::default(),
            epochs: (0..EPOCHS).map(|_| AtomicU64::new(0)).collect(),
            writing: (0..EPOCHS).map(|_| std::sync::atomic::AtomicU32::new(0)).collect(),
        }
    }
}

fn bucket(org: uuid::Uuid, env: Environment, customer_id: &str) -> usize {
    (customer_hash(org, env, customer_id) % EPOCHS as u64) as usize
}

/// Customers whose counters one lock acquisition changes at most (checks wait meanwhile).
const APPLY_SLICE: usize = 256;

impl Engine {
    pub fn get(&self, tenant: &Tenant, customer_id: &str) -> Option<Arc<CustomerState>> {
        self.customers.read().unwrap_or_else(|e| e.into_inner()).get(tenant, customer_id).cloned()
    }

    pub fn evict(&self, org: uuid::Uuid, env: Environment, customer_id: &str) {
        let mut map = self.customers.write().unwrap_or_else(|e| e.into_inner());
        self.epochs[bucket(org, env, customer_id)].fetch_add(1, Ordering::SeqCst);
        map.remove(org, env, customer_id);
    }

    /// Forgets everything (a published plan can change what many customers hold).
    pub fn clear(&self) {
        let mut map = self.customers.write().unwrap_or_else(|e| e.into_inner());
        for e in &self.epochs {
            e.fetch_add(1, Ordering::SeqCst);
        }
        map.clear();
        self.plans.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn epoch(&self, tenant: &Tenant, customer_id: &str) -> u64 {
        self.epochs[bucket(tenant.org_id, tenant.env, customer_id)].load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.customers.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Caches a state built from the database unless the customer changed
    /// since `epoch` was read or a usage write of theirs is in flight
    /// (checked under the lock writers take too).
    fn insert_unless_changed(&self, tenant: &Tenant, customer_id: &str, state: Arc<CustomerState>, epoch: u64) {
        let mut map = self.customers.write().unwrap_or_else(|e| e.into_inner());
        let b = bucket(tenant.org_id, tenant.env, customer_id);
        if self.epochs[b].load(Ordering::SeqCst) == epoch && self.writing[b].load(Ordering::SeqCst) == 0 {
            map.insert(tenant, customer_id, state);
        }
    }

    /// Marks a usage write of the customer in flight, before its transaction
    /// begins; [`Engine::written`] ends it once its changes are applied here
    /// (or it failed).
    pub fn writing(&self, tenant: &Tenant, customer_id: &str) {
        self.writing[bucket(tenant.org_id, tenant.env, customer_id)].fetch_add(1, Ordering::SeqCst);
    }

    /// Ends what [`Engine::writing`] began, after the write's changes went
    /// through [`Engine::apply_counters`] (whose epoch bump keeps a state
    /// built while the write was in flight from being cached afterwards; a
    /// write that changed nothing needs none).
    pub fn written(&self, tenant: &Tenant, customer_id: &str) {
        self.writing[bucket(tenant.org_id, tenant.env, customer_id)].fetch_sub(1, Ordering::SeqCst);
    }

    /// Records counter changes this process just committed into the cached
    /// states: per customer of the tenant, (feature, period start, change).
    pub fn apply_counters<'a>(
        &self,
        tenant: &Tenant,
        changes: impl IntoIterator<Item = (&'a str, &'a [(String, i64, Counted)])>,
    ) {
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let mut map = self.customers.write().unwrap_or_else(|e| e.into_inner());
            let customers = map.tenant_mut(tenant);
            for (customer_id, counted) in changes.by_ref().take(APPLY_SLICE) {
                self.epochs[bucket(tenant.org_id, tenant.env, customer_id)].fetch_add(1, Ordering::SeqCst);
                let Some(state) = customers.get_mut(customer_id) else { continue };
                let s = Arc::make_mut(state);
                *s.rendered.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
                for (feature, start, change) in counted {
                    match change {
                        Counted::Value(v) => s.counters.set(feature, *start, *v),
                        Counted::Delta(d) => s.counters.add(feature, *start, *d),
                    }
                }
            }
        }
    }
}

/// The customer's state, from memory or built from the database; `None` for
/// an unknown customer.
pub async fn load(state: &AppState, tenant: &Tenant, customer_id: &str) -> ServiceResult<Option<Arc<CustomerState>>> {
    if let Some(s) = state.entitlements.get(tenant, customer_id) {
        return Ok(Some(s));
    }
    // Boxed: building from the database awaits many queries, and inline its
    // state would make this future, and every caller's (one per event of a
    // batch), kilobytes to move for the common case above.
    Box::pin(load_from_database(state, tenant, customer_id)).await
}

async fn load_from_database(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
) -> ServiceResult<Option<Arc<CustomerState>>> {
    let epoch = state.entitlements.epoch(tenant, customer_id);
    let Some(built) = build(state, tenant, customer_id).await? else { return Ok(None) };
    let built = Arc::new(built);
    // Rendered now, while loading, so that checks find it ready.
    built.check_body(customer_id, crate::clock::tenant_now(state, tenant).await?);
    state.entitlements.insert_unless_changed(tenant, customer_id, built.clone(), epoch);
    Ok(Some(built))
}

async fn build(state: &AppState, tenant: &Tenant, customer_id: &str) -> ServiceResult<Option<CustomerState>> {
    let Some(customer) = state.store.find_customer(tenant, customer_id).await? else { return Ok(None) };
    let mut subs = live_subscriptions(state, tenant, customer_id).await?;
    subs.reverse(); // oldest first: the base plan's rows before add-ons'
    let mut grants = Vec::new();
    for sub in &subs {
        let defs = plan_grants(state, tenant, sub.plan_id).await?;
        for def in defs.iter() {
            let bought = sub.features.iter().find(|q| q.identifier == def.feature).map(|q| q.quantity as i64);
            let limit = if def.details.has_unlimited_usage { None } else { bought.or(def.details.value.as_i64()) };
            grants.push(Grant {
                def: def.clone(),
                limit,
                anchor: sub.started_at,
                subscription_id: Some(sub.id),
                overridden: false,
                billing: if def.pay_as_you_go { sub.interval().map(|i| (sub.usage_anchor(), i)) } else { None },
            });
        }
    }
    // Overrides replace what the plans grant for a feature (or grant it alone).
    let overrides = state.store.overrides(tenant, customer_id).await?;
    let features = match overrides.is_empty() {
        true => HashMap::new(),
        false => state.store.features_by_id(tenant).await?,
    };
    let by_identifier: HashMap<&str, &kelviq_core::catalog::Feature> =
        features.values().map(|f| (f.identifier.as_str(), f)).collect();
    for (feature, doc) in overrides {
        let Some(f) = by_identifier.get(feature.as_str()) else { continue };
        let first = grants.iter().position(|g| g.feature == feature);
        let base = first.map(|i| grants[i].clone());
        grants.retain(|g| g.feature != feature);
        let details = override_details(f.feature_type, &doc, base.as_ref().map(|b| &b.details));
        let limit = match f.feature_type {
            FeatureType::Meter if details.has_unlimited_usage => None,
            FeatureType::Meter => details.value.as_i64(),
            _ => None,
        };
        let grant = Grant {
            def: Arc::new(GrantDef {
                feature: feature.clone(),
                feature_type: f.feature_type,
                details,
                pay_as_you_go: base.as_ref().is_some_and(|b| b.pay_as_you_go),
            }),
            limit,
            anchor: base.as_ref().map_or(customer.created_at, |b| b.anchor),
            subscription_id: base.as_ref().and_then(|b| b.subscription_id),
            billing: base.and_then(|b| b.billing),
            overridden: true,
        };
        grants.insert(first.unwrap_or(grants.len()).min(grants.len()), grant);
    }
    let counters = counters(state, tenant, customer_id).await?;
    Ok(Some(CustomerState { grants, counters, rendered: Default::default() }))
}

/// A customer's counters: the rows plus the additions not yet folded into
/// them, read so that a fold committing meanwhile is not counted twice.
pub async fn counters(state: &AppState, tenant: &Tenant, customer_id: &str) -> ServiceResult<Counters> {
    loop {
        let generation = state.ingest.fold_generation(tenant, customer_id);
        if generation % 2 == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            continue;
        }
        let mut counters = Counters::default();
        for c in state.store.counters(tenant, customer_id).await? {
            counters.add(&c.feature, c.period_start, c.value);
        }
        for (feature, start, delta) in state.ingest.pending_of(tenant, customer_id).iter() {
            counters.add(feature, start, delta);
        }
        if state.ingest.fold_generation(tenant, customer_id) == generation {
            return Ok(counters);
        }
    }
}

/// [`counters`] of many customers, read at once: in the order of `customer_ids`.
pub async fn counters_many(state: &AppState, tenant: &Tenant, customer_ids: &[&str]) -> ServiceResult<Vec<Counters>> {
    let generations: Vec<u64> = customer_ids.iter().map(|c| state.ingest.fold_generation(tenant, c)).collect();
    let rows = state.store.counters_of_many(tenant, customer_ids).await?;
    let mut by_customer: HashMap<&str, Counters> = HashMap::new();
    for (customer, c) in &rows {
        by_customer.entry(customer.as_str()).or_default().add(&c.feature, c.period_start, c.value);
    }
    let mut out = Vec::with_capacity(customer_ids.len());
    for (customer, generation) in customer_ids.iter().zip(generations) {
        let mut read = by_customer.remove(customer).unwrap_or_default();
        for (feature, start, delta) in state.ingest.pending_of(tenant, customer).iter() {
            read.add(feature, start, delta);
        }
        // A fold ran (or was running) meanwhile: this one is read on its own.
        if generation % 2 == 1 || state.ingest.fold_generation(tenant, customer) != generation {
            read = counters(state, tenant, customer).await?;
        }
        out.push(read);
    }
    Ok(out)
}

/// The grant definitions of a plan version, resolved (inheritance included)
/// once per process and shared; cleared when a plan is published.
pub(crate) async fn plan_grants(
    state: &AppState,
    tenant: &Tenant,
    plan_id: uuid::Uuid,
) -> ServiceResult<Arc<Vec<Arc<GrantDef>>>> {
    if let Some(defs) = state.entitlements.plans.read().unwrap_or_else(|e| e.into_inner()).get(&plan_id) {
        return Ok(defs.clone());
    }
    let features = state.store.features_by_id(tenant).await?;
    let (resolved, in_arrears) = match state.store.find_plan_version(tenant, plan_id).await? {
        Some(plan) => (
            state.store.effective_entitlements(tenant, &plan).await?,
            kelviq_core::billing::pay_as_you_go_features(&plan),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let defs: Vec<Arc<GrantDef>> = resolved
        .iter()
        .filter_map(|e| {
            let f = features.get(&e.feature_id)?;
            Some(Arc::new(GrantDef {
                feature: f.identifier.clone(),
                feature_type: f.feature_type,
                details: e.details.clone(),
                pay_as_you_go: in_arrears.contains(&e.feature_id.to_string()),
            }))
        })
        .collect();
    let defs = Arc::new(defs);
    state.entitlements.plans.write().unwrap_or_else(|e| e.into_inner()).insert(plan_id, defs.clone());
    Ok(defs)
}

/// An override's details: the plan's settings with the overridden values.
fn override_details(ty: FeatureType, doc: &Value, base: Option<&EntitlementDetails>) -> EntitlementDetails {
    let mut d = base.cloned().unwrap_or(EntitlementDetails {
        value: Value::Null,
        has_unlimited_usage: false,
        reset: (ty == FeatureType::Meter).then(|| "NEVER".to_string()),
        reset_time: None,
        hard_limit: false,
        rollover: None,
        usage_alerts: None,
    });
    if let Some(v) = doc.get("value").filter(|v| !v.is_null()) {
        d.value = v.clone();
        d.has_unlimited_usage = false;
    }
    if let Some(u) = doc.get("has_unlimited_usage").and_then(Value::as_bool) {
        d.has_unlimited_usage = u;
    }
    if let Some(h) = doc.get("hard_limit").and_then(Value::as_bool) {
        d.hard_limit = h;
    }
    if let Some(r) = doc.get("reset").and_then(Value::as_str) {
        d.reset = Some(r.to_string());
    }
    d
}
