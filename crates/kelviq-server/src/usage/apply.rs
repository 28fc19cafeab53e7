//! One group's transaction: storing events, counting, consuming, folding
//! deferred sums, and the alerts a change crosses.

use super::handle::*;
use super::items::*;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::entitlements::crossed_alerts;
use kelviq_core::events::{customer_summary, OutboxEvent};
use kelviq_core::timefmt::{from_micros, iso_seconds};
use kelviq_core::{Environment, Tenant};
use kelviq_store::{AddRow, CounterChange, EventJournal, EventRow, KeptConnection, StoredEvent, Work};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

/// What one transaction did.
pub(super) struct Applied {
    /// Per job, per item.
    pub(super) outcomes: Vec<Vec<Outcome>>,
    /// Additions committed in the journal only (SQLite), for [`Pending`].
    pub(super) deferred: Vec<Deferred>,
    pub(super) folded: bool,
    /// The group's customers are built again from the database: an
    /// attempt whose answer was lost may have counted some of its events,
    /// which then read as stored before and change nothing here.
    pub(super) rebuild: bool,
    /// Committed by the journal, which leaves the sync to its caller: no
    /// answer before [`WalSync::sync`].
    pub(super) unsynced: bool,
}

pub(super) type ApplyError = kelviq_store::StoreError;

/// An addition left to the next fold: (job, item, feature, period start, delta).
pub(super) type Deferred = (usize, usize, String, i64, i64);

pub(super) fn counter_key(tenant: &Tenant, customer_id: &str, feature: &str, period_start: i64) -> CounterKey {
    (tenant.org_id, tenant.env, customer_id.to_string(), feature.to_string(), period_start)
}

/// The targets of an item (a consume's counter as an addition).
pub(super) fn item_targets(item: &Item) -> Vec<(&str, i64, bool)> {
    match &item.op {
        Op::Event { targets, .. } | Op::Report { targets, .. } => targets
            .iter()
            .map(|t| {
                (t.feature.as_str(), t.period_start, matches!(t.change, CounterChange::Add(_)) && t.alerts.is_none())
            })
            .collect(),
        Op::Consume(c) => vec![(c.feature.as_str(), c.period_start, false)],
    }
}

