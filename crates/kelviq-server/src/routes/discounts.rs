//! Discount codes (server key): `POST/GET /discounts/`, `GET/PATCH/DELETE
//! /discounts/{id}/`.

use crate::clock::tenant_now;
use crate::discounts::{self, AmountIn, DiscountFields};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Page, ServerCaller};
use crate::http::paging::{map_page, paged};
use crate::state::AppState;
use crate::wire::discounts::DiscountOut;
use crate::wire::double_option;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/discounts", get(list_discounts).post(create_discount))
        .route("/discounts/{id}", get(retrieve_discount).patch(update_discount).delete(delete_discount))
}

fn id_of(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

/// An amount of one currency, in major units.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountInput {
    pub currency: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub amount: Option<Value>,
}

impl From<AmountInput> for AmountIn {
    fn from(a: AmountInput) -> Self {
        AmountIn { currency: a.currency, amount: a.amount }
    }
}

/// Body of `POST /discounts/` and `PATCH /discounts/{id}/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountIn {
    /// 3–64 of `A-Z 0-9 _ -`, unique in the environment ignoring case (stored upper case).
    pub code: Option<String>,
    pub name: Option<String>,
    /// PERCENTAGE or FIXED.
    pub discount_type: Option<String>,
    /// Percent off, 0.01 to 100 (PERCENTAGE).
    #[schema(value_type = Option<f64>)]
    pub percentage: Option<Value>,
    /// The amount off per currency (FIXED).
    pub amounts: Option<Vec<AmountInput>>,
    /// ONCE (default), REPEATING or FOREVER.
    pub duration: Option<String>,
    /// REPEATING: how many invoices, the first included (1–1000).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub duration_in_cycles: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_redemptions: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_redemptions_per_customer: Option<Option<i64>>,
    /// ISO 8601; null: from now.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub starts_at: Option<Option<String>>,
    /// ISO 8601, exclusive; null: never.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    /// Product ids.
    pub products: Option<Vec<String>>,
    /// Plan identifiers.
    pub plans: Option<Vec<String>>,
    pub first_purchase_only: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<AmountInput>)]
    pub minimum_amount: Option<Option<AmountInput>>,
}

impl From<DiscountIn> for DiscountFields {
    fn from(i: DiscountIn) -> Self {
        DiscountFields {
            code: i.code,
            name: i.name,
            discount_type: i.discount_type,
            percentage: i.percentage,
            amounts: i.amounts.map(|a| a.into_iter().map(Into::into).collect()),
            duration: i.duration,
            duration_in_cycles: i.duration_in_cycles,
            max_redemptions: i.max_redemptions,
            max_redemptions_per_customer: i.max_redemptions_per_customer,
            starts_at: i.starts_at,
            expires_at: i.expires_at,
            products: i.products,
            plans: i.plans,
            first_purchase_only: i.first_purchase_only,
            minimum_amount: i.minimum_amount.map(|m| m.map(Into::into)),
        }
    }
}

/// Make a discount code.
#[utoipa::path(post, path = "/api/v1/discounts/", tag = "discounts", request_body = DiscountIn, security(("bearer" = [])),
    responses((status = 201, description = "The code", body = DiscountOut), (status = 400), (status = 401)))]
pub async fn create_discount(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<DiscountIn>,
) -> ApiResult<(StatusCode, Json<DiscountOut>)> {
    let d = discounts::create(&state, &tenant, input.into()).await?;
    Ok((StatusCode::CREATED, Json(DiscountOut::of(&d, d.created_at))))
}

/// List the environment's discount codes, oldest first.
#[utoipa::path(get, path = "/api/v1/discounts/", tag = "discounts", security(("bearer" = [])),
    params(("page" = Option<String>, Query), ("page_size" = Option<String>, Query)),
    responses((status = 200, description = "A page of codes", body = Page<DiscountOut>), (status = 401)))]
pub async fn list_discounts(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    parts: Parts,
) -> ApiResult<Json<Page<DiscountOut>>> {
    let now = tenant_now(&state, &tenant).await?;
    let page = paged(&parts, |limit, offset| state.store.list_discounts(&tenant, limit, offset)).await?;
    Ok(Json(map_page(page, |d| DiscountOut::of(&d, now))))
}

/// Retrieve a discount code.
#[utoipa::path(get, path = "/api/v1/discounts/{id}/", tag = "discounts", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The code", body = DiscountOut), (status = 401), (status = 404)))]
pub async fn retrieve_discount(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<DiscountOut>> {
    let d = discounts::get(&state, &tenant, id_of(&id)?).await?;
    Ok(Json(DiscountOut::of(&d, tenant_now(&state, &tenant).await?)))
}

/// Change a discount code (redemptions already made keep their terms).
#[utoipa::path(patch, path = "/api/v1/discounts/{id}/", tag = "discounts", params(("id" = String, Path)), request_body = DiscountIn,
    security(("bearer" = [])), responses((status = 200, description = "The code", body = DiscountOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_discount(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<DiscountIn>,
) -> ApiResult<Json<DiscountOut>> {
    let d = discounts::update(&state, &tenant, id_of(&id)?, input.into()).await?;
    Ok(Json(DiscountOut::of(&d, d.modified_at)))
}

/// Delete a discount code: it can no longer be redeemed; subscriptions
/// that redeemed it keep their discount for the cycles it covers.
#[utoipa::path(delete, path = "/api/v1/discounts/{id}/", tag = "discounts", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_discount(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    discounts::delete(&state, &tenant, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
