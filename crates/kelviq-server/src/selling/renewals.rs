//! Renewals and their retries, trial ends and scheduled changes: the due
//! items of a subscription, run at their due time.

use super::arrears::Metered;
use super::payments::{self, PayError};
use super::records::*;
use super::*;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{Due, Line, LineKind, Order, PaymentMethod, SubStatus, Subscription};
use kelviq_core::events::{self};
use kelviq_core::Tenant;
use kelviq_store::{DocTable, DuePosition, Work};
use std::collections::HashMap;

/// The method a subscription is billed with: the customer's default one (a
/// card saved later replaces a failing one), else the one it was bought with.
pub(super) async fn billing_method(w: &mut Work, s: &Subscription) -> ServiceResult<Option<(i64, PaymentMethod)>> {
    if let Some(m) = w.default_payment_method::<PaymentMethod>(&s.customer_id).await? {
        return Ok(Some((m.id, m.doc)));
    }
    Ok(match s.payment_method_id {
        Some(id) => w
            .lock_payment_method::<PaymentMethod>(id)
            .await?
            .filter(|m| m.doc.status != super::methods::DETACHED)
            .map(|m| (id, m.doc)),
        None => None,
    })
}

/// Charges a subscription's saved method for `total`, recording the order.
/// Returns the order; the subscription is not saved here.
#[allow(clippy::too_many_arguments)]
pub(super) async fn charge_subscription(
    state: &AppState,
    w: &mut Work,
    s: &Subscription,
    p: &Parties,
    lines: Vec<Line>,
    total: i64,
    kind: OrderKind,
    at: DateTime<Utc>,
) -> ServiceResult<Order> {
    // The customer was read (and locked) with the parties already.
    let address = p.customer.billing_address.clone();
    let mut lines = lines;
    let total =
        total + crate::tax::tax_invoice(state, w, address.as_ref(), s.tax_behavior.as_deref(), &mut lines).await?;
    let mut method = billing_method(w, s).await?;
    let purpose = format!("{}:{}:{}", kind.name(), s.id, at.timestamp_micros());
    let outcome = match method.as_mut() {
        _ if total <= 0 => Ok(payments::Paid::default()),
        Some((_, m)) => payments::charge(state, w, m, total, &s.currency, &purpose).await?,
        None => Err(PayError::Declined("There is no payment method to charge.".into())),
    };
    let charged = if outcome.is_ok() { Charged::Paid } else { Charged::Declined };
    if let Some((id, m)) = &method {
        w.save_payment_method(*id, m).await?;
    }
    let pm = method.as_ref().map(|(i, m)| (*i, m));
    let paid_by = outcome.ok().and_then(|p| p.payment_ref);
    record_payment(state, w, s, pm, lines, total, charged, kind, address.as_ref(), paid_by, at).await
}

/// A period's invoice lines: the plan, a proration owed, the usage, the
/// subscription's discount while it lasts, and its credit (at most what is
/// left to pay). Returns the lines and the credit used.
pub fn renewal_lines(s: &Subscription, usage: Vec<Line>) -> (Vec<Line>, i64) {
    let mut lines = vec![Line::plain(format!("{} ({})", s.plan_name, s.charge_period.as_str()), s.amount_minor)];
    if s.debit_minor > 0 {
        lines.push(Line::of_kind(LineKind::Proration, "Proration from a plan change", s.debit_minor));
    }
    lines.extend(usage);
    if let Some(line) = s.discount.as_ref().and_then(|d| d.line(&lines)) {
        lines.push(line);
    }
    let net: i64 = lines.iter().map(|l| l.amount_minor).sum();
    let credit_used = s.credit_minor.min(net).max(0);
    if credit_used > 0 {
        lines.push(Line::of_kind(LineKind::Credit, "Account credit", -credit_used));
    }
    (lines, credit_used)
}

