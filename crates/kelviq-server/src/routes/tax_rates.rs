//! Tax rates (server key): `POST/GET /tax-rates/`, `GET/PATCH/DELETE
//! /tax-rates/{id}/`.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Page, ServerCaller};
use crate::http::paging::{map_page, paged};
use crate::state::AppState;
use crate::tax::settings::SettingsChange;
use crate::tax::{self, RateFields};
use crate::wire::double_option;
use crate::wire::tax::{TaxRateOut, TaxSettingsOut};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tax-rates", get(list_tax_rates).post(create_tax_rate))
        .route("/tax-rates/{id}", get(retrieve_tax_rate).patch(update_tax_rate).delete(delete_tax_rate))
        .route("/tax-settings", get(retrieve_tax_settings).patch(update_tax_settings))
}

fn id_of(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

/// Body of `POST /tax-rates/` and `PATCH /tax-rates/{id}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaxRateIn {
    pub name: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// A region (ISO 3166-2, after the dash); null or absent: the whole country.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
    /// Percent, 0 to 100, at most four decimals.
    #[schema(value_type = Option<f64>)]
    pub percentage: Option<Value>,
}

impl From<TaxRateIn> for RateFields {
    fn from(i: TaxRateIn) -> Self {
        RateFields { name: i.name, country: i.country, region: i.region, percentage: i.percentage }
    }
}

/// Make a tax rate: at most one per country and region.
#[utoipa::path(post, path = "/api/v1/tax-rates/", tag = "tax", request_body = TaxRateIn, security(("bearer" = [])),
    responses((status = 201, description = "The rate", body = TaxRateOut), (status = 400), (status = 401)))]
pub async fn create_tax_rate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<TaxRateIn>,
) -> ApiResult<(StatusCode, Json<TaxRateOut>)> {
    let rate = tax::create(&state, &tenant, input.into()).await?;
    Ok((StatusCode::CREATED, Json(TaxRateOut::from(&rate))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaxRateQuery {
    /// Only this country's rates.
    pub country: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List the environment's tax rates, oldest first.
#[utoipa::path(get, path = "/api/v1/tax-rates/", tag = "tax", params(TaxRateQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of rates", body = Page<TaxRateOut>), (status = 400), (status = 401)))]
pub async fn list_tax_rates(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<TaxRateQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<TaxRateOut>>> {
    let country = match q.country.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(kelviq_core::tax::country_code(c).ok_or_else(|| {
            ApiError::Fields(kelviq_core::FieldErrors::single(
                "country",
                "A two-letter ISO 3166-1 country code is required.",
            ))
        })?),
        None => None,
    };
    let page =
        paged(&parts, |limit, offset| state.store.list_tax_rates(&tenant, country.as_deref(), limit, offset)).await?;
    Ok(Json(map_page(page, |r| TaxRateOut::from(&r))))
}

/// Retrieve a tax rate.
#[utoipa::path(get, path = "/api/v1/tax-rates/{id}/", tag = "tax", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The rate", body = TaxRateOut), (status = 401), (status = 404)))]
pub async fn retrieve_tax_rate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<TaxRateOut>> {
    Ok(Json(TaxRateOut::from(&tax::get(&state, &tenant, id_of(&id)?).await?)))
}

/// Change a tax rate.
#[utoipa::path(patch, path = "/api/v1/tax-rates/{id}/", tag = "tax", params(("id" = String, Path)), request_body = TaxRateIn,
    security(("bearer" = [])), responses((status = 200, description = "The rate", body = TaxRateOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_tax_rate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<TaxRateIn>,
) -> ApiResult<Json<TaxRateOut>> {
    Ok(Json(TaxRateOut::from(&tax::update(&state, &tenant, id_of(&id)?, input.into()).await?)))
}

/// Delete a tax rate (invoices already issued keep the tax they charged).
#[utoipa::path(delete, path = "/api/v1/tax-rates/{id}/", tag = "tax", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_tax_rate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tax::delete(&state, &tenant, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PATCH /tax-settings/`: the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxSettingsIn {
    /// EXCLUSIVE or INCLUSIVE: how prices that leave it UNSPECIFIED are taxed; null: the server's default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub default_tax_behavior: Option<Option<String>>,
    /// Business buyers with a tax id of their country's format pay no tax (reverse charge).
    pub reverse_charge: Option<bool>,
    /// The merchant's own country (ISO 3166-1 alpha-2): its buyers are never reverse charged.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub origin_country: Option<Option<String>>,
}

/// The environment's tax settings.
#[utoipa::path(get, path = "/api/v1/tax-settings/", tag = "tax", security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = TaxSettingsOut), (status = 401)))]
pub async fn retrieve_tax_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
) -> ApiResult<Json<TaxSettingsOut>> {
    Ok(Json(TaxSettingsOut::from(&tax::settings::get(&state, &tenant).await?)))
}

/// Change the environment's tax settings.
#[utoipa::path(patch, path = "/api/v1/tax-settings/", tag = "tax", request_body = TaxSettingsIn, security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = TaxSettingsOut), (status = 400), (status = 401)))]
pub async fn update_tax_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<TaxSettingsIn>,
) -> ApiResult<Json<TaxSettingsOut>> {
    let change = SettingsChange {
        default_tax_behavior: input.default_tax_behavior,
        reverse_charge: input.reverse_charge,
        origin_country: input.origin_country,
    };
    Ok(Json(TaxSettingsOut::from(&tax::settings::update(&state, &tenant, change).await?)))
}
