//! Plans (spec §1.9): versions with a draft/publish lifecycle, prices per
//! currency, and per-feature entitlements. Every change to a plan whose
//! newest version is published lands in a new draft version.

use crate::error::ServiceResult;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{BaseUrl, Body, Paging, ServerCaller};
use crate::media;
use crate::media::MediaPatch;
use crate::selling::Migrate;
use crate::state::AppState;
use crate::wire::plans::*;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use kelviq_core::casing::camelize;
use kelviq_core::catalog::Feature;
use kelviq_core::plans::{
    check_price_currencies, parse_entitlement_details, parse_price, FeatureRef, NewPlan, PlanChanges, PlanEntitlement,
    PlanInput, PlanStatus, PlanVersion, Price,
};
use kelviq_core::timefmt::iso_micros;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::MediaOwner;
use kelviq_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

const CATALOG_PAGE_SIZE: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/catalog/plans", get(list_plans).post(create_plan))
        .route("/catalog/plans/{identifier}", get(retrieve_plan).patch(update_plan).delete(archive_plan))
        .route("/catalog/plans/{identifier}/publish", post(publish_plan))
        .route("/catalog/plans/{identifier}/discard", delete(discard_plan))
        .route("/catalog/plans/{identifier}/prices", get(list_prices))
        .route("/catalog/plans/{identifier}/prices/bulk", post(replace_prices))
        .route("/catalog/plans/{identifier}/features", get(list_plan_features).post(add_plan_features))
        .route("/catalog/plans/{identifier}/file/{pk}", patch(update_plan_file).delete(delete_plan_file))
        .route("/catalog/plans/{identifier}/file/{pk}/download", get(download_plan_file))
        .route(
            "/catalog/plans/{identifier}/features/{feature_id}",
            patch(update_plan_feature).delete(remove_plan_feature),
        )
}

/// Body of `POST /catalog/plans/` and `PATCH /catalog/plans/{identifier}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanIn {
    /// Identifier of a plan to inherit features from; `null` stops inheriting.
    #[serde(default, deserialize_with = "crate::wire::double_option")]
    #[schema(value_type = Option<String>)]
    pub parent: Option<Option<String>>,
    /// Required on create.
    pub name: Option<String>,
    /// Slug, stable across versions; generated from `name` when left out. Create only.
    pub identifier: Option<String>,
    /// UUID (or identifier) of the product. Required on create; cannot change.
    pub product: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub is_visible: Option<bool>,
    /// `{enabled, activationLimit, activationLimitEnabled, durationUnit, durationValue, hasExpiry}`.
    #[schema(value_type = Option<Object>)]
    pub license: Option<Value>,
    /// `[{name, url}]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub links: Option<Value>,
    pub file_keys: Option<Vec<String>>,
    #[schema(value_type = Option<i64>)]
    pub ordering: Option<Value>,
}

impl PlanIn {
    /// The plan fields, and the upload keys of files to attach.
    fn into_input(self) -> (PlanInput, Vec<String>) {
        let input = PlanInput {
            parent: self.parent,
            name: self.name,
            identifier: self.identifier,
            product: self.product,
            description: self.description,
            metadata: self.metadata,
            is_visible: self.is_visible,
            license: self.license,
            links: self.links,
            ordering: self.ordering,
        };
        (input, self.file_keys.unwrap_or_default())
    }
}

/// A plan version as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanOut {
    pub identifier: String,
    /// The plan this one inherits features from.
    pub parent: Option<String>,
    pub name: String,
    pub description: String,
    /// UUID of the product.
    pub product: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub version: i64,
    /// True only for the published version.
    pub is_latest: bool,
    /// `draft`, `published` or `superseded`.
    pub status: String,
    pub modified_on: String,
    pub created_on: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub is_visible: bool,
    pub is_imported: bool,
    pub countries: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub license: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    pub links: Vec<Value>,
    pub files: Vec<PlanFileOut>,
    pub ordering: Option<i64>,
}

/// A plan version with its files.
async fn plan_out(state: &AppState, tenant: &Tenant, base: &str, plan: PlanVersion) -> ApiResult<PlanOut> {
    let files = state.store.list_media(tenant, MediaOwner::PlanFile, &plan.identifier).await?;
    let identifier = plan.identifier.clone();
    let mut out = PlanOut::from(plan);
    out.files = files.into_iter().map(|f| PlanFileOut::new(base, &identifier, f)).collect();
    Ok(out)
}

