//! The records a sale writes: subscriptions, orders, invoices and
//! transactions, and the outbox events that announce them.

use super::*;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{order_number, Line, LineKind, Order, PaymentMethod, Subscription, Transaction};
use kelviq_core::customer::{BillingAddress, Customer};
use kelviq_core::events::{self, OutboxEvent, Sold};
use kelviq_store::{DocColumns, DocTable, Work};
use serde_json::{Map, Value};

pub(super) fn order_columns(o: &Order) -> DocColumns {
    DocColumns {
        customer_id: Some(o.customer_id.clone()),
        status: Some(o.status.as_str().into()),
        invoice_id: Some(o.invoice_id.clone()),
        subscription_id: o.subscription_id.map(|i| i.to_string()),
        billing_type: Some(o.billing_type.clone()),
        is_renewal: o.is_renewal,
        paid_at: o.paid_at,
        created_at: o.created_at,
        modified_at: o.created_at,
        ..Default::default()
    }
}

pub async fn save_subscription(w: &mut Work, s: &Subscription) -> ServiceResult<()> {
    w.put_subscription(s).await?;
    Ok(())
}

pub async fn save_order(w: &mut Work, o: &Order) -> ServiceResult<()> {
    w.put(DocTable::Orders, &o.id, o, &order_columns(o)).await?;
    Ok(())
}

/// The customer and product names an event needs.
pub struct Parties {
    pub customer: Customer,
    pub product_name: String,
}

impl Parties {
    pub fn sold(&self, product_id: uuid::Uuid) -> Sold<'_> {
        Sold { customer: &self.customer, product_id, product_name: &self.product_name }
    }
}

pub(super) async fn parties(w: &mut Work, customer_id: &str, product_id: uuid::Uuid) -> ServiceResult<Parties> {
    let customer = match w.lock_customer(customer_id).await? {
        Some(c) => c,
        None => w.find_customer_any(customer_id).await?.ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("customer {customer_id} of a subscription is gone"))
        })?,
    };
    let product_name = w.find_product_any(&product_id.to_string()).await?.map(|p| p.name).unwrap_or_default();
    Ok(Parties { customer, product_name })
}

/// Writes a transaction.
pub(super) async fn save_transaction(w: &mut Work, t: &Transaction) -> ServiceResult<()> {
    let cols = DocColumns {
        status: Some(t.status.as_str().into()),
        order_id: Some(t.order_id.clone()),
        created_at: t.created_at,
        modified_at: t.created_at,
        ..Default::default()
    };
    w.insert_doc(DocTable::Transactions, &t.id.to_string(), t, &cols).await?;
    Ok(())
}

/// A successful or failed charge for an order.
pub(super) fn charge_transaction(
    state: &AppState,
    o: &Order,
    pm: Option<&PaymentMethod>,
    charged: Charged,
    at: DateTime<Utc>,
) -> Transaction {
    let paid = charged.paid();
    let sale = if o.billing_type == "SUBSCRIPTION" { Sale::Subscription } else { Sale::OneTime };
    Transaction {
        id: uuid::Uuid::new_v4(),
        order_id: o.id.clone(),
        transaction_type: "CHARGE".into(),
        status: if paid { TransactionStatus::Success } else { TransactionStatus::Failure },
        currency: o.currency.clone(),
        amount_minor: o.total_minor,
        fees: if paid { fees(state).fees(o.total_minor, sale) } else { Vec::new() },
        tax_minor: o.tax_minor,
        payment_method_type: "card".into(),
        payment_method_name: pm.map(|m| m.brand.clone()),
        last4: pm.map(|m| m.last4.clone()),
        created_at: at,
    }
}

/// A payment attempt's record: the order (and invoice) and, when money moved, the transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record_payment(
    state: &AppState,
    w: &mut Work,
    s: &Subscription,
    pm: Option<(i64, &PaymentMethod)>,
    lines: Vec<Line>,
    total: i64,
    charged: Charged,
    kind: OrderKind,
    address: Option<&BillingAddress>,
    provider_payment: Option<String>,
    at: DateTime<Utc>,
) -> ServiceResult<Order> {
    let paid = charged.paid();
    let tax: i64 = lines.iter().filter(|l| l.kind == LineKind::Tax).map(|l| l.amount_minor).sum();
    let discount: i64 = -lines.iter().filter(|l| l.kind == LineKind::Discount).map(|l| l.amount_minor).sum::<i64>();
    let subtotal: i64 = lines
        .iter()
        .filter(|l| !matches!(l.kind, LineKind::Tax | LineKind::Discount))
        .map(|l| l.amount_minor)
        .sum::<i64>()
        .max(total - tax + discount);
    let (id, invoice_id) = match w.take_free_order_ids(at) {
        Some(ids) => ids,
        None => draw_order_ids(w, at).await?,
    };
    let order = Order {
        id,
        invoice_id,
        customer_uuid: s.customer_uuid,
        customer_id: s.customer_id.clone(),
        subscription_id: Some(s.id),
        plan_id: s.plan_id,
        plan_identifier: s.plan_identifier.clone(),
        plan_name: s.plan_name.clone(),
        plan_version: s.plan_version,
        product_id: s.product_id,
        charge_period: s.charge_period,
        billing_type: if s.is_one_time() { "ONE_TIME".into() } else { "SUBSCRIPTION".into() },
        is_renewal: kind == OrderKind::Renewal,
        is_trial: kind == OrderKind::TrialStart,
        status: if paid { OrderStatus::Complete } else { OrderStatus::Failed },
        invoice_status: if paid { InvoiceStatus::Paid } else { InvoiceStatus::PaymentFailed },
        currency: s.currency.clone(),
        lines,
        subtotal_minor: subtotal,
        discount_minor: subtotal + tax - total,
        tax_minor: tax,
        total_minor: total,
        refunded_minor: 0,
        paid_at: paid.then_some(at),
        due_at: at,
        created_at: at,
        payment_method_id: pm.map(|p| p.0),
        features: s.features.clone(),
        log: Vec::new(),
        provider_payment,
        dispute: None,
    };
    w.insert_doc(DocTable::Orders, &order.id, &order, &order_columns(&order)).await?;
    if let Some(payment) = &order.provider_payment {
        w.link_provider_payment(payment, &order.id).await?;
    }
    let period = s.period_start.zip(s.period_end);
    crate::invoices::issue(w, &order, period, address).await?;
    if total > 0 {
        save_transaction(w, &charge_transaction(state, &order, pm.map(|p| p.1), charged, at)).await?;
    }
    Ok(order)
}