/// Applies a group in one transaction. Events, plain additions and (on
/// PostgreSQL) counters are written with one statement per few hundred
/// rows; anything whose order matters (SET, MAX, LATEST, UNIQUE_COUNT,
/// alerts, consumes) runs item by item, in arrival order, for the counters
/// it touches.
pub(super) async fn apply(state: &AppState, turn: Turn, batch: &[Job], mut fold: bool) -> Result<Applied, ApplyError> {
    let Turn { writer, defer, epoch } = turn;
    let pending = state.ingest.pending.share(writer);
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);

    // Counters some item changes in an order-sensitive way.
    let mut ordered: HashSet<CounterKey> = HashSet::new();
    for job in batch {
        for item in &job.items {
            for (feature, start, plain) in item_targets(item) {
                if !plain {
                    ordered.insert(counter_key(&job.tenant, &item.customer_id, feature, start));
                }
            }
        }
    }
    // An ordered change reads the counter row, so it must hold everything.
    if defer && !fold && ordered.iter().any(|k| pending.contains(k)) {
        fold = true;
    }

    let mut w = state.store.begin(&batch.first().map_or_else(system_tenant, |j| j.tenant.clone())).await?;
    if defer {
        w.fence_usage(writer, epoch).await?;
    }
    if fold {
        fold_pending(&mut w, pending, writer, now).await?;
    }

    // Events: each key's first occurrence in the group is stored unless its
    // tenant stored the key before; what it adds is counted later on SQLite.
    let is_ordered = |tenant: &Tenant, item: &Item, t: &Target| {
        !ordered.is_empty() && ordered.contains(&counter_key(tenant, &item.customer_id, &t.feature, t.period_start))
    };
    let deferrable = |tenant: &Tenant, item: &Item, t: &Target| {
        defer && matches!(t.change, CounterChange::Add(_)) && !is_ordered(tenant, item, t)
    };
    let plan = EventPlan::new(batch, deferrable);
    let skipped = w.insert_events(&plan.rows(batch), now).await?;
    let mut stored = HashMap::new();
    for (tenant, keys) in plan.earlier(batch, &skipped).values() {
        for e in w.find_events(tenant, keys).await? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
    }
    let seen = plan.seen(&skipped, stored);

    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(batch.len());
    let mut adds: HashMap<CounterKey, i64> = HashMap::new();
    let mut deferred = Vec::new();
    for (j, job) in batch.iter().enumerate() {
        let mut job_outcomes = Vec::with_capacity(job.items.len());
        w.switch_tenant(&job.tenant);
        for (i, item) in job.items.iter().enumerate() {
            let outcome = match &item.op {
                Op::Event { event, targets } => {
                    if let Some(repeated) = seen.repeated(batch, j, i, &job.tenant, event) {
                        repeated
                    } else {
                        let mut later = Vec::new();
                        let to = Counting { ordered: &ordered, adds: &mut adds, deferred: defer.then_some(&mut later) };
                        let counters = count(&mut w, job, item, targets, to).await?;
                        deferred.extend(later.into_iter().map(|(f, start, n)| (j, i, f, start, n)));
                        Outcome::fresh(Value::Null, counters)
                    }
                }
                Op::Report { key, targets, response } => {
                    let first = match key {
                        Some(k) => w.find_key("usage", k).await?,
                        None => None,
                    };
                    if let Some(first) = first {
                        Outcome::repeated(serde_json::from_str(&first).unwrap_or(Value::Null), None)
                    } else {
                        let to = Counting { ordered: &ordered, adds: &mut adds, deferred: None };
                        let counters = count(&mut w, job, item, targets, to).await?;
                        if let Some(k) = key {
                            w.save_key("usage", k, &response.to_string(), job.now).await?;
                        }
                        Outcome::fresh(response.clone(), counters)
                    }
                }
                Op::Consume(c) => consume(&mut w, job, item, c).await?,
            };
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }

    let tenants: HashMap<(uuid::Uuid, Environment), &Tenant> =
        batch.iter().map(|j| ((j.tenant.org_id, j.tenant.env), &j.tenant)).collect();
    let add_rows: Vec<AddRow<'_>> = adds
        .iter()
        .map(|(k, delta)| AddRow {
            tenant: tenants[&(k.0, k.1)],
            customer_id: &k.2,
            feature: &k.3,
            period_start: k.4,
            delta: *delta,
        })
        .collect();
    w.add_counters(&add_rows, now).await?;
    drop(add_rows);

    // Customers changed per tenant, announced once per tenant to the other
    // processes sharing the database (on SQLite one process serves: the
    // counts of its events are in its memory until folded).
    let mut changed: BTreeMap<(uuid::Uuid, &'static str), (&Tenant, Vec<&str>)> = BTreeMap::new();
    for (job, job_outcomes) in batch.iter().zip(&outcomes).filter(|_| !defer) {
        for (item, o) in job.items.iter().zip(job_outcomes) {
            if !o.counters.is_empty() {
                let entry = changed
                    .entry((job.tenant.org_id, job.tenant.env.as_str()))
                    .or_insert_with(|| (&job.tenant, Vec::new()));
                entry.1.push(&item.customer_id);
            }
        }
    }
    for (tenant, mut customers) in changed.into_values() {
        customers.sort_unstable();
        customers.dedup();
        let customers: Vec<String> = customers.into_iter().map(str::to_string).collect();
        w.switch_tenant(tenant);
        // Stamped with the server's time, not a tenant's test clock: the feed
        // is pruned by the server's time.
        w.usage_changed(&customers, &state.origin, state.clock.now()).await?;
    }
    if fold {
        // From here until the sums are cleared, the rows may hold what the
        // sums hold: state built meanwhile is built again.
        pending.generation.fetch_add(1, Ordering::SeqCst);
        let committed = w.commit().await;
        if committed.is_ok() {
            pending.lock().clear();
        }
        pending.generation.fetch_add(1, Ordering::SeqCst);
        committed?;
    } else {
        w.commit().await?;
    }
    Ok(Applied { outcomes, deferred, folded: fold, rebuild: false, unsynced: false })
}

/// A tenant's idempotency key of an event: (org, env, key).
pub(super) type EventKey<'a> = (uuid::Uuid, Environment, &'a str);