impl From<PlanVersion> for PlanOut {
    fn from(p: PlanVersion) -> Self {
        PlanOut {
            identifier: p.identifier,
            parent: p.fields.parent,
            name: p.name,
            description: p.fields.description,
            product: p.product_id.to_string(),
            metadata: p.fields.metadata,
            version: p.version,
            is_latest: p.status == PlanStatus::Published,
            status: p.status.as_str().to_string(),
            modified_on: iso_micros(p.modified_at),
            created_on: iso_micros(p.created_at),
            details: json!({}),
            is_visible: p.fields.is_visible,
            is_imported: false,
            countries: Vec::new(),
            // The published schema's `license` is an object: a plan without
            // one issues no keys.
            license: Some(p.fields.license.map_or_else(|| json!({"enabled": false}), camelize)),
            links: p.fields.links,
            files: Vec::new(),
            ordering: p.fields.ordering,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A specific version; the newest when left out.
    pub version: Option<String>,
}

fn parse_version(q: &VersionQuery) -> ApiResult<Option<i64>> {
    match q.version.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 1)
            .map(Some)
            .ok_or_else(|| ApiError::field("version", "A valid integer is required.")),
    }
}

fn plan_errors(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict("identifier") => {
            ApiError::field("identifier", "plan with this identifier already exists.")
        }
        StoreError::Conflict("already published") => ApiError::BadRequest("Plan is already published.".into()),
        StoreError::Conflict("already archived") => ApiError::BadRequest("Already archived.".into()),
        StoreError::Conflict("plan version") => {
            ApiError::Conflict("The plan was changed by another request at the same time; retry.".into())
        }
        other => other.into(),
    }
}

async fn live_plan(
    state: &AppState,
    tenant: &Tenant,
    identifier: &str,
    version: Option<i64>,
) -> ApiResult<PlanVersion> {
    state.store.find_plan(tenant, identifier, version).await?.ok_or_else(ApiError::not_found)
}

/// List plans: the newest version of each.
#[utoipa::path(get, path = "/api/v1/catalog/plans/", tag = "plans", security(("bearer" = [])),
    params(("page" = Option<String>, Query), ("page_size" = Option<String>, Query)),
    responses((status = 200, description = "A page of plans", body = Page<PlanOut>), (status = 401)))]
pub async fn list_plans(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    parts: Parts,
) -> ApiResult<Json<Page<PlanOut>>> {
    let mut paging = Paging::from_parts(&parts, CATALOG_PAGE_SIZE)?;
    let total = state.store.count_plans(&tenant).await? as u64;
    let (limit, offset) = paging.window(total)?;
    let plans = state.store.list_plans(&tenant, limit, offset).await?;
    let mut results = Vec::with_capacity(plans.len());
    for p in plans {
        results.push(plan_out(&state, &tenant, &base, p).await?);
    }
    Ok(Json(paging.page(total, results)))
}

/// Create a plan: version 1, an unpublished draft.
#[utoipa::path(post, path = "/api/v1/catalog/plans/", tag = "plans", request_body = PlanIn, security(("bearer" = [])),
    responses((status = 201, body = PlanOut), (status = 400), (status = 401)))]
pub async fn create_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<PlanIn>,
) -> ApiResult<(StatusCode, Json<PlanOut>)> {
    let (input, file_keys) = input.into_input();
    let new = NewPlan::parse(input)?;
    let product = state.store.find_product(&tenant, &new.product).await?;
    let product =
        product.ok_or_else(|| ApiError::field("product", format!("Product \"{}\" does not exist.", new.product)))?;
    if let Some(parent) = &new.fields.parent {
        state
            .store
            .check_plan_parent(&tenant, &new.identifier, parent)
            .await?
            .map_err(|m| ApiError::field("parent", m))?;
    }
    let files = media::check_uploads(&state, &tenant, MediaOwner::PlanFile, "file_keys", &file_keys).await?;
    let plan = state.store.insert_plan(&tenant, &new, product.id, state.clock.now()).await.map_err(plan_errors)?;
    media::attach(&state, &tenant, MediaOwner::PlanFile, &plan.identifier, files).await?;
    Ok((StatusCode::CREATED, Json(plan_out(&state, &tenant, &base, plan).await?)))
}