/// An order id and an invoice id for an order made at `at`, free. Ids
/// carry the second and five random characters: many orders in one second
/// (a billing run) draw again on a collision.
async fn draw_order_ids(w: &mut Work, at: DateTime<Utc>) -> ServiceResult<(String, String)> {
    loop {
        let (id, invoice_id) = (order_number("ORD", at), order_number("INV", at));
        if !w.order_id_taken(&id, &invoice_id).await? {
            return Ok((id, invoice_id));
        }
    }
}

/// Draws `n` pairs of order and invoice ids for orders made at `at`, found
/// free in one read, and keeps them in the work for its next orders.
pub(super) async fn reserve_order_ids(w: &mut Work, at: DateTime<Utc>, n: usize) -> ServiceResult<()> {
    let mut free = Vec::with_capacity(n);
    let mut drawn = std::collections::HashSet::new();
    while free.len() < n {
        let pairs: Vec<(String, String)> = (free.len()..n)
            .map(|_| (order_number("ORD", at), order_number("INV", at)))
            .filter(|(o, i)| drawn.insert(o.clone()) & drawn.insert(i.clone()))
            .collect();
        let ids: Vec<String> = pairs.iter().flat_map(|(o, i)| [o.clone(), i.clone()]).collect();
        let taken = w.order_ids_taken(&ids).await?;
        free.extend(pairs.into_iter().filter(|(o, i)| !taken.contains(o) && !taken.contains(i)));
    }
    w.keep_free_order_ids(at, free);
    Ok(())
}

/// The parties of a batch of subscriptions: their customers read (and
/// locked) at once, each product's name read once.
pub(super) struct BatchParties {
    customers: std::collections::HashMap<String, Customer>,
    products: std::collections::HashMap<uuid::Uuid, String>,
}

impl BatchParties {
    pub(super) async fn read(w: &mut Work, customer_ids: &[&str]) -> ServiceResult<BatchParties> {
        let customers = w.lock_customers(customer_ids).await?;
        let customers = customers.into_iter().map(|c| (c.customer_id.clone(), c)).collect();
        Ok(BatchParties { customers, products: Default::default() })
    }

    /// The parties of one subscription of the batch.
    pub(super) async fn of(&mut self, w: &mut Work, s: &Subscription) -> ServiceResult<Parties> {
        let Some(customer) = self.customers.get(&s.customer_id) else {
            // Archived since: read as it was.
            return parties(w, &s.customer_id, s.product_id).await;
        };
        let product_name = match self.products.get(&s.product_id) {
            Some(name) => name.clone(),
            None => {
                let name = w.find_product_any(&s.product_id.to_string()).await?.map(|p| p.name).unwrap_or_default();
                self.products.insert(s.product_id, name.clone());
                name
            }
        };
        Ok(Parties { customer: customer.clone(), product_name })
    }
}

/// Whether an order's events announce a new order or a change to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OrderNews {
    Created,
    Updated,
}

pub(super) async fn order_events(
    w: &mut Work,
    o: &Order,
    p: &Parties,
    pay_link: Option<String>,
    news: OrderNews,
) -> ServiceResult<()> {
    let created = news == OrderNews::Created;
    let tenant = w.tenant().clone();
    let sold = p.sold(o.product_id);
    let at = o.paid_at.unwrap_or(o.created_at);
    if created {
        w.event(&OutboxEvent::new("order.created", events::order_object(o, &sold, &tenant), None, at)).await?;
    } else {
        w.event(&OutboxEvent::new("order.updated", events::order_object(o, &sold, &tenant), None, at)).await?;
    }
    let invoice_type = if o.invoice_status == InvoiceStatus::Paid { "invoice.paid" } else { "invoice.payment_failed" };
    if created {
        w.event(&OutboxEvent::new(
            "invoice.created",
            events::invoice_object(o, &sold, &tenant, pay_link.clone()),
            None,
            at,
        ))
        .await?;
    }
    w.event(&OutboxEvent::new(invoice_type, events::invoice_object(o, &sold, &tenant, pay_link), None, at)).await?;
    Ok(())
}

pub(super) async fn subscription_event(
    w: &mut Work,
    kind: &str,
    s: &Subscription,
    p: &Parties,
    previous: Option<Map<String, Value>>,
    at: DateTime<Utc>,
) -> ServiceResult<()> {
    let tenant = w.tenant().clone();
    let object = events::subscription_object(s, &p.sold(s.product_id), &tenant);
    w.event(&OutboxEvent::new(kind, object, previous, at)).await?;
    Ok(())
}

/// The fields of `before` that differ in `after`, with their old values.
pub(super) fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) && k != "modified_on" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}
