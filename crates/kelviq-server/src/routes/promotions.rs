//! Promotions: `POST/GET /promotions/`, `GET/PATCH/DELETE /promotions/{id}/`
//! and the country groups (server key); and the edge answer
//! `GET /promotions?promotion_id=` (client or server key).

use crate::geo::Visitor;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, Caller, Page, Paging, ServerCaller};
use crate::http::paging::{map_page, paged};
use crate::promotions::{self, PromotionChange, PromotionFields, WidgetFields};
use crate::state::AppState;
use crate::wire::promotions::{CountryGroupOut, PromotionEdgeOut, PromotionOut, PromotionsAnswer};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use kelviq_core::keys::KeyKind;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/promotions", get(list_or_edge).post(create_promotion))
        .route("/promotions/country-groups", get(list_country_groups))
        .route("/promotions/country-groups/{group}", patch(update_country_group))
        .route("/promotions/{id}", get(retrieve_promotion).patch(update_promotion).delete(delete_promotion))
}

fn id_of(text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPercentageIn {
    /// TIER_1 (highest income) … TIER_5.
    pub group: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub percentage: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountryOverrideIn {
    pub country_code: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub percentage: Option<Value>,
}

/// Body of `POST /promotions/` (and of `PATCH`, where only `name` and `widgets` may change).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionIn {
    pub name: Option<String>,
    /// Product ids (with `plans`; both empty: everything).
    pub products: Option<Vec<String>>,
    /// Published plan identifiers.
    pub plans: Option<Vec<String>>,
    pub group_percentages: Option<Vec<GroupPercentageIn>>,
    /// A country's percentage, winning over its group's (0: none).
    pub country_overrides: Option<Vec<CountryOverrideIn>>,
    /// One BANNER (absent: the default banner).
    pub widgets: Option<Vec<WidgetFields>>,
    /// Visitors from listed VPN, Tor, proxy or relay networks, and crawlers, get nothing (each on by default).
    pub vpn: Option<bool>,
    pub tor: Option<bool>,
    pub proxy: Option<bool>,
    pub relay: Option<bool>,
    pub crawler: Option<bool>,
    /// A coupon works only for buyers billed in its country (default true).
    pub strict_country: Option<bool>,
}

impl From<PromotionIn> for PromotionFields {
    fn from(i: PromotionIn) -> Self {
        PromotionFields {
            name: i.name,
            products: i.products,
            plans: i.plans,
            group_percentages: i.group_percentages.map(|l| l.into_iter().map(|g| (g.group, g.percentage)).collect()),
            country_overrides: i
                .country_overrides
                .map(|l| l.into_iter().map(|c| (c.country_code, c.percentage)).collect()),
            widgets: i.widgets,
            checks: [i.vpn, i.tor, i.proxy, i.relay, i.crawler],
            strict_country: i.strict_country,
        }
    }
}

impl From<PromotionIn> for PromotionChange {
    fn from(i: PromotionIn) -> Self {
        let fixed = [
            ("products", i.products.is_some()),
            ("plans", i.plans.is_some()),
            ("group_percentages", i.group_percentages.is_some()),
            ("country_overrides", i.country_overrides.is_some()),
            ("vpn", i.vpn.is_some()),
            ("tor", i.tor.is_some()),
            ("proxy", i.proxy.is_some()),
            ("relay", i.relay.is_some()),
            ("crawler", i.crawler.is_some()),
            ("strict_country", i.strict_country.is_some()),
        ];
        PromotionChange {
            name: i.name,
            widgets: i.widgets,
            fixed: fixed.iter().filter(|(_, given)| *given).map(|(f, _)| *f).collect(),
        }
    }
}

/// Make a promotion: a coupon per country with a discount.
#[utoipa::path(post, path = "/api/v1/promotions/", tag = "promotions", request_body = PromotionIn, security(("bearer" = [])),
    responses((status = 201, description = "The promotion", body = PromotionOut), (status = 400), (status = 401)))]
