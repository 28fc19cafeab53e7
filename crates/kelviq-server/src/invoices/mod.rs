//! Invoices: one issued with every order, numbered in sequence per
//! environment, with its lines and totals; listed, voided and paid.

pub mod document;
pub mod pay_link;

use crate::error::{ServiceError, ServiceResult};
use crate::selling::{self, finish};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{
    invoice_number, Invoice, InvoiceStatus, Line, LineKind, Order, OrderStatus, SubStatus, Subscription, Totals,
};
use kelviq_core::customer::BillingAddress;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use kelviq_store::{DocColumns, DocTable, Work};

/// What an invoice bills, unique per environment: a subscription's period
/// for renewals (a billing run that restarts finds it issued), else the order.
pub fn billing_key(o: &Order, period_start: Option<DateTime<Utc>>) -> String {
    match (o.is_renewal, o.subscription_id, period_start) {
        (true, Some(s), Some(start)) => format!("{s}:{}", to_micros(start)),
        _ => o.id.clone(),
    }
}

fn columns(i: &Invoice) -> DocColumns {
    DocColumns {
        customer_id: Some(i.customer_id.clone()),
        subscription_id: i.subscription_id.map(|s| s.to_string()),
        order_id: Some(i.order_id.clone()),
        status: Some(i.status.as_str().into()),
        number: Some(i.number.clone()),
        created_at: i.created_at,
        modified_at: i.modified_at,
        ..Default::default()
    }
}

/// Issues the invoice of a new order: the order's lines (a discount the
/// lines do not show becomes a line), its status and payment.
pub async fn issue(
    w: &mut Work,
    o: &Order,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    billing_address: Option<&BillingAddress>,
) -> ServiceResult<Invoice> {
    // What it bills is unique (a constraint): a second invoice for a
    // subscription's period fails the work that tries to issue it.
    let key = billing_key(o, period.map(|p| p.0));
    let lines = o.invoice_lines();
    let number = invoice_number(w.next_invoice_number().await?);
    let paid = o.invoice_status == InvoiceStatus::Paid;
    let invoice = Invoice {
        id: o.invoice_id.clone(),
        number,
        status: o.invoice_status,
        currency: o.currency.clone(),
        customer_uuid: o.customer_uuid,
        customer_id: o.customer_id.clone(),
        subscription_id: o.subscription_id,
        order_id: o.id.clone(),
        period_start: period.map(|p| p.0),
        period_end: period.map(|p| p.1),
        totals: Totals::of(&lines),
        lines,
        amount_paid_minor: if paid { o.total_minor } else { 0 },
        billing_address: billing_address.cloned(),
        due_at: o.due_at,
        paid_at: o.paid_at,
        voided_at: None,
        created_at: o.created_at,
        modified_at: o.created_at,
    };
    let cols = DocColumns { billing_key: Some(key), ..columns(&invoice) };
    w.insert_doc(DocTable::Invoices, &invoice.id, &invoice, &cols).await?;
    Ok(invoice)
}

/// Brings an order's invoice in line with the order's payment.
pub async fn follow_order(w: &mut Work, o: &Order, at: DateTime<Utc>) -> ServiceResult<()> {
    let Some(mut invoice) = w.lock::<Invoice>(DocTable::Invoices, &o.invoice_id).await? else {
        return Ok(()); // an order from before invoices were records
    };
    invoice.status = o.invoice_status;
    invoice.paid_at = o.paid_at;
    if o.invoice_status == InvoiceStatus::Paid {
        invoice.amount_paid_minor = invoice.totals.total_minor;
    }
    invoice.modified_at = at;
    w.put(DocTable::Invoices, &invoice.id, &invoice, &columns(&invoice)).await?;
    Ok(())
}

pub async fn get(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Invoice> {
    state
        .store
        .find_doc(DocTable::Invoices, tenant, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("invoice {id}")))
}

async fn lock(w: &mut Work, id: &str) -> ServiceResult<Invoice> {
    w.lock::<Invoice>(DocTable::Invoices, id).await?.ok_or_else(|| ServiceError::NotFound(format!("invoice {id}")))
}