/// Retrieve a plan: `?version=N`, or the newest version.
#[utoipa::path(get, path = "/api/v1/catalog/plans/{identifier}/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path), VersionQuery),
    responses((status = 200, body = PlanOut), (status = 401), (status = 404)))]
pub async fn retrieve_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(identifier): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<PlanOut>> {
    let plan = live_plan(&state, &tenant, &identifier, parse_version(&q)?).await?;
    Ok(Json(plan_out(&state, &tenant, &base, plan).await?))
}

/// Update a plan. On a published plan this creates a new draft version;
/// `fileKeys` add files to the plan (files are shared by all its versions).
#[utoipa::path(patch, path = "/api/v1/catalog/plans/{identifier}/", tag = "plans", request_body = PlanIn, security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 200, body = PlanOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(identifier): Path<String>,
    Body(input): Body<PlanIn>,
) -> ApiResult<Json<PlanOut>> {
    let (input, file_keys) = input.into_input();
    let changes = PlanChanges::parse(input)?;
    let current = live_plan(&state, &tenant, &identifier, None).await?;
    if let Some(Some(parent)) = &changes.parent {
        state.store.check_plan_parent(&tenant, &identifier, parent).await?.map_err(|m| ApiError::field("parent", m))?;
    }
    let files = media::check_uploads(&state, &tenant, MediaOwner::PlanFile, "file_keys", &file_keys).await?;
    let plan = if changes.is_empty() {
        current
    } else {
        state
            .store
            .edit_plan(&tenant, &identifier, state.clock.now(), |draft| {
                changes.apply(&mut draft.name, &mut draft.fields);
                Ok(())
            })
            .await
            .map_err(plan_errors)?
    };
    media::attach(&state, &tenant, MediaOwner::PlanFile, &plan.identifier, files).await?;
    Ok(Json(plan_out(&state, &tenant, &base, plan).await?))
}

/// Archive every version of a plan.
#[utoipa::path(delete, path = "/api/v1/catalog/plans/{identifier}/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 204, description = "Archived"), (status = 400, description = "Already archived"), (status = 401), (status = 404)))]
pub async fn archive_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.archive_plan(&tenant, &identifier, state.clock.now()).await.map_err(plan_errors)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /catalog/plans/{identifier}/publish/`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PublishIn {
    /// Move existing subscribers to the new version's features.
    pub update_features: Option<bool>,
    /// Move existing subscribers to the new version's pricing.
    pub update_pricing: Option<bool>,
}

/// Publish the newest draft; the previously published version is superseded.
#[utoipa::path(post, path = "/api/v1/catalog/plans/{identifier}/publish/", tag = "plans", request_body = PublishIn, security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 200, description = "`{\"status\": \"published\"}`", body = PublishedOut), (status = 400, description = "No price, a currency missing, or already published"), (status = 401), (status = 404)))]
pub async fn publish_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
    Body(input): Body<PublishIn>,
) -> ApiResult<Json<PublishedOut>> {
    let (features, pricing) = (input.update_features.unwrap_or(false), input.update_pricing.unwrap_or(false));
    let (plan, moved) =
        crate::selling::publish_and_migrate(&state, &tenant, &identifier, Migrate { features, pricing })
            .await
            .map_err(plan_errors)?;
    crate::http::reqlog::in_span(|| {
        tracing::info!(plan = %plan.identifier, version = plan.version, update_features = features, update_pricing = pricing,
        migrated = moved, "plan published")
    });
    Ok(Json(PublishedOut { status: "published".into(), version: plan.version, migrated_subscriptions: moved }))
}