/// The events of a group to store: each key's first occurrence, with the
/// additions it leaves to be counted later.
pub(super) struct EventPlan<'b> {
    /// Where each key first occurs: (job, item).
    pub(super) first_of: HashMap<EventKey<'b>, (usize, usize)>,
    /// (job, item, additions left unfolded) of each first occurrence, in order.
    pub(super) firsts: Vec<(usize, usize, Additions)>,
}

impl<'b> EventPlan<'b> {
    fn new(batch: &'b [Job], deferrable: impl Fn(&Tenant, &Item, &Target) -> bool) -> EventPlan<'b> {
        let mut first_of = HashMap::new();
        let mut firsts = Vec::new();
        for (j, job) in batch.iter().enumerate() {
            for (i, item) in job.items.iter().enumerate() {
                if let Op::Event { event, targets } = &item.op {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        first_of.entry((job.tenant.org_id, job.tenant.env, event.key.as_str()))
                    {
                        e.insert((j, i));
                        let unfolded = targets
                            .iter()
                            .filter(|t| deferrable(&job.tenant, item, t))
                            .map(|t| match t.change {
                                CounterChange::Add(n) => (t.feature.clone(), t.period_start, n),
                                _ => unreachable!("only additions are deferred"),
                            })
                            .collect();
                        firsts.push((j, i, unfolded));
                    }
                }
            }
        }
        EventPlan { first_of, firsts }
    }

    /// The rows to insert, in the order of `firsts`.
    fn rows<'r>(&'r self, batch: &'r [Job]) -> Vec<EventRow<'r>> {
        self.firsts
            .iter()
            .filter_map(|(j, i, unfolded)| {
                let Op::Event { event, .. } = &batch[*j].items[*i].op else { return None };
                Some(EventRow {
                    tenant: &batch[*j].tenant,
                    customer_id: &batch[*j].items[*i].customer_id,
                    event_name: &event.event_name,
                    key: &event.key,
                    at: event.at,
                    resource_id: event.resource_id.as_deref(),
                    properties: &event.properties,
                    unfolded,
                })
            })
            .collect()
    }

    /// The keys, per tenant, of the rows (indexes into `firsts`) that were
    /// stored before this group.
    fn earlier(
        &self,
        batch: &'b [Job],
        skipped: &[usize],
    ) -> HashMap<(uuid::Uuid, Environment), (&'b Tenant, Vec<&'b str>)> {
        let mut earlier: HashMap<_, (&Tenant, Vec<&str>)> = HashMap::new();
        for n in skipped {
            let (j, i, _) = &self.firsts[*n];
            if let Op::Event { event, .. } = &batch[*j].items[*i].op {
                let tenant = &batch[*j].tenant;
                earlier.entry((tenant.org_id, tenant.env)).or_insert_with(|| (tenant, Vec::new())).1.push(&event.key);
            }
        }
        earlier
    }

    /// What the group knows of repeated keys once the rows are written.
    fn seen(self, skipped: &[usize], stored: HashMap<(uuid::Uuid, Environment, String), StoredEvent>) -> Seen<'b> {
        let was_stored = skipped.iter().map(|n| (self.firsts[*n].0, self.firsts[*n].1)).collect();
        Seen { first_of: self.first_of, was_stored, stored }
    }
}

/// Which events of a group repeat a key, and their first answers.
pub(super) struct Seen<'b> {
    pub(super) first_of: HashMap<EventKey<'b>, (usize, usize)>,
    /// First occurrences whose key a tenant stored before the group.
    pub(super) was_stored: HashSet<(usize, usize)>,
    /// Those events, as stored.
    pub(super) stored: HashMap<(uuid::Uuid, Environment, String), StoredEvent>,
}