/// Collects a renewal (or the first period after a trial) at `at`, with
/// the usage of the period that ended: paid → active; declined → past due
/// with retries. A discount counts the invoice as one of its cycles.
pub(super) async fn collect_period(
    state: &AppState,
    w: &mut Work,
    s: &mut Subscription,
    p: &Parties,
    usage: Vec<Line>,
    at: DateTime<Utc>,
) -> ServiceResult<()> {
    let (lines, credit_used) = renewal_lines(s, usage);
    let total = lines.iter().map(|l| l.amount_minor).sum();
    if let Some(d) = s.discount.as_mut() {
        d.use_cycle();
    }
    s.discount = s.discount.take().filter(|d| d.live());
    let mut order = charge_subscription(state, w, s, p, lines, total, OrderKind::Renewal, at).await?;
    s.credit_minor -= credit_used;
    s.debit_minor = 0;
    let before = s.status;
    if order.status == OrderStatus::Complete {
        s.status = SubStatus::Active;
        s.unpaid_order = None;
    } else {
        s.fall_past_due(at, &order.id, &dunning(state));
        if s.next_retry_at.is_none() {
            order.invoice_status = InvoiceStatus::Uncollectible;
            save_order(w, &order).await?;
            crate::invoices::follow_order(w, &order, at).await?;
            s.end(at, "CANCELLED_BY_PROVIDER");
        }
    }
    s.modified_at = at;
    let link = pay_link(state, w.tenant(), &order);
    order_events(w, &order, p, Some(link), OrderNews::Created).await?;
    if s.status != before || order.status != OrderStatus::Complete {
        subscription_event(w, "subscription.updated", s, p, None, at).await?;
    }
    if s.status == SubStatus::Canceled {
        subscription_event(w, "subscription.cancelled", s, p, None, at).await?;
    }
    Ok(())
}

pub(super) fn pay_link(state: &AppState, tenant: &Tenant, o: &Order) -> String {
    crate::invoices::pay_link::url(state, tenant, &o.invoice_id)
}

/// Runs one due item of a locked subscription at its due time.
pub(super) async fn run_item(
    state: &AppState,
    w: &mut Work,
    mut s: Subscription,
    p: Parties,
    (at, due): (DateTime<Utc>, Due),
    metered: &Metered,
) -> ServiceResult<()> {
    match due {
        Due::Cancel => {
            let usage = metered.lines(&mut s, at, true);
            if !usage.is_empty() {
                bill_final_usage(state, w, &s, &p, usage, at).await?;
            }
            s.end(at, "CANCELLED_BY_MERCHANT");
            s.modified_at = at;
            subscription_event(w, "subscription.cancelled", &s, &p, None, at).await?;
        }
        Due::TrialEnd => {
            // The trial's usage, where its charges bill it, with the first period.
            let usage = metered.lines(&mut s, at, true);
            s.anchor_at = at;
            s.period_index = 0;
            let (start, end) = s.period_bounds(0).expect("trials are recurring");
            (s.period_start, s.period_end) = (Some(start), Some(end));
            collect_period(state, w, &mut s, &p, usage, at).await?;
        }
        Due::Renew => {
            // The period that ends is billed for its usage before it moves on.
            let usage = metered.lines(&mut s, at, true);
            let before = events::subscription_object(&s, &p.sold(s.product_id), w.tenant());
            let mut changed_plan = false;
            if let Some(change) = s.pending_change.take() {
                changed_plan = change.plan_id != s.plan_id;
                s.plan_id = change.plan_id;
                s.plan_identifier = change.plan_identifier;
                s.plan_name = change.plan_name;
                s.plan_version = change.plan_version;
                s.product_id = change.product_id;
                s.features = change.features;
                s.amount_minor = change.amount_minor;
                if change.charge_period != s.charge_period {
                    s.charge_period = change.charge_period;
                    s.anchor_at = at;
                    s.period_index = -1;
                }
            }
            s.period_index += 1;
            let (start, end) = s.period_bounds(s.period_index).expect("renewals are recurring");
            (s.period_start, s.period_end) = (Some(start), Some(end));
            if changed_plan {
                let p2 = parties(w, &s.customer_id, s.product_id).await?;
                subscription_event(w, "subscription.plan_changed", &s, &p2, before.as_object().cloned(), at).await?;
            }
            collect_period(state, w, &mut s, &p, usage, at).await?;
        }
        Due::Retry => {
            let order_id = s.unpaid_order.clone().unwrap_or_default();
            let mut order = lock_order(w, &order_id).await?;
            if !charge_unpaid(state, w, &mut s, &mut order, &p, at).await? {
                s.retries += 1;
                let since = s.past_due_since.unwrap_or(at);
                s.next_retry_at = dunning(state).next_retry(since, s.retries);
                if s.next_retry_at.is_none() {
                    // Out of retries: the invoice is written off, the subscription ends.
                    order.invoice_status = InvoiceStatus::Uncollectible;
                    save_order(w, &order).await?;
                    crate::invoices::follow_order(w, &order, at).await?;
                    s.end(at, "CANCELLED_BY_PROVIDER");
                    subscription_event(w, "subscription.cancelled", &s, &p, None, at).await?;
                }
            }
            s.modified_at = at;
        }
    }
    save_subscription(w, &s).await?;
    w.entitlements_changed(&s.customer_id, at).await?;
    Ok(())
}

async fn lock_order(w: &mut Work, order_id: &str) -> ServiceResult<Order> {
    w.lock(DocTable::Orders, order_id)
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("unpaid order {order_id} is gone")))
}