/// Delete the newest version if it is an unpublished draft.
#[utoipa::path(delete, path = "/api/v1/catalog/plans/{identifier}/discard/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 204, description = "Draft discarded"), (status = 400, description = "Already published"), (status = 401), (status = 404)))]
pub async fn discard_plan(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.discard_plan_draft(&tenant, &identifier).await.map_err(|e| match e {
        StoreError::Conflict("already published") => {
            ApiError::BadRequest("Plan is already published; cannot be discarded.".into())
        }
        other => plan_errors(other),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// A plan version's prices.
#[utoipa::path(get, path = "/api/v1/catalog/plans/{identifier}/prices/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path), VersionQuery),
    responses((status = 200, description = "A page of prices", body = Page<PriceOut>), (status = 401), (status = 404)))]
pub async fn list_prices(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
    Query(q): Query<VersionQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<PriceOut>>> {
    let plan = live_plan(&state, &tenant, &identifier, parse_version(&q)?).await?;
    let mut paging = Paging::from_parts(&parts, CATALOG_PAGE_SIZE)?;
    let (page, total) = paging.slice(&plan.prices)?;
    let page: Vec<PriceOut> = page.iter().map(PriceOut::new).collect::<ServiceResult<_>>()?;
    Ok(Json(paging.page(total, page)))
}

/// Body of `POST /catalog/plans/{identifier}/prices/bulk/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PricesIn {
    /// The plan's complete new set of prices.
    #[schema(value_type = Vec<Object>)]
    pub prices: Option<Vec<Value>>,
}

/// Features named by `feature` in the charge groups of `prices`, looked up live.
async fn referenced_features(
    state: &AppState,
    tenant: &Tenant,
    prices: &[Value],
) -> ApiResult<HashMap<String, FeatureRef>> {
    let mut found = HashMap::new();
    for p in prices {
        for group in p.get("charge_catalog_price").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = group.get("feature").and_then(Value::as_str) {
                if found.contains_key(key) {
                    continue;
                }
                if let Some(f) = state.store.find_feature(tenant, key).await?.filter(|f| f.archived_at.is_none()) {
                    found.insert(key.to_string(), FeatureRef { id: f.id, feature_type: f.feature_type });
                }
            }
        }
    }
    Ok(found)
}

/// Replace all of a plan's prices in one step.
#[utoipa::path(post, path = "/api/v1/catalog/plans/{identifier}/prices/bulk/", tag = "plans", request_body = PricesIn, security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 200, description = "`{\"prices\": [...]}`", body = PricesOut), (status = 400), (status = 401), (status = 404)))]
pub async fn replace_prices(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
    Body(input): Body<PricesIn>,
) -> ApiResult<Json<PricesOut>> {
    let raw = input.prices.ok_or_else(|| ApiError::field("prices", "This field is required."))?;
    live_plan(&state, &tenant, &identifier, None).await?;
    let features = referenced_features(&state, &tenant, &raw).await?;
    let lookup = |key: &str| features.get(key).cloned();
    let mut errors = FieldErrors::new();
    let prices: Vec<Price> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, p)| parse_price(p, &format!("prices[{i}]: "), &lookup, &mut errors))
        .collect();
    errors.into_result()?;
    check_price_currencies(&prices)?;
    let plan = state
        .store
        .edit_plan(&tenant, &identifier, state.clock.now(), |draft| {
            draft.prices = prices;
            Ok(())
        })
        .await
        .map_err(plan_errors)?;
    Ok(Json(PricesOut { prices: plan.prices.iter().map(PriceOut::new).collect::<ServiceResult<_>>()? }))
}

/// The features a plan version grants.
#[utoipa::path(get, path = "/api/v1/catalog/plans/{identifier}/features/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path), VersionQuery),
    responses((status = 200, description = "A page of `{feature, details}`", body = Page<PlanEntitlementOut>), (status = 401), (status = 404)))]
pub async fn list_plan_features(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(identifier): Path<String>,
    Query(q): Query<VersionQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<PlanEntitlementOut>>> {
    let plan = live_plan(&state, &tenant, &identifier, parse_version(&q)?).await?;
    let mut paging = Paging::from_parts(&parts, CATALOG_PAGE_SIZE)?;
    let effective = state.store.effective_entitlements(&tenant, &plan).await?;
    let (page, total) = paging.slice(&effective)?;
    let mut rows = Vec::new();
    for e in page {
        let feature = state.store.find_feature(&tenant, &e.feature_id.to_string()).await?;
        let feature = feature
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan grants missing feature {}", e.feature_id)))?;
        rows.push(PlanEntitlementOut::new(
            feature,
            &e.details,
            Provenance { inherited: e.inherited, overridden: e.overridden },
        ));
    }
    Ok(Json(paging.page(total, rows)))
}

/// Body of `POST /catalog/plans/{identifier}/features/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanFeaturesIn {
    /// `[{feature: UUID or identifier, details: {...}}]`.
    #[schema(value_type = Vec<Object>)]
    pub plan_entitlements: Option<Vec<Value>>,
}

