//! `GET`/`PATCH /api/v1/storefront-settings/` (server key).

use crate::http::error::ApiResult;
use crate::http::extract::{BaseUrl, Body, ServerCaller};
use crate::state::AppState;
use crate::storefront::{self, SettingsChange};
use crate::wire::double_option;
use crate::wire::storefront::StorefrontSettingsOut;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/storefront-settings", get(retrieve_storefront_settings).patch(update_storefront_settings))
}

/// Body of `PATCH /storefront-settings/`: the fields given change; null clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorefrontSettingsIn {
    pub allow_plan_changes: Option<bool>,
    /// Plan identifiers; null: every published plan of the subscription's product.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_plans: Option<Option<Vec<String>>>,
    pub allow_quantity_changes: Option<bool>,
    /// AT_PERIOD_END, IMMEDIATELY or DISABLED.
    pub cancellation_mode: Option<String>,
    pub show_usage: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// The file key of an image uploaded through `/media/` (PNG, JPEG, GIF or WebP); null removes the logo.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub logo: Option<Option<String>>,
    /// `#rrggbb` or `#rgb`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub brand_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub support_email: Option<Option<String>>,
    /// An https:// address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub terms_url: Option<Option<String>>,
    /// An https:// address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub privacy_url: Option<Option<String>>,
}

/// The environment's storefront settings.
#[utoipa::path(get, path = "/api/v1/storefront-settings/", tag = "portal", security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = StorefrontSettingsOut), (status = 401)))]
pub async fn retrieve_storefront_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
) -> ApiResult<Json<StorefrontSettingsOut>> {
    Ok(Json(StorefrontSettingsOut::new(&storefront::get(&state, &tenant).await?, &base)))
}

/// Change the environment's storefront settings.
#[utoipa::path(patch, path = "/api/v1/storefront-settings/", tag = "portal", request_body = StorefrontSettingsIn,
    security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = StorefrontSettingsOut), (status = 400), (status = 401)))]
pub async fn update_storefront_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<StorefrontSettingsIn>,
) -> ApiResult<Json<StorefrontSettingsOut>> {
    let change = SettingsChange {
        allow_plan_changes: input.allow_plan_changes,
        allowed_plans: input.allowed_plans,
        allow_quantity_changes: input.allow_quantity_changes,
        cancellation_mode: input.cancellation_mode,
        show_usage: input.show_usage,
        display_name: input.display_name,
        logo: input.logo,
        brand_color: input.brand_color,
        support_email: input.support_email,
        terms_url: input.terms_url,
        privacy_url: input.privacy_url,
    };
    Ok(Json(StorefrontSettingsOut::new(&storefront::update(&state, &tenant, change).await?, &base)))
}