/// Charges a subscription's unpaid order with its billing method. Paid:
/// the order, its invoice and the subscription are settled (the
/// subscription is not saved here). Returns whether it was paid.
async fn charge_unpaid(
    state: &AppState,
    w: &mut Work,
    s: &mut Subscription,
    order: &mut Order,
    p: &Parties,
    at: DateTime<Utc>,
) -> ServiceResult<bool> {
    let mut paid = None;
    if let Some((id, mut m)) = billing_method(w, s).await? {
        let purpose = format!("retry:{}:{}", order.id, at.timestamp_micros());
        paid = payments::charge(state, w, &mut m, order.total_minor, &order.currency, &purpose).await?.ok();
        w.save_payment_method(id, &m).await?;
        s.payment_method_id = Some(id);
    }
    let Some(paid) = paid else {
        return Ok(false);
    };
    settle(state, w, s, order, p, paid.payment_ref, at).await?;
    Ok(true)
}

/// Settles an unpaid order paid with `payment_ref`: the order, its invoice,
/// its transaction and the subscription it kept waiting (not saved here).
async fn settle(
    state: &AppState,
    w: &mut Work,
    s: &mut Subscription,
    order: &mut Order,
    p: &Parties,
    payment_ref: Option<String>,
    at: DateTime<Utc>,
) -> ServiceResult<()> {
    if let Some(payment) = &payment_ref {
        w.link_provider_payment(payment, &order.id).await?;
    }
    order.provider_payment = payment_ref;
    order.status = OrderStatus::Complete;
    order.invoice_status = InvoiceStatus::Paid;
    order.paid_at = Some(at);
    save_order(w, order).await?;
    crate::invoices::follow_order(w, order, at).await?;
    let method = match order.payment_method_id.or(s.payment_method_id) {
        Some(id) => w.lock_payment_method::<PaymentMethod>(id).await?.map(|m| m.doc),
        None => None,
    };
    save_transaction(w, &charge_transaction(state, order, method.as_ref(), Charged::Paid, at)).await?;
    order_events(w, order, p, None, OrderNews::Updated).await?;
    if s.unpaid_order.as_deref() == Some(order.id.as_str()) {
        s.status = SubStatus::Active;
        s.past_due_since = None;
        s.next_retry_at = None;
        s.unpaid_order = None;
        s.retries = 0;
        s.modified_at = at;
        subscription_event(w, "subscription.updated", s, p, None, at).await?;
    }
    Ok(())
}

/// The subscription an unpaid order bills, locked, and its parties.
async fn paying_subscription(w: &mut Work, order: &Order) -> ServiceResult<(Subscription, Parties)> {
    let Some(sub_id) = order.subscription_id else {
        return Err(ServiceError::BadRequest("Only a subscription's invoice can be paid again.".into()));
    };
    let s = w
        .lock::<Subscription>(DocTable::Subscriptions, &sub_id.to_string())
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("subscription {sub_id} is gone")))?;
    let p = parties(w, &s.customer_id, s.product_id).await?;
    Ok((s, p))
}

/// Tries now to collect an unpaid order of a subscription (an invoice paid
/// on demand). Returns whether it was paid; a decline changes nothing else.
pub async fn collect_unpaid(state: &AppState, w: &mut Work, order_id: &str, at: DateTime<Utc>) -> ServiceResult<bool> {
    let mut order = lock_order(w, order_id).await?;
    let (mut s, p) = paying_subscription(w, &order).await?;
    if !charge_unpaid(state, w, &mut s, &mut order, &p, at).await? {
        return Ok(false);
    }
    save_subscription(w, &s).await?;
    w.entitlements_changed(&s.customer_id, at).await?;
    Ok(true)
}

/// Settles an unpaid order the customer paid on a provider's page (its
/// payment link) with `payment_method` (made the subscription's method).
/// Returns false when the order was no longer unpaid (paid meanwhile).
pub async fn collect_paid(
    state: &AppState,
    w: &mut Work,
    order_id: &str,
    payment_ref: Option<String>,
    payment_method: Option<i64>,
    at: DateTime<Utc>,
) -> ServiceResult<bool> {
    let mut order = lock_order(w, order_id).await?;
    if !matches!(order.invoice_status, InvoiceStatus::PaymentFailed | InvoiceStatus::Open) {
        return Ok(false);
    }
    let (mut s, p) = paying_subscription(w, &order).await?;
    if payment_method.is_some() {
        s.payment_method_id = payment_method;
        order.payment_method_id = payment_method;
    }
    settle(state, w, &mut s, &mut order, &p, payment_ref, at).await?;
    save_subscription(w, &s).await?;
    w.entitlements_changed(&s.customer_id, at).await?;
    Ok(true)
}

