//! Admin changes to a customer's entitlements: an override of a feature's
//! value, reverting it, and resetting a meter's usage in the current period.

use super::engine::{self as entitlements};
use super::meters::tenant_catalog;
use super::report::customer;
use super::{Op, Target};
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::wire::usage::CustomerEntitlementsOut;
use chrono::{DateTime, Utc};
use kelviq_core::catalog::{Feature, FeatureType};
use kelviq_core::Tenant;
use kelviq_store::CounterChange;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Body of the override endpoint: the values that replace the plan's.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OverrideIn {
    /// BOOLEAN: true/false; CUSTOMIZABLE: a number; METER: the limit.
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
    pub has_unlimited_usage: Option<bool>,
    pub hard_limit: Option<bool>,
    /// A METER's reset period (NEVER, EVERY_MONTH, …).
    pub reset: Option<String>,
}

async fn override_target(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    feature: &str,
) -> ServiceResult<Feature> {
    state.store.find_customer(tenant, customer_id).await?.ok_or_else(ServiceError::not_found)?;
    let catalog = tenant_catalog(state, tenant).await?;
    catalog
        .features
        .get(feature)
        .cloned()
        .ok_or_else(|| ServiceError::NotFound(format!("Feature \"{feature}\" not found.")))
}

/// Admin: give a customer their own value of a feature (with or without a plan granting it).
pub async fn set_override(
    state: &AppState,
    tenant: Tenant,
    customer_id: String,
    feature: String,
    input: OverrideIn,
) -> ServiceResult<CustomerEntitlementsOut> {
    let f = override_target(state, &tenant, &customer_id, &feature).await?;
    let mut doc = Map::new();
    match (f.feature_type, input.value.as_ref().filter(|v| !v.is_null())) {
        (FeatureType::Boolean, Some(Value::Bool(b))) => {
            doc.insert("value".into(), json!(b));
        }
        (FeatureType::Customizable, Some(v @ Value::Number(_))) => {
            doc.insert("value".into(), v.clone());
        }
        (FeatureType::Meter, Some(v)) if v.as_i64().is_some_and(|n| n >= 0) => {
            doc.insert("value".into(), v.clone());
        }
        (FeatureType::Meter, None) if input.has_unlimited_usage == Some(true) => {}
        (ty, _) => {
            let want = match ty {
                FeatureType::Boolean => "true or false",
                FeatureType::Customizable => "a number",
                FeatureType::Meter => "a whole number, at least 0 (or hasUnlimitedUsage: true)",
            };
            return Err(ServiceError::field("value", format!("A {} feature's value is {want}.", ty.as_str())));
        }
    }
    if let Some(u) = input.has_unlimited_usage {
        doc.insert("has_unlimited_usage".into(), json!(u));
    }
    if let Some(h) = input.hard_limit {
        doc.insert("hard_limit".into(), json!(h));
    }
    if let Some(r) = &input.reset {
        if !kelviq_core::plans::RESET_PERIODS.contains(&r.as_str()) {
            return Err(ServiceError::field("reset", format!("\"{r}\" is not a valid choice.")));
        }
        doc.insert("reset".into(), json!(r));
    }
    let now = tenant_now(state, &tenant).await?;
    let mut w = state.store.begin(&tenant).await?;
    w.put_override(&customer_id, &f.identifier, Some(&Value::Object(doc)), now).await?;
    w.entitlements_changed(&customer_id, now).await?;
    crate::selling::finish(state, w).await?;
    feature_rows(state, &tenant, &customer_id, &f.identifier, now).await
}

async fn feature_rows(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    feature: &str,
    now: DateTime<Utc>,
) -> ServiceResult<CustomerEntitlementsOut> {
    let c = customer(state, tenant, customer_id).await?;
    let entitlements = c.rows(now).iter().filter(|r| r.feature_id == feature).map(entitlements::Row::to_wire).collect();
    Ok(CustomerEntitlementsOut { customer_id: customer_id.to_string(), entitlements })
}

/// Admin: revert an override; the plans' values apply again.
pub async fn revert_override(
    state: &AppState,
    tenant: Tenant,
    customer_id: String,
    feature: String,
) -> ServiceResult<()> {
    let f = override_target(state, &tenant, &customer_id, &feature).await?;
    let now = tenant_now(state, &tenant).await?;
    let mut w = state.store.begin(&tenant).await?;
    if !w.put_override(&customer_id, &f.identifier, None, now).await? {
        return Err(ServiceError::NotFound("This customer has no override of this feature.".into()));
    }
    w.entitlements_changed(&customer_id, now).await?;
    crate::selling::finish(state, w).await?;
    Ok(())
}

/// Admin: reset a meter's usage in the current period to zero.
pub async fn reset_usage(
    state: &AppState,
    tenant: Tenant,
    customer_id: String,
    feature: String,
) -> ServiceResult<CustomerEntitlementsOut> {
    let f = override_target(state, &tenant, &customer_id, &feature).await?;
    if f.feature_type != FeatureType::Meter {
        return Err(ServiceError::field("feature", "Only a METER feature has usage to reset."));
    }
    let now = tenant_now(state, &tenant).await?;
    let c = customer(state, &tenant, &customer_id).await?;
    let (period_start, _) = c.counting_window(&f.identifier, now);
    let target = Target { feature: f.identifier.clone(), period_start, change: CounterChange::Set(0), alerts: None };
    let op = Op::Report { key: None, targets: vec![target], response: Value::Null };
    state.ingest.submit_one(tenant.clone(), now, customer_id.clone(), op).await?;
    feature_rows(state, &tenant, &customer_id, &f.identifier, now).await
}