impl Seen<'_> {
    /// The answer to event (job, item) if its key was seen before it: the
    /// event first stored, or the group's first one with that key.
    fn repeated(&self, batch: &[Job], j: usize, i: usize, tenant: &Tenant, event: &EventData) -> Option<Outcome> {
        let first = self.first_of[&(tenant.org_id, tenant.env, event.key.as_str())];
        let original = if self.was_stored.contains(&first) {
            let k = (tenant.org_id, tenant.env, event.key.clone());
            self.stored.get(&k).cloned()
        } else if first != (j, i) {
            Some(stored_form(&batch[first.0].items[first.1]))
        } else {
            return None;
        };
        let key_reused = original.as_ref().is_some_and(|o| !same_event(o, &batch[j].items[i]));
        Some(Outcome { key_reused, ..Outcome::repeated(Value::Null, original) })
    }
}

/// Whether every item of a group is an event whose changes are all plain
/// additions (no alerts): on SQLite such a group only appends to the journal.
pub(super) fn plain_events(batch: &[Job]) -> bool {
    batch.iter().flat_map(|j| &j.items).all(|item| match &item.op {
        Op::Event { targets, .. } => {
            targets.iter().all(|t| matches!(t.change, CounterChange::Add(_)) && t.alerts.is_none())
        }
        _ => false,
    })
}

/// A group of plain events on SQLite, on the journal's own connection: the
/// events are appended and their additions left to the next fold.
pub(super) async fn append_plain(
    state: &AppState,
    batch: &[Job],
    journal: &mut EventJournal,
) -> Result<Applied, ApplyError> {
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);
    let plan = EventPlan::new(batch, |_, _, _| true);
    let rows = plan.rows(batch);
    let turn = state.store.write_turn().await?;
    let mut tx = journal.begin()?;
    let skipped = tx.insert_events(&rows, now)?;
    drop(rows);
    let mut stored = HashMap::new();
    for (tenant, keys) in plan.earlier(batch, &skipped).values() {
        for e in tx.find_events(tenant, keys)? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
    }
    tx.commit()?;
    drop(turn);
    let mut deferred = Vec::new();
    let outcomes = plain_outcomes(batch, &plan.seen(&skipped, stored), Some(&mut deferred));
    Ok(Applied { outcomes, deferred, folded: false, rebuild: false, unsynced: true })
}

/// The answers to a plain group's events once stored: a repeated key's
/// first answer, or the additions a fresh event made (also listed in
/// `deferred`, when given, for the pending sums).
pub(super) fn plain_outcomes(
    batch: &[Job],
    seen: &Seen<'_>,
    mut deferred: Option<&mut Vec<Deferred>>,
) -> Vec<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for (j, job) in batch.iter().enumerate() {
        let mut job_outcomes = Vec::with_capacity(job.items.len());
        for (i, item) in job.items.iter().enumerate() {
            let Op::Event { event, targets } = &item.op else { unreachable!("a plain group holds only events") };
            let outcome = seen.repeated(batch, j, i, &job.tenant, event).unwrap_or_else(|| {
                let mut counters = Vec::with_capacity(targets.len());
                for t in targets {
                    if let CounterChange::Add(n) = t.change {
                        if let Some(later) = deferred.as_deref_mut() {
                            later.push((j, i, t.feature.clone(), t.period_start, n));
                        }
                        counters.push((t.feature.clone(), t.period_start, Counted::Delta(n)));
                    }
                }
                Outcome::fresh(Value::Null, counters)
            });
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }
    outcomes
}

/// Whether a group is not empty and every job in it is of one tenant.
pub(super) fn single_tenant(batch: &[Job]) -> bool {
    batch.first().is_some_and(|first| batch.iter().all(|j| j.tenant == first.tenant))
}

