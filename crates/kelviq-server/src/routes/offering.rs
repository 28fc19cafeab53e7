//! `GET /monetization/product-offering/{product_id}/` (server or client key).

use crate::geo::Visitor;
use crate::http::error::ApiResult;
use crate::http::extract::Caller;
use crate::offering::{self, OfferingAsk};
use crate::state::AppState;
use crate::wire::offering::OfferingOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kelviq_core::keys::KeyKind;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new().route("/monetization/product-offering/{product_id}", get(product_offering))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfferingQuery {
    /// Your customer's id: adds their subscription and `isCustomerExists`.
    pub customer_id: Option<String>,
    /// Only these plans (comma-separated identifiers).
    pub plans_enabled: Option<String>,
    /// The buyer's address, to price for their country (server key only).
    pub ip_address: Option<String>,
}

/// What a pricing page renders for a product, priced for the buyer's country.
#[utoipa::path(get, path = "/api/v1/monetization/product-offering/{product_id}/", tag = "monetization",
    params(("product_id" = String, Path), OfferingQuery), security(("bearer" = [])),
    responses((status = 200, description = "The offering", body = OfferingOut), (status = 401),
        (status = 404, description = "`{\"status\": \"Not found\", \"message\": \"Product does not exist\"}`")))]
pub async fn product_offering(
    State(state): State<AppState>,
    caller: Caller,
    visitor: Visitor,
    Path(product_id): Path<String>,
    Query(q): Query<OfferingQuery>,
) -> ApiResult<Response> {
    let given = q.ip_address.as_deref().and_then(|ip| ip.trim().parse().ok());
    let visitor = match given {
        Some(ip) if caller.kind == KeyKind::Server => Visitor::at(&state.geo, ip),
        _ => visitor,
    };
    let ask = OfferingAsk {
        customer_id: q.customer_id,
        plans_enabled: q
            .plans_enabled
            .map(|p| p.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()),
    };
    match offering::offering(&state, &caller.tenant, &product_id, ask, &visitor).await? {
        Some(o) => Ok(Json(OfferingOut::new(&caller.tenant, o)?).into_response()),
        None => Ok((StatusCode::NOT_FOUND, Json(json!({"status": "Not found", "message": "Product does not exist"})))
            .into_response()),
    }
}