/// Grant features on the plan (in its draft).
#[utoipa::path(post, path = "/api/v1/catalog/plans/{identifier}/features/", tag = "plans", request_body = PlanFeaturesIn, security(("bearer" = [])),
    params(("identifier" = String, Path)),
    responses((status = 201, body = PlanOut), (status = 400), (status = 401), (status = 404)))]
pub async fn add_plan_features(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(identifier): Path<String>,
    Body(input): Body<PlanFeaturesIn>,
) -> ApiResult<(StatusCode, Json<PlanOut>)> {
    let items = input.plan_entitlements.filter(|i| !i.is_empty());
    let items = items.ok_or_else(|| ApiError::field("plan_entitlements", "A non-empty list is required."))?;
    live_plan(&state, &tenant, &identifier, None).await?;
    let mut errors = FieldErrors::new();
    let mut additions: Vec<PlanEntitlement> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("planEntitlements[{i}]: ");
        let Some(key) = item.get("feature").and_then(Value::as_str) else {
            errors.add("plan_entitlements", format!("{at}feature (a UUID or identifier) is required."));
            continue;
        };
        let feature = state.store.find_feature(&tenant, key).await?.filter(|f| f.archived_at.is_none());
        let Some(feature) = feature else {
            errors.add("plan_entitlements", format!("{at}feature \"{key}\" does not exist."));
            continue;
        };
        if additions.iter().any(|a| a.feature_id == feature.id) {
            errors.add("plan_entitlements", format!("{at}feature \"{key}\" is listed twice."));
            continue;
        }
        let details = item.get("details").cloned().unwrap_or_else(|| json!({}));
        if let Some(details) = parse_entitlement_details(feature.feature_type, &details, &at, &mut errors) {
            additions.push(PlanEntitlement { feature_id: feature.id, details });
        }
    }
    errors.into_result()?;
    let plan = state
        .store
        .edit_plan(&tenant, &identifier, state.clock.now(), |draft| {
            if let Some(dup) =
                additions.iter().find(|a| draft.entitlements.iter().any(|e| e.feature_id == a.feature_id))
            {
                return Err(FieldErrors::single(
                    "plan_entitlements",
                    format!("feature {} is already on this plan.", dup.feature_id),
                ));
            }
            draft.entitlements.extend(additions);
            Ok(())
        })
        .await
        .map_err(plan_errors)?;
    Ok((StatusCode::CREATED, Json(plan_out(&state, &tenant, &base, plan).await?)))
}

/// Body of `PATCH /catalog/plans/{identifier}/features/{feature_id}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanFeatureIn {
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

async fn plan_feature(state: &AppState, tenant: &Tenant, key: &str) -> ApiResult<Feature> {
    state.store.find_feature(tenant, key).await?.ok_or_else(ApiError::not_found)
}

/// Change a feature's configuration on the plan (in its draft).
#[utoipa::path(patch, path = "/api/v1/catalog/plans/{identifier}/features/{feature_id}/", tag = "plans", request_body = PlanFeatureIn,
    security(("bearer" = [])), params(("identifier" = String, Path), ("feature_id" = String, Path, description = "Feature identifier or UUID")),
    responses((status = 200, description = "`{feature, details}`", body = PlanEntitlementOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_plan_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((identifier, feature_key)): Path<(String, String)>,
    Body(input): Body<PlanFeatureIn>,
) -> ApiResult<Json<PlanEntitlementOut>> {
    let raw = input.details.ok_or_else(|| ApiError::field("details", "This field is required."))?;
    let feature = plan_feature(&state, &tenant, &feature_key).await?;
    let mut errors = FieldErrors::new();
    let details = parse_entitlement_details(feature.feature_type, &raw, "", &mut errors);
    errors.into_result()?;
    let details = details.expect("no errors means details");
    let feature_id = feature.id;
    let plan = live_plan(&state, &tenant, &identifier, None).await?;
    let effective = state.store.effective_entitlements(&tenant, &plan).await?;
    let row = effective.iter().find(|e| e.feature_id == feature_id).ok_or_else(ApiError::not_found)?;
    // Changing an inherited value makes it the plan's own: an override.
    let overrides = row.inherited || row.overridden;
    let stored = details.clone();
    state
        .store
        .edit_plan(&tenant, &identifier, state.clock.now(), |draft| {
            match draft.entitlements.iter_mut().find(|e| e.feature_id == feature_id) {
                Some(own) => own.details = stored,
                None => draft.entitlements.push(PlanEntitlement { feature_id, details: stored }),
            }
            Ok(())
        })
        .await
        .map_err(plan_errors)?;
    Ok(Json(PlanEntitlementOut::new(feature, &details, Provenance { inherited: false, overridden: overrides })))
}

/// Remove a feature from the plan (in its draft).
#[utoipa::path(delete, path = "/api/v1/catalog/plans/{identifier}/features/{feature_id}/", tag = "plans", security(("bearer" = [])),
    params(("identifier" = String, Path), ("feature_id" = String, Path, description = "Feature identifier or UUID")),
    responses((status = 204, description = "Removed"), (status = 401), (status = 404)))]