/// A group of plain events of one tenant on PostgreSQL in one statement,
/// which is its own transaction (one round trip instead of five): stored,
/// counted and announced; or, with `deferring` (this process defers
/// counters), stored with their additions, which go to the writer's sums.
pub(super) async fn append_statement(
    state: &AppState,
    batch: &[Job],
    kept: &mut KeptConnection,
    deferring: Option<Turn>,
) -> Result<Applied, ApplyError> {
    let now = batch.last().map_or_else(|| state.clock.now(), |j| j.now);
    let tenant = &batch[0].tenant;
    // Every addition is listed with its event.
    let plan = EventPlan::new(batch, |_, _, _| true);
    let rows = plan.rows(batch);
    let (skipped, retried) = match deferring {
        Some(turn) => {
            (state.store.append_deferred_events(kept, tenant, &rows, now, turn.writer, turn.epoch).await?, false)
        }
        None => {
            // The change row is stamped with the server's time (see `apply`).
            let appended =
                state.store.append_counted_events(kept, tenant, &rows, &state.origin, now, state.clock.now()).await?;
            (appended.skipped, appended.retried)
        }
    };
    drop(rows);
    let mut stored = HashMap::new();
    if let Some((tenant, keys)) = plan.earlier(batch, &skipped).values().next() {
        // Stored by committed work: the statement waited for any other
        // transaction inserting the same key to end.
        let mut w = state.store.begin(tenant).await?;
        for e in w.find_events(tenant, keys).await? {
            stored.insert((tenant.org_id, tenant.env, e.key.clone()), e);
        }
        w.commit().await?;
    }
    let mut deferred = Vec::new();
    let later = deferring.is_some().then_some(&mut deferred);
    let outcomes = plain_outcomes(batch, &plan.seen(&skipped, stored), later);
    Ok(Applied { outcomes, deferred, folded: false, rebuild: retried, unsynced: false })
}

/// Where a fresh item's changes go.
pub(super) struct Counting<'a> {
    /// Counters changed in an order-sensitive way somewhere in the group.
    pub(super) ordered: &'a HashSet<CounterKey>,
    /// Plain additions, written in bulk at the end of the group.
    pub(super) adds: &'a mut HashMap<CounterKey, i64>,
    /// Where plain additions go instead when they are counted later (events on SQLite).
    pub(super) deferred: Option<&'a mut Additions>,
}

/// Counts an item's targets: ordered changes at once, additions gathered.
pub(super) async fn count(
    w: &mut Work,
    job: &Job,
    item: &Item,
    targets: &[Target],
    to: Counting<'_>,
) -> Result<Vec<(String, i64, Counted)>, ApplyError> {
    let Counting { ordered, adds, mut deferred } = to;
    let mut counters = Vec::new();
    for t in targets {
        let key = || counter_key(&job.tenant, &item.customer_id, &t.feature, t.period_start);
        match (&t.change, !ordered.is_empty() && ordered.contains(&key())) {
            (CounterChange::Add(n), false) => {
                match deferred.as_deref_mut() {
                    Some(later) => later.push((t.feature.clone(), t.period_start, *n)),
                    None => {
                        let sum = adds.entry(key()).or_insert(0);
                        *sum = kelviq_core::meters::add_counter(*sum, *n);
                    }
                }
                counters.push((t.feature.clone(), t.period_start, Counted::Delta(*n)));
            }
            _ => counters.push(change(w, job, item, t).await?),
        }
    }
    Ok(counters)
}

/// Adds a writer's pending sums to the counter rows and marks its share folded.
pub(super) async fn fold_pending(
    w: &mut Work,
    pending: &Share,
    writer: usize,
    now: DateTime<Utc>,
) -> Result<(), ApplyError> {
    let snapshot = pending.snapshot();
    let rows: Vec<AddRow<'_>> = snapshot
        .iter()
        .flat_map(|(tenant, customer, sums)| {
            sums.iter().map(move |(feature, period_start, delta)| AddRow {
                tenant,
                customer_id: customer,
                feature,
                period_start,
                delta,
            })
        })
        .collect();
    w.add_counters(&rows, now).await?;
    w.mark_folded(writer).await?;
    Ok(())
}

