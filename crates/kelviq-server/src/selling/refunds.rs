//! Refunds.

use super::checkout::*;
use super::payments;
use super::records::*;
use super::*;
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::billing::{Order, PaymentMethod, Refund, Subscription, Transaction};
use kelviq_core::events::{self, OutboxEvent};
use kelviq_core::Tenant;
use kelviq_store::{DocColumns, DocTable};

/// How a refund is given, and why.
#[derive(Debug, Clone, Default)]
pub struct RefundTo {
    pub reason: Option<String>,
    pub note: Option<String>,
    /// As credit on the subscription's next invoices, not to the card.
    pub as_credit: bool,
}

/// Refunds (part of) an order. A full refund to the card revokes what the
/// order bought; a refund as credit leaves the subscription as it is and
/// takes the amount off its next invoices.
pub async fn refund_order(
    state: &AppState,
    tenant: &Tenant,
    order_id: &str,
    amount: Option<i64>,
    how: RefundTo,
) -> ServiceResult<Refund> {
    let op = payments::Op::request();
    payments::charging(state, tenant, op, move || Box::pin(refund_now(state, tenant, order_id, amount, how.clone())))
        .await
}

async fn refund_now(
    state: &AppState,
    tenant: &Tenant,
    order_id: &str,
    amount: Option<i64>,
    how: RefundTo,
) -> ServiceResult<Refund> {
    let RefundTo { reason, note, as_credit } = how;
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut order: Order =
        w.lock(DocTable::Orders, order_id).await?.ok_or_else(|| ServiceError::NotFound("Order not found.".into()))?;
    if !order.status.refundable() {
        return Err(ServiceError::BadRequest(format!("A {} order cannot be refunded.", order.status)));
    }
    let remaining = order.total_minor - order.refunded_minor;
    let amount = amount.unwrap_or(remaining);
    if amount > remaining {
        return Err(ServiceError::Error("Amount exceeds order total.".into()));
    }
    if amount <= 0 {
        return Err(ServiceError::Error("Nothing is left to refund on this order.".into()));
    }
    let method = match order.payment_method_id {
        Some(id) => w.lock_payment_method::<PaymentMethod>(id).await?.map(|m| m.doc),
        None => None,
    };
    let mut credited = match order.subscription_id {
        Some(id) if as_credit => w.lock::<Subscription>(DocTable::Subscriptions, &id.to_string()).await?,
        _ => None,
    };
    if as_credit {
        match credited.as_mut().filter(|s| s.status.grants() && !s.is_one_time()) {
            Some(s) => {
                s.credit_minor += amount;
                s.modified_at = now;
                save_subscription(&mut w, s).await?;
            }
            None => {
                return Err(ServiceError::field(
                    "as_credit",
                    "Only an order of a live subscription can be refunded as credit.",
                ))
            }
        }
    } else {
        let purpose = format!("refund:{}:{}", order.id, order.refunded_minor);
        payments::refund(state, &mut w, &order, method.as_ref(), amount, &purpose).await?.map_err(pay_error)?;
    }
    let refund = Refund {
        id: uuid::Uuid::new_v4(),
        order_id: order.id.clone(),
        amount_minor: amount,
        currency: order.currency.clone(),
        reason: Some(reason.unwrap_or_else(|| "REQUESTED_BY_CUSTOMER".into())),
        internal_note: note,
        status: RefundStatus::Succeeded,
        failure_reason: None,
        as_credit,
        created_at: now,
    };
    let cols = DocColumns {
        status: Some(refund.status.as_str().into()),
        order_id: Some(order.id.clone()),
        created_at: now,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::Refunds, &refund.id.to_string(), &refund, &cols).await?;
    if !as_credit {
        refund_transaction(&mut w, &order, method.as_ref(), amount, now).await?;
    }
    order.refunded_minor += amount;
    let full = order.refunded_minor >= order.total_minor;
    order.status = if full { OrderStatus::Refunded } else { OrderStatus::PartialRefund };
    save_order(&mut w, &order).await?;
    let p = parties(&mut w, &order.customer_id, order.product_id).await?;
    let object = events::refund_object(&refund, &p.customer, order.subscription_id, tenant);
    w.event(&OutboxEvent::new("refund.created", object, None, now)).await?;
    let object = events::order_object(&order, &p.sold(order.product_id), tenant);
    w.event(&OutboxEvent::new("order.refunded", object, None, now)).await?;
    if full {
        // A code the order redeemed can be redeemed again.
        w.release_discount_of_order(&order.id, now).await?;
        if let Some(sub_id) = order.subscription_id {
            crate::licenses::disable_for_refund(state, &mut w, sub_id, &order.id, now).await?;
        }
    }
    if full && !as_credit {
        if let Some(sub_id) = order.subscription_id {
            if let Some(mut s) = w.lock::<Subscription>(DocTable::Subscriptions, &sub_id.to_string()).await? {
                if s.status.grants() {
                    s.end(now, "CANCELLED_BY_MERCHANT");
                    s.modified_at = now;
                    save_subscription(&mut w, &s).await?;
                    subscription_event(&mut w, "subscription.cancelled", &s, &p, None, now).await?;
                    w.entitlements_changed(&s.customer_id, now).await?;
                }
            }
        }
    }
    finish(state, w).await?;
    Ok(refund)
}

/// The money going back to the card, as a transaction.
async fn refund_transaction(
    w: &mut kelviq_store::Work,
    order: &Order,
    method: Option<&PaymentMethod>,
    amount: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> ServiceResult<()> {
    let t = Transaction {
        id: uuid::Uuid::new_v4(),
        order_id: order.id.clone(),
        transaction_type: "REFUND".into(),
        status: TransactionStatus::Success,
        currency: order.currency.clone(),
        amount_minor: -amount,
        fees: Vec::new(),
        tax_minor: 0,
        payment_method_type: "card".into(),
        payment_method_name: method.map(|m| m.brand.clone()),
        last4: method.map(|m| m.last4.clone()),
        created_at: now,
    };
    let cols = DocColumns {
        status: Some("success".into()),
        order_id: Some(order.id.clone()),
        created_at: now,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::Transactions, &t.id.to_string(), &t, &cols).await?;
    Ok(())
}