pub async fn remove_plan_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((identifier, feature_key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let feature = plan_feature(&state, &tenant, &feature_key).await?;
    let plan = live_plan(&state, &tenant, &identifier, None).await?;
    if !plan.entitlements.iter().any(|e| e.feature_id == feature.id) {
        let effective = state.store.effective_entitlements(&tenant, &plan).await?;
        if effective.iter().any(|e| e.feature_id == feature.id) {
            return Err(ApiError::BadRequest(format!(
                "\"{}\" is inherited from the parent plan; override its value instead of removing it.",
                feature.identifier
            )));
        }
        return Err(ApiError::not_found());
    }
    state
        .store
        .edit_plan(&tenant, &identifier, state.clock.now(), |draft| {
            let before = draft.entitlements.len();
            draft.entitlements.retain(|e| e.feature_id != feature.id);
            if draft.entitlements.len() == before {
                return Err(FieldErrors::single("feature", "This feature is not on the plan."));
            }
            Ok(())
        })
        .await
        .map_err(plan_errors)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn plan_file(
    state: &AppState,
    tenant: &Tenant,
    identifier: &str,
    pk: &str,
) -> ApiResult<kelviq_store::MediaFile> {
    live_plan(state, tenant, identifier, None).await?;
    state.store.find_media(tenant, MediaOwner::PlanFile, identifier, pk).await?.ok_or_else(ApiError::not_found)
}

/// Change a plan file's name, order or visibility.
#[utoipa::path(patch, path = "/api/v1/catalog/plans/{identifier}/file/{pk}/", tag = "plans", request_body = MediaPatch,
    params(("identifier" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The file", body = PlanFileOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_plan_file(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path((identifier, pk)): Path<(String, String)>,
    Body(patch): Body<MediaPatch>,
) -> ApiResult<Json<PlanFileOut>> {
    plan_file(&state, &tenant, &identifier, &pk).await?;
    let mut changes = patch.into_changes()?;
    if changes.thumbnail.take().is_some() {
        return Err(ApiError::field("thumbnail", "Plan files have no thumbnail."));
    }
    let file =
        state.store.update_media(&tenant, MediaOwner::PlanFile, &identifier, &pk, &changes, state.clock.now()).await?;
    Ok(Json(PlanFileOut::new(&base, &identifier, file)))
}

/// Delete a plan file.
#[utoipa::path(delete, path = "/api/v1/catalog/plans/{identifier}/file/{pk}/", tag = "plans",
    params(("identifier" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_plan_file(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((identifier, pk)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    plan_file(&state, &tenant, &identifier, &pk).await?;
    let file = state.store.delete_media(&tenant, MediaOwner::PlanFile, &identifier, &pk).await?;
    media::remove_files(&state.config.media_dir(), std::iter::once(file.storage_path.as_str())).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Download a plan file: no key needed; redirects to a link valid for five minutes.
#[utoipa::path(get, path = "/api/v1/catalog/plans/{identifier}/file/{pk}/download/", tag = "plans",
    params(("identifier" = String, Path), ("pk" = String, Path)),
    responses((status = 302, description = "To a short-lived signed URL"), (status = 404)))]
pub async fn download_plan_file(
    State(state): State<AppState>,
    BaseUrl(base): BaseUrl,
    Path((identifier, pk)): Path<(String, String)>,
) -> ApiResult<axum::response::Redirect> {
    // The file id is unguessable and unique across tenants; it must also belong to this plan.
    let file = state.store.find_media_by_id(&pk, MediaOwner::PlanFile).await?;
    let file = file.filter(|f| f.owner_id == identifier && f.enabled).ok_or_else(ApiError::not_found)?;
    Ok(axum::response::Redirect::to(&media::signed_file_url(&state, &base, &file).await?))
}