/// An event of the group, in the form a stored one is read back.
pub(super) fn stored_form(item: &Item) -> StoredEvent {
    match &item.op {
        Op::Event { event, .. } => StoredEvent {
            key: event.key.clone(),
            customer_id: item.customer_id.clone(),
            event_name: event.event_name.clone(),
            at: event.at,
            resource_id: event.resource_id.clone(),
            properties: event.properties.clone(),
        },
        _ => unreachable!("only events have stored forms"),
    }
}

/// An order-sensitive counter change, applied now.
pub(super) async fn change(
    w: &mut Work,
    job: &Job,
    item: &Item,
    t: &Target,
) -> Result<(String, i64, Counted), ApplyError> {
    let (before, after, announced) =
        w.change_counter(&item.customer_id, &t.feature, t.period_start, &t.change, job.now).await?;
    if let Some(spec) = &t.alerts {
        alert(w, job, &item.customer_id, &t.feature, t.period_start, spec, before, after, &announced).await?;
    }
    Ok((t.feature.clone(), t.period_start, Counted::Value(after)))
}

/// A consume: check the limit and deduct in the same transaction, under the
/// counter's row lock, so concurrent consumes never overspend.
pub(super) async fn consume(w: &mut Work, job: &Job, item: &Item, c: &ConsumeOp) -> Result<Outcome, ApplyError> {
    let ConsumeOp { key, feature, period_start, value, limit, hard, alerts, response } = c;
    if let Some(first) = w.find_key("consume", key).await? {
        return Ok(Outcome::repeated(serde_json::from_str(&first).unwrap_or(Value::Null), None));
    }
    let customer_id = &item.customer_id;
    let current = w.lock_counter(customer_id, feature, *period_start).await?.map_or(0, |c| c.value);
    let allowed = match limit {
        Some(l) if *hard => current + value <= *l,
        _ => true,
    };
    let mut counters = Vec::new();
    let usage = if allowed {
        let (before, after, announced) =
            w.change_counter(customer_id, feature, *period_start, &CounterChange::Add(*value), job.now).await?;
        if let Some(spec) = alerts {
            alert(w, job, customer_id, feature, *period_start, spec, before, after, &announced).await?;
        }
        counters.push((feature.clone(), *period_start, Counted::Value(after)));
        after
    } else {
        current
    };
    let mut response = response.clone();
    response["allowed"] = json!(allowed);
    response["currentUsage"] = json!(usage);
    response["usageLimit"] = json!(limit);
    response["remaining"] = json!(limit.map(|l| l - usage));
    w.save_key("consume", key, &response.to_string(), job.now).await?;
    Ok(Outcome::fresh(response, counters))
}

/// Writes one `feature.usage_alert` per threshold first crossed this period.
#[allow(clippy::too_many_arguments)]
pub(super) async fn alert(
    w: &mut Work,
    job: &Job,
    customer_id: &str,
    feature: &str,
    period_start: i64,
    spec: &AlertSpec,
    before: i64,
    after: i64,
    announced: &str,
) -> Result<(), kelviq_store::StoreError> {
    let crossed = crossed_alerts(&spec.kind, &spec.thresholds, spec.limit, before, after);
    let mut done: Vec<String> = announced.split(';').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let fresh: Vec<i64> = crossed.into_iter().filter(|t| !done.contains(&format!("{}:{t}", spec.kind))).collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let customer = w.lock_customer(customer_id).await?;
    for t in &fresh {
        let object = json!({
            "object": "feature_usage_alert",
            "organization": job.tenant.org_id.to_string(),
            "feature": spec.feature,
            "customer": customer.as_ref().map(customer_summary),
            "usage_limit": spec.limit,
            "current_usage": after,
            "threshold_type": spec.kind,
            "threshold_value": t,
            "period_start_time": (period_start > 0).then(|| iso_seconds(from_micros(period_start))),
            "period_end_time": spec.period_end.map(iso_seconds),
            "subscription_id": spec.subscription_id.map(|i| i.to_string()),
        });
        w.event(&OutboxEvent::new("feature.usage_alert", object, None, job.now)).await?;
        done.push(format!("{}:{t}", spec.kind));
    }
    w.set_counter_alerts(customer_id, feature, period_start, &done.join(";")).await
}
