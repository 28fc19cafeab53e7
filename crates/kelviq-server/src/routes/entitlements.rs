//! The entitlement check (spec §1.3): what a customer may use, one row per
//! granting subscription (a feature can appear more than once).

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;
use crate::selling::{live_subscriptions, tenant_now};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use kelviq_core::catalog::FeatureType;
use kelviq_core::entitlements::{boolean_row, customizable_row, meter_row, meter_window, RowState};
use kelviq_core::timefmt::reset_at;
use kelviq_core::Tenant;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new().route("/entitlements", get(get_entitlements))
}

/// One granted feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub feature_id: String,
    pub feature_type: FeatureType,
    pub state: RowState,
    pub reset_at: Option<DateTime<Utc>>,
    pub subscription_id: uuid::Uuid,
}

impl Row {
    pub fn to_wire(&self) -> Value {
        let mut out = Map::new();
        out.insert("featureId".into(), json!(self.feature_id));
        out.insert("featureType".into(), json!(self.feature_type.as_str()));
        out.insert("hasAccess".into(), json!(self.state.has_access));
        if self.feature_type != FeatureType::Boolean {
            out.insert("resetAt".into(), json!(self.reset_at.map(reset_at)));
            out.insert("hardLimit".into(), json!(self.state.hard_limit));
            out.insert("usageLimit".into(), json!(self.state.usage_limit));
            out.insert("currentUsage".into(), json!(self.state.current_usage));
            out.insert("remaining".into(), json!(self.state.remaining));
        }
        Value::Object(out)
    }
}

/// A customer's entitlement rows at `now`, or `None` for an unknown customer.
pub async fn customer_rows(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<Vec<Row>>> {
    if state.store.find_customer(tenant, customer_id).await?.is_none() {
        return Ok(None);
    }
    let mut subs = live_subscriptions(state, tenant, customer_id).await?;
    subs.reverse(); // oldest first: the base plan's rows before add-ons'
    let features = state.store.features_by_id(tenant).await?;
    let mut plans = HashMap::new();
    let mut rows = Vec::new();
    for sub in &subs {
        if let std::collections::hash_map::Entry::Vacant(slot) = plans.entry(sub.plan_id) {
            let resolved = match state.store.find_plan_version(tenant, sub.plan_id).await? {
                Some(plan) => state.store.effective_entitlements(tenant, &plan).await?,
                None => Vec::new(),
            };
            slot.insert(resolved);
        }
        for e in &plans[&sub.plan_id] {
            let Some(feature) = features.get(&e.feature_id) else { continue };
            let d = &e.details;
            let (row, reset) = match feature.feature_type {
                FeatureType::Boolean => (boolean_row(d.value.as_bool().unwrap_or(false)), None),
                FeatureType::Customizable => (customizable_row(d.value.as_i64()), None),
                FeatureType::Meter => {
                    // Purchased units (seats) are the limit.
                    let bought =
                        sub.features.iter().find(|q| q.identifier == feature.identifier).map(|q| q.quantity as i64);
                    let limit = if d.has_unlimited_usage { None } else { bought.or(d.value.as_i64()) };
                    let window = meter_window(d.reset.as_deref(), d.reset_time.as_deref(), sub.started_at, now);
                    (meter_row(limit, 0, 0, d.hard_limit), window.map(|w| w.1))
                }
            };
            rows.push(Row {
                feature_id: feature.identifier.clone(),
                feature_type: feature.feature_type,
                state: row,
                reset_at: reset,
                subscription_id: sub.id,
            });
        }
    }
    Ok(Some(rows))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntitlementQuery {
    /// Your customer id (`customerId` is accepted too).
    pub customer_id: Option<String>,
    #[serde(rename = "customerId")]
    #[param(rename = "customerId")]
    pub customer_id_camel: Option<String>,
    /// Only this feature's rows.
    pub feature_id: Option<String>,
    #[serde(rename = "featureId")]
    #[param(rename = "featureId")]
    pub feature_id_camel: Option<String>,
}

/// A customer's entitlements. Server or client key.
#[utoipa::path(get, path = "/api/v1/entitlements/", tag = "entitlements", params(EntitlementQuery), security(("bearer" = [])),
    responses((status = 200, description = "`{customerId, entitlements: [...]}`"), (status = 400), (status = 401), (status = 404)))]
pub async fn get_entitlements(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EntitlementQuery>,
) -> ApiResult<Json<Value>> {
    let customer_id = q
        .customer_id
        .or(q.customer_id_camel)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::field("customer_id", "This field is required."))?;
    let feature = q.feature_id.or(q.feature_id_camel).filter(|f| !f.is_empty());
    let now = tenant_now(&state, &caller.tenant).await?;
    let rows = customer_rows(&state, &caller.tenant, &customer_id, now)
        .await?
        .ok_or_else(|| ApiError::NotFound("Customer not found.".into()))?;
    let entitlements: Vec<Value> =
        rows.iter().filter(|r| feature.as_ref().is_none_or(|f| &r.feature_id == f)).map(Row::to_wire).collect();
    Ok(Json(json!({ "customerId": customer_id, "entitlements": entitlements })))
}