pub async fn create_promotion(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<PromotionIn>,
) -> ApiResult<(StatusCode, Json<PromotionOut>)> {
    let p = promotions::create(&state, &tenant, input.into()).await?;
    Ok((StatusCode::CREATED, Json(PromotionOut::from(&p))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromotionQuery {
    /// The edge answer for this promotion (client or server key).
    pub promotion_id: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// With `promotion_id`: the promotion for the caller's location (client
/// key; `PromotionEdgeOut`). Without: the environment's promotions, oldest
/// first (server key).
#[utoipa::path(get, path = "/api/v1/promotions/", tag = "promotions", params(PromotionQuery), security(("bearer" = [])),
    responses((status = 200, description = "The edge answer (with promotion_id), else a page of promotions", body = PromotionsAnswer),
        (status = 401), (status = 403), (status = 404)))]
pub async fn list_or_edge(
    State(state): State<AppState>,
    caller: Caller,
    visitor: Visitor,
    Query(q): Query<PromotionQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    if let Some(id) = q.promotion_id.as_deref() {
        let answer = promotions::edge::answer(&state, &caller.tenant, id, &visitor).await?;
        return Ok(Json(PromotionsAnswer::Edge(PromotionEdgeOut::from(&answer))).into_response());
    }
    if caller.kind != KeyKind::Server {
        return Err(ApiError::Forbidden);
    }
    let page = paged(&parts, |limit, offset| state.store.list_promotions(&caller.tenant, limit, offset)).await?;
    let page: Page<PromotionOut> = map_page(page, |p| PromotionOut::from(&p));
    Ok(Json(PromotionsAnswer::Page(page)).into_response())
}

/// Retrieve a promotion.
#[utoipa::path(get, path = "/api/v1/promotions/{id}/", tag = "promotions", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The promotion", body = PromotionOut), (status = 401), (status = 404)))]
pub async fn retrieve_promotion(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<PromotionOut>> {
    Ok(Json(PromotionOut::from(&promotions::get(&state, &tenant, id_of(&id)?).await?)))
}

/// Rename a promotion or change its banner (what it targets is fixed).
#[utoipa::path(patch, path = "/api/v1/promotions/{id}/", tag = "promotions", params(("id" = String, Path)), request_body = PromotionIn,
    security(("bearer" = [])), responses((status = 200, description = "The promotion", body = PromotionOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_promotion(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<PromotionIn>,
) -> ApiResult<Json<PromotionOut>> {
    Ok(Json(PromotionOut::from(&promotions::update(&state, &tenant, id_of(&id)?, input.into()).await?)))
}

/// Delete a promotion and its coupons (subscriptions that redeemed one keep it).
#[utoipa::path(delete, path = "/api/v1/promotions/{id}/", tag = "promotions", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_promotion(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    promotions::delete(&state, &tenant, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The country groups promotions give percentages to, highest income first.
#[utoipa::path(get, path = "/api/v1/promotions/country-groups/", tag = "promotions", security(("bearer" = [])),
    params(("page" = Option<String>, Query), ("page_size" = Option<String>, Query)),
    responses((status = 200, description = "A page of groups", body = Page<CountryGroupOut>), (status = 401)))]
pub async fn list_country_groups(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    parts: Parts,
) -> ApiResult<Json<Page<CountryGroupOut>>> {
    let groups: Vec<CountryGroupOut> =
        promotions::groups(&state, &tenant).await?.iter().map(CountryGroupOut::from).collect();
    let mut paging = Paging::from_parts(&parts, 100)?;
    let (page, total) = paging.slice(&groups)?;
    Ok(Json(paging.page(total, page.to_vec())))
}

/// Body of `PATCH /promotions/country-groups/{group}/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountryGroupIn {
    /// ISO 3166-1 alpha-2 codes; a country moved here leaves its other group.
    pub countries: Option<Vec<String>>,
}

/// Change a group's countries (promotions made keep theirs).
#[utoipa::path(patch, path = "/api/v1/promotions/country-groups/{group}/", tag = "promotions", params(("group" = String, Path)),
    request_body = CountryGroupIn, security(("bearer" = [])),
    responses((status = 200, description = "The group", body = CountryGroupOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_country_group(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(group): Path<String>,
    Body(input): Body<CountryGroupIn>,
) -> ApiResult<Json<CountryGroupOut>> {
    let g = promotions::set_group(&state, &tenant, &group, input.countries).await?;
    Ok(Json(CountryGroupOut::from(&g)))
}
