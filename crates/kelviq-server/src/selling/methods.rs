//! A customer's saved payment methods: add a card through the provider,
//! choose the default (the one renewals charge), remove one that is not the
//! default. Removed methods stay on record (orders and refunds name them)
//! with the status `detached`, and no longer list or pay.

use super::payments::{card_taker, CardInput};
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::billing::PaymentMethod;
use kelviq_core::events::{self, OutboxEvent};
use kelviq_core::Tenant;
use kelviq_store::Work;

/// The status of a removed method.
pub const DETACHED: &str = "detached";

/// Saves a card for the customer; it becomes the default when asked or when
/// the customer has none. Returns its id.
pub async fn add_card(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    card: &CardInput,
    make_default: bool,
) -> ServiceResult<i64> {
    let now = tenant_now(state, tenant).await?;
    let taker = card_taker(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let customer =
        w.lock_customer(customer_id).await?.ok_or_else(|| ServiceError::field("customer_id", "Invalid customer id"))?;
    let method = taker.attach(card, &customer, now).map_err(|e| ServiceError::field("card", e.to_string()))?;
    save(w, &customer, method, make_default, now).await
}

/// Saves a card the customer entered on a provider's page (its
/// `provider` set); a card saved before (the same provider method) is not
/// saved twice. Returns its id, or None when it was saved before.
pub async fn add_provider_card(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    method: PaymentMethod,
    make_default: bool,
) -> ServiceResult<Option<i64>> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let customer =
        w.lock_customer(customer_id).await?.ok_or_else(|| ServiceError::field("customer_id", "Invalid customer id"))?;
    // Under the customer's lock: a return and a webhook racing save it once.
    let known = w.payment_methods_of::<PaymentMethod>(customer_id).await?;
    if known.iter().any(|m| m.doc.provider.is_some() && m.doc.provider == method.provider) {
        return Ok(None);
    }
    let method = PaymentMethod { customer_uuid: customer.id, customer_id: customer.customer_id.clone(), ..method };
    save(w, &customer, method, make_default, now).await.map(Some)
}

/// Saves `method` for `customer` in `w` and commits; the default when
/// asked or when the customer has none.
async fn save(
    mut w: Work,
    customer: &kelviq_core::customer::Customer,
    method: PaymentMethod,
    make_default: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> ServiceResult<i64> {
    let tenant = w.tenant().clone();
    let customer_id = customer.customer_id.as_str();
    let is_default = make_default || w.default_payment_method::<PaymentMethod>(customer_id).await?.is_none();
    let id = w.insert_payment_method(customer_id, &method, is_default, now).await?;
    let object = events::payment_method_object(id, &method, is_default, customer, &tenant);
    w.event(&OutboxEvent::new("payment_method.created", object, None, now)).await?;
    w.commit().await?;
    Ok(id)
}

/// A live method of the tenant, locked; of `customer` when given.
async fn live(w: &mut Work, id: i64, customer: Option<&str>) -> ServiceResult<(PaymentMethod, bool)> {
    let m = w.lock_payment_method::<PaymentMethod>(id).await?;
    match m {
        Some(m) if m.doc.status != DETACHED && customer.is_none_or(|c| c == m.doc.customer_id) => {
            Ok((m.doc, m.is_default))
        }
        _ => Err(ServiceError::not_found()),
    }
}

async fn announce(w: &mut Work, kind: &str, id: i64, m: &PaymentMethod, is_default: bool) -> ServiceResult<()> {
    let tenant = w.tenant().clone();
    let customer = w.find_customer_any(&m.customer_id).await?.ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("customer {} of a payment method is gone", m.customer_id))
    })?;
    let object = events::payment_method_object(id, m, is_default, &customer, &tenant);
    w.event(&OutboxEvent::new(kind, object, None, m.modified_at)).await?;
    Ok(())
}

/// Makes a method its customer's default.
pub async fn make_default(state: &AppState, tenant: &Tenant, id: i64, customer: Option<&str>) -> ServiceResult<()> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let (mut m, was_default) = live(&mut w, id, customer).await?;
    if was_default {
        return Ok(());
    }
    w.set_default_payment_method(&m.customer_id.clone(), id).await?;
    m.modified_at = now;
    w.save_payment_method(id, &m).await?;
    announce(&mut w, "payment_method.updated", id, &m, true).await?;
    w.commit().await?;
    if let Some(at) = &m.provider {
        crate::providers::stripe::methods::mirror_default(state, tenant, at).await;
    }
    Ok(())
}

/// Removes a method that is not its customer's default.
pub async fn detach(state: &AppState, tenant: &Tenant, id: i64, customer: Option<&str>) -> ServiceResult<()> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let (mut m, is_default) = live(&mut w, id, customer).await?;
    if is_default {
        return Err(ServiceError::BadRequest(
            "The default payment method cannot be removed; make another one the default first.".into(),
        ));
    }
    m.status = DETACHED.into();
    m.modified_at = now;
    w.save_payment_method(id, &m).await?;
    announce(&mut w, "payment_method.deleted", id, &m, false).await?;
    w.commit().await?;
    if let Some(at) = &m.provider {
        crate::providers::stripe::methods::mirror_detach(state, tenant, at).await;
    }
    Ok(())
}
