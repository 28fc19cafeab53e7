//! The selling engine: completing checkouts, buying, changing and cancelling
//! subscriptions, renewals and their retries, refunds, and the scheduler
//! that runs due work. Every operation is one store [`Work`] (transaction):
//! records, outbox events and the entitlement change notice commit together.

pub mod arrears;
mod checkout;
mod disputes;
pub mod methods;
pub mod payments;
mod publish;
mod records;
mod refunds;
mod renewals;
pub mod scheduler;
pub mod sessions;
mod subscriptions;
pub mod test_clock;

pub use self::checkout::*;
pub use self::disputes::*;
pub use self::publish::*;
pub use self::records::*;
pub use self::refunds::*;
pub use self::renewals::*;
pub use self::scheduler::*;
pub use self::subscriptions::*;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::billing::{
    Adoption, Charged, Dunning, FeatureQuantity, FeeSchedule, InvoiceStatus, Line, OrderKind, OrderStatus, Quote,
    RefundStatus, Sale, SessionStatus, TransactionStatus,
};
use kelviq_core::plans::{ChargePeriod, PlanVersion};
use kelviq_core::Tenant;
use kelviq_store::{StoreError, Work};
use std::collections::HashMap;

/// Commits a unit of work and forgets this process's cached entitlement
/// state (and licenses) of every customer it changed (other processes learn
/// through the change feed), so the very next check sees the change.
pub async fn finish(state: &AppState, w: Work) -> Result<(), StoreError> {
    for (tenant, customer) in w.commit().await? {
        state.entitlements.evict(tenant.org_id, tenant.env, &customer);
        state.licenses.cache.evict_customer(tenant.org_id, tenant.env, &customer);
    }
    Ok(())
}

pub fn dunning(state: &AppState) -> Dunning {
    Dunning { grace_days: state.config.grace_period_days, retries: state.config.renewal_retries }
}

pub fn fees(state: &AppState) -> FeeSchedule {
    FeeSchedule {
        base_bp: state.config.fee_base_bp,
        fixed_minor: state.config.fee_fixed_minor,
        subscription_bp: state.config.fee_subscription_bp,
    }
}

/// Feature identifiers by stored feature id, for quotes.
pub async fn feature_identifiers(state: &AppState, tenant: &Tenant) -> ServiceResult<HashMap<String, String>> {
    Ok(state.store.features_by_id(tenant).await?.into_values().map(|f| (f.id.to_string(), f.identifier)).collect())
}

/// Prices a plan, with errors naming the request field.
pub fn quote_plan(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: Option<&str>,
    features: &[FeatureQuantity],
    identifiers: &HashMap<String, String>,
) -> ServiceResult<Quote> {
    kelviq_core::billing::quote(plan, period, currency, features, &|id| identifiers.get(id).cloned())
        .map_err(|e| ServiceError::field(e.field, e.message))
}

/// The published plan, or a 400 naming `planIdentifier`.
pub async fn published_plan(state: &AppState, tenant: &Tenant, identifier: &str) -> ServiceResult<PlanVersion> {
    state.store.find_published_plan(tenant, identifier).await?.ok_or_else(|| {
        ServiceError::field("plan_identifier", format!("Plan \"{identifier}\" does not exist or is not published."))
    })
}