/// Voids an unpaid invoice: nothing is owed on it any more, its order is
/// cancelled, and a subscription past due on it is active again (its
/// retries stop).
pub async fn void(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Invoice> {
    let now = crate::clock::tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut invoice = lock(&mut w, id).await?;
    if !invoice.voidable() {
        return Err(ServiceError::BadRequest(format!(
            "Invoice {} is {}: only an unpaid invoice can be voided.",
            invoice.number, invoice.status
        )));
    }
    invoice.status = InvoiceStatus::Void;
    invoice.voided_at = Some(now);
    invoice.modified_at = now;
    w.put(DocTable::Invoices, &invoice.id, &invoice, &columns(&invoice)).await?;
    if let Some(mut o) = w.lock::<Order>(DocTable::Orders, &invoice.order_id).await? {
        o.status = OrderStatus::Cancelled;
        o.invoice_status = InvoiceStatus::Void;
        selling::save_order(&mut w, &o).await?;
        let sub = match o.subscription_id {
            Some(s) => w.lock::<Subscription>(DocTable::Subscriptions, &s.to_string()).await?,
            None => None,
        };
        if let Some(mut s) = sub.filter(|s| s.unpaid_order.as_deref() == Some(o.id.as_str())) {
            if s.status == SubStatus::PastDue {
                s.status = SubStatus::Active;
            }
            (s.unpaid_order, s.past_due_since, s.next_retry_at, s.retries) = (None, None, None, 0);
            s.modified_at = now;
            selling::save_subscription(&mut w, &s).await?;
            w.entitlements_changed(&s.customer_id, now).await?;
        }
    }
    finish(state, w).await?;
    Ok(invoice)
}

/// Tries now to collect an invoice whose payment failed, with the
/// customer's billing method (as a scheduled retry would).
pub async fn pay(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Invoice> {
    let op = selling::payments::Op::request();
    selling::payments::charging(state, tenant, op, move || Box::pin(pay_now(state, tenant, id))).await
}

async fn pay_now(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Invoice> {
    let now = crate::clock::tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let invoice = lock(&mut w, id).await?;
    match invoice.status {
        InvoiceStatus::PaymentFailed | InvoiceStatus::Open => {}
        other => {
            return Err(ServiceError::BadRequest(format!(
                "Invoice {} is {other}: only an unpaid invoice can be paid.",
                invoice.number
            )))
        }
    }
    let paid = selling::collect_unpaid(state, &mut w, &invoice.order_id, now).await?;
    finish(state, w).await?;
    if !paid {
        return Err(ServiceError::Error("The payment was declined.".into()));
    }
    get(state, tenant, id).await
}

/// What the subscription's next invoice would be if its period ended now:
/// the next period's charges (a scheduled change applied) and the usage
/// of this one so far, less the customer's credit. Nothing is saved.
pub async fn upcoming(state: &AppState, tenant: &Tenant, subscription_id: &str) -> ServiceResult<Invoice> {
    let now = crate::clock::tenant_now(state, tenant).await?;
    let mut s: Subscription = state
        .store
        .find_doc(DocTable::Subscriptions, tenant, subscription_id)
        .await?
        .ok_or_else(selling::sub_not_found)?;
    if s.is_one_time() || !s.status.grants() || s.cancel_at.is_some_and(|c| s.period_end.is_none_or(|e| c <= e)) {
        return Err(ServiceError::NotFound("This subscription has no upcoming invoice.".into()));
    }
    let metered = selling::arrears::metered(state, tenant, &s).await?;
    let (Some(start), Some(end)) = (s.period_start, s.period_end) else {
        return Err(ServiceError::NotFound("This subscription has no upcoming invoice.".into()));
    };
    let usage = if s.status == SubStatus::Trialing { Vec::new() } else { metered.lines(&mut s, end, true) };
    let mut next_end = s.period_bounds(s.period_index + 1).map_or(end, |b| b.1);
    if let Some(change) = s.pending_change.take() {
        if change.charge_period != s.charge_period {
            next_end = change.charge_period.interval().map_or(end, |i| kelviq_core::periods::boundary(end, i, 1));
        }
        (s.plan_name, s.charge_period, s.amount_minor) = (change.plan_name, change.charge_period, change.amount_minor);
    }
    let mut lines: Vec<Line> = selling::renewal_lines(&s, usage)
        .0
        .into_iter()
        .map(|l| if l.kind == LineKind::Base { l.for_period(end, next_end) } else { l })
        .collect();
    let customer = state.store.find_customer_any(tenant, &s.customer_id).await?;
    let address = customer.as_ref().and_then(|c| c.billing_address.as_ref());
    crate::tax::tax_preview(state, tenant, address, s.tax_behavior.as_deref(), &mut lines).await?;
    Ok(Invoice {
        id: String::new(),
        number: String::new(),
        status: InvoiceStatus::Draft,
        currency: s.currency.clone(),
        customer_uuid: s.customer_uuid,
        customer_id: s.customer_id.clone(),
        subscription_id: Some(s.id),
        order_id: String::new(),
        period_start: Some(end),
        period_end: Some(next_end),
        totals: Totals::of(&lines),
        lines,
        amount_paid_minor: 0,
        billing_address: customer.and_then(|c| c.billing_address),
        due_at: end,
        paid_at: None,
        voided_at: None,
        created_at: now.max(start),
        modified_at: now,
    })
}

/// An invoice as a document: its invoice, the seller's name and the customer.
pub async fn document(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<(Invoice, document::Document)> {
    let invoice = get(state, tenant, id).await?;
    let seller = state.store.find_organization(tenant.org_id).await?.map(|o| o.name).unwrap_or_default();
    let customer = state.store.find_customer_any(tenant, &invoice.customer_id).await?;
    let doc = document::Document::new(&invoice, &seller, customer.as_ref());
    Ok((invoice, doc))
}
