//! Disputes (chargebacks) of payments, as the provider reports them: kept
//! on the order with an entry in its log, and sent as `order.disputed`
//! (opened) or `order.dispute_updated` (its status moved: under review,
//! won, lost). Our additions to the event catalog. What the dispute does
//! to the subscription is the merchant's call (a lost dispute is money
//! gone, like a refund they did not choose); nothing is revoked here.

use super::records::*;
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::billing::{LogEntry, Order, OrderDispute};
use kelviq_core::events::{self, OutboxEvent};
use kelviq_core::Tenant;
use kelviq_store::DocTable;
use serde_json::json;

/// Records a dispute of order `order_id`'s payment; whether anything changed
/// (a repeated report of the same status changes nothing).
pub async fn record_dispute(
    state: &AppState,
    tenant: &Tenant,
    order_id: &str,
    id: &str,
    amount_minor: i64,
    reason: &str,
    status: &str,
) -> ServiceResult<bool> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut order: Order =
        w.lock(DocTable::Orders, order_id).await?.ok_or_else(|| ServiceError::NotFound("Order not found.".into()))?;
    let opened = order.dispute.as_ref().is_none_or(|d| d.id != id);
    if order.dispute.as_ref().is_some_and(|d| d.id == id && d.status == status) {
        return Ok(false);
    }
    let dispute = OrderDispute {
        id: id.to_string(),
        amount_minor,
        reason: reason.to_string(),
        status: status.to_string(),
        opened_at: order.dispute.as_ref().filter(|d| d.id == id).map_or(now, |d| d.opened_at),
    };
    let title =
        if opened { format!("Payment disputed by the cardholder ({reason})") } else { format!("Dispute {status}") };
    order.log.push(LogEntry {
        id: order.log.len() as i64 + 1,
        title,
        code: if opened { "order.disputed".into() } else { "order.dispute_updated".into() },
        status: status.to_string(),
        at: now,
        metadata: json!({"disputeId": id, "amountUnits": amount_minor, "reason": reason}),
    });
    order.dispute = Some(dispute);
    save_order(&mut w, &order).await?;
    let p = parties(&mut w, &order.customer_id, order.product_id).await?;
    let mut object = events::order_object(&order, &p.sold(order.product_id), tenant);
    object["dispute"] = json!({"id": id, "amountUnits": amount_minor, "currency": order.currency, "reason": reason,
        "status": status});
    let kind = if opened { "order.disputed" } else { "order.dispute_updated" };
    w.event(&OutboxEvent::new(kind, object, None, now)).await?;
    super::finish(state, w).await?;
    Ok(true)
}