/// What [`run_due`] did.
#[derive(Debug, Clone, Copy)]
pub struct DueRun {
    /// How many items ran.
    pub ran: u64,
    /// The due time of the last item run, when `limit` items ran before
    /// everything due was done (what is due later is left for another call).
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Bills the usage of a period that ends early (a cancellation): its own
/// order and invoice, charged now.
pub(super) async fn bill_final_usage(
    state: &AppState,
    w: &mut Work,
    s: &Subscription,
    p: &Parties,
    usage: Vec<Line>,
    at: DateTime<Utc>,
) -> ServiceResult<()> {
    let total = usage.iter().map(|l| l.amount_minor).sum();
    let order = charge_subscription(state, w, s, p, usage, total, OrderKind::FinalUsage, at).await?;
    let link = pay_link(state, w.tenant(), &order);
    order_events(w, &order, p, Some(link), OrderNews::Created).await?;
    Ok(())
}

/// Runs everything of the tenant that falls due at or before `until`, in
/// due order, each at its own due time, at most `limit` items.
pub async fn run_due(state: &AppState, tenant: &Tenant, until: DateTime<Utc>, limit: u64) -> ServiceResult<DueRun> {
    let mut ran = 0;
    let mut last = None;
    let mut position = None;
    loop {
        // Those due at the next instant, a batch per unit of work; what
        // they bill in arrears is read before the work begins.
        let room = limit.saturating_sub(ran).clamp(1, DUE_BATCH) as i64;
        let peeked: Vec<(DuePosition, Subscription)> = state.store.peek_due(tenant, until, position, room).await?;
        let Some((next, _)) = peeked.last() else {
            // The end of an instant's walk: once more from the start, for
            // what it passed over (held elsewhere, changed) or what fell due since.
            if position.take().is_some() {
                continue;
            }
            break;
        };
        if ran >= limit {
            return Ok(DueRun { ran, stopped_at: last });
        }
        position = Some(*next);
        let subs: Vec<Subscription> = peeked.into_iter().map(|p| p.1).collect();
        let metered = super::arrears::metered_many(state, tenant, &subs).await?;
        let batch = payments::charging(state, tenant, payments::Op::Due, || {
            Box::pin(run_batch(state, tenant, &subs, &metered, until))
        })
        .await?;
        ran += batch.ran;
        last = batch.stopped_at.or(last);
        if batch.ran == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    Ok(DueRun { ran, stopped_at: None })
}

/// Runs the due items of a batch of subscriptions in one unit of work: the
/// subscriptions, their customers and default payment methods locked and
/// read at once, the ids of their orders drawn at once, and what they write
/// sent together when the work commits.
async fn run_batch(
    state: &AppState,
    tenant: &Tenant,
    subs: &[Subscription],
    metered: &[Metered],
    until: DateTime<Utc>,
) -> ServiceResult<DueRun> {
    let mut w = state.store.begin(tenant).await?;
    w.defer_writes();
    let ids: Vec<String> = subs.iter().map(|s| s.id.to_string()).collect();
    // Not due any more, held by another process, or changed: the next round sees it.
    let locked: Vec<Subscription> = w.lock_due(&ids, until).await?;
    let metered: HashMap<uuid::Uuid, &Metered> = subs.iter().map(|s| s.id).zip(metered).collect();
    let mut customers: Vec<&str> = locked.iter().map(|s| s.customer_id.as_str()).collect();
    customers.sort_unstable();
    customers.dedup();
    let mut parties = BatchParties::read(&mut w, &customers).await?;
    w.read_default_payment_methods_of(&customers).await?;
    let due: Vec<_> = locked.iter().filter_map(|s| s.next_due()).filter(|(at, _)| *at <= until).collect();
    if let Some((at, _)) = due.first() {
        reserve_order_ids(&mut w, *at, due.len()).await?;
    }
    let (mut ran, mut last) = (0, None);
    for s in locked {
        let Some(m) = metered.get(&s.id).filter(|m| m.is_for(&s)) else { continue };
        match s.next_due() {
            Some((at, due)) if at <= until => {
                let p = parties.of(&mut w, &s).await?;
                run_item(state, &mut w, s, p, (at, due), m).await?;
                ran += 1;
                last = Some(at);
            }
            // The column was stale: correct it.
            _ => save_subscription(&mut w, &s).await?,
        }
    }
    finish(state, w).await?;
    Ok(DueRun { ran, stopped_at: last })
}

/// Subscriptions renewed in one unit of work (one commit) by [`run_due`].
const DUE_BATCH: u64 = 100;
