//! The entitlement check (spec §1.3): what a customer may use, one row per
//! granting subscription (a feature can appear more than once).

use crate::clock::tenant_now;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Caller, ServerCaller};
use crate::state::AppState;
use crate::usage::overrides::{self, OverrideIn};
use crate::usage::report::{self, ConsumeIn};
use crate::wire::usage::{ConsumeOut, CustomerEntitlementsOut};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

/// The check, outside the `/api/v1` nest (see `app::router`).
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/entitlements", get(get_entitlements))
}

/// Consume, and the admin changes to a customer's entitlements.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/entitlements/consume", post(consume))
        .route("/customers/{customer_id}/entitlements/{feature}/override", put(set_override).delete(revert_override))
        .route("/customers/{customer_id}/entitlements/{feature}/reset", post(reset_usage))
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
    responses((status = 200, description = "The customer's entitlement rows (pre-rendered while the customer's state holds)", body = CustomerEntitlementsOut), (status = 400), (status = 401), (status = 404)))]
pub async fn get_entitlements(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EntitlementQuery>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let customer_id = q
        .customer_id
        .or(q.customer_id_camel)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::field("customer_id", "This field is required."))?;
    let feature = q.feature_id.or(q.feature_id_camel).filter(|f| !f.is_empty());
    let now = tenant_now(&state, &caller.tenant).await?;
    let customer = crate::usage::engine::load(&state, &caller.tenant, &customer_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Customer not found.".into()))?;
    let body = match feature {
        // The whole list: the kept rendering, as it is.
        None => customer.check_body(&customer_id, now),
        Some(f) => {
            let entitlements = customer
                .rows(now)
                .iter()
                .filter(|r| r.feature_id == f)
                .map(crate::usage::engine::Row::to_wire)
                .collect();
            let out = CustomerEntitlementsOut { customer_id, entitlements };
            serde_json::to_vec(&out).expect("entitlements serialise").into()
        }
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body))
}

/// Check and deduct in one atomic step: a hard limit is never exceeded.
#[utoipa::path(post, path = "/api/v1/entitlements/consume/", tag = "reporting", request_body = ConsumeIn, security(("bearer" = [])),
    responses((status = 200, description = "`{allowed, currentUsage, usageLimit, remaining, …}`", body = ConsumeOut), (status = 400), (status = 401)))]
pub async fn consume(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<ConsumeIn>,
) -> ApiResult<Json<ConsumeOut>> {
    Ok(Json(report::consume(&state, tenant, input).await?))
}

/// Admin: give a customer their own value of a feature (with or without a plan granting it).
#[utoipa::path(put, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/override/", tag = "reporting",
    request_body = OverrideIn, security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 200, description = "The customer's rows for the feature", body = CustomerEntitlementsOut), (status = 400), (status = 404)))]
pub async fn set_override(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
    Body(input): Body<OverrideIn>,
) -> ApiResult<Json<CustomerEntitlementsOut>> {
    Ok(Json(overrides::set_override(&state, tenant, customer_id, feature, input).await?))
}

/// Admin: revert an override; the plans' values apply again.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/override/", tag = "reporting",
    security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 204, description = "Reverted"), (status = 404, description = "No such override")))]
pub async fn revert_override(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    overrides::revert_override(&state, tenant, customer_id, feature).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin: reset a meter's usage in the current period to zero.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/entitlements/{feature}/reset/", tag = "reporting",
    security(("bearer" = [])), params(("customer_id" = String, Path), ("feature" = String, Path)),
    responses((status = 200, description = "The customer's rows for the feature", body = CustomerEntitlementsOut), (status = 400), (status = 404)))]
pub async fn reset_usage(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((customer_id, feature)): Path<(String, String)>,
) -> ApiResult<Json<CustomerEntitlementsOut>> {
    Ok(Json(overrides::reset_usage(&state, tenant, customer_id, feature).await?))
}
