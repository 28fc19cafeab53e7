//! The entitlement check (spec §1.3): what a customer may use, one row per
//! granting subscription (a feature can appear more than once).

use crate::app::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Caller;
use crate::selling::tenant_now;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/entitlements", get(get_entitlements))
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
) -> ApiResult<impl axum::response::IntoResponse> {
    let customer_id = q
        .customer_id
        .or(q.customer_id_camel)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::field("customer_id", "This field is required."))?;
    let feature = q.feature_id.or(q.feature_id_camel).filter(|f| !f.is_empty());
    let now = tenant_now(&state, &caller.tenant).await?;
    let customer = crate::entitlements::load(&state, &caller.tenant, &customer_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Customer not found.".into()))?;
    let body = match feature {
        // The whole list: the kept rendering, as it is.
        None => customer.check_body(&customer_id, now),
        Some(f) => {
            let rows: Vec<Value> = customer
                .rows(now)
                .iter()
                .filter(|r| r.feature_id == f)
                .map(crate::entitlements::Row::to_wire)
                .collect();
            json!({ "customerId": customer_id, "entitlements": rows }).to_string().into()
        }
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body))
}
