//! Catalog, part one (spec §1.9): products with their settings, and features.
//! Products and features are addressed by UUID or by identifier.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{BaseUrl, Body, Paging, ServerCaller};
use crate::media;
use crate::media::MediaPatch;
use crate::state::AppState;
use crate::wire::catalog::FeatureOut;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kelviq_core::catalog::{FeatureChanges, NewFeature, NewProduct, Product, ProductChanges, ProductSettings};
use kelviq_core::timefmt::iso_micros;
use kelviq_store::{MediaFile, MediaOwner, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Catalog lists default to 100 per page (spec §2.1).
const CATALOG_PAGE_SIZE: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/catalog/products", get(list_products).post(create_product))
        .route("/catalog/products/{pk}", get(retrieve_product).patch(update_product).delete(archive_product))
        .route("/catalog/products/{pk}/settings", get(get_settings).patch(update_settings))
        .route("/catalog/products/{product_pk}/image/{pk}", axum::routing::patch(update_image).delete(delete_image))
        .route("/catalog/products/{product_pk}/file/{pk}", axum::routing::patch(update_file).delete(delete_file))
        .route("/catalog/features", get(list_features).post(create_feature))
        .route("/catalog/features/{pk}", get(retrieve_feature).patch(update_feature).delete(archive_feature))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogListQuery {
    /// Case-insensitive substring of name, identifier or description.
    pub search: Option<String>,
    /// 1-based page number.
    pub page: Option<String>,
    /// Results per page (default 100, at most 100).
    pub page_size: Option<String>,
}

/// Body of `POST /catalog/products/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductIn {
    /// Required.
    pub name: Option<String>,
    /// One of `saas`, `saas_business`, `software`, `videocontent`, `informationservice`,
    /// `ebook`, `digitalgraphic`, `videogame`, `eservice`, `training`. Required.
    pub tax_code: Option<String>,
    /// URL-safe slug; generated from `name` when left out.
    pub identifier: Option<String>,
    pub description: Option<String>,
    /// Keys of files uploaded through `/media/`.
    pub image_keys: Option<Vec<String>>,
}

/// Body of `PATCH /catalog/products/{pk}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tax_code: Option<String>,
    pub image_keys: Option<Vec<String>>,
    pub file_keys: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductImageOut {
    pub id: String,
    pub name: Option<String>,
    pub image: String,
    pub ordering: i64,
    pub thumbnail: bool,
    pub enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductFileOut {
    pub id: String,
    pub name: String,
    pub file: String,
    pub ordering: i64,
    pub enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductOut {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub description: String,
    pub tax_code: String,
    pub created_by: String,
    pub modified_on: String,
    pub images: Vec<ProductImageOut>,
    /// Downloadable files; each `file` is a link valid for five minutes.
    pub files: Vec<ProductFileOut>,
    /// Identifiers of the product's published plans (detail endpoint only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<String>>,
}

impl ProductImageOut {
    fn new(base: &str, f: MediaFile) -> Self {
        ProductImageOut {
            image: media::image_url(base, &f),
            id: f.id.to_string(),
            name: Some(f.name),
            ordering: f.ordering,
            thumbnail: f.thumbnail,
            enabled: f.enabled,
        }
    }
}

/// Whether a product shows the identifiers of its published plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProductView {
    Listed,
    WithPlans,
}

/// A product with its images (and, for the detail view, its published plans).
async fn product_out(
    state: &AppState,
    tenant: &kelviq_core::Tenant,
    base: &str,
    p: Product,
    view: ProductView,
) -> ApiResult<ProductOut> {
    let images = state.store.list_media(tenant, MediaOwner::ProductImage, &p.id.to_string()).await?;
    let plans = if view == ProductView::WithPlans {
        Some(state.store.published_plan_identifiers(tenant, p.id).await?)
    } else {
        None
    };
    let files = state.store.list_media(tenant, MediaOwner::ProductFile, &p.id.to_string()).await?;
    let mut out = ProductOut::from_product(p, plans);
    out.images = images.into_iter().map(|f| ProductImageOut::new(base, f)).collect();
    for f in files {
        let file = media::signed_file_url(state, base, &f).await?;
        out.files.push(ProductFileOut {
            id: f.id.to_string(),
            name: f.name,
            file,
            ordering: f.ordering,
            enabled: f.enabled,
        });
    }
    Ok(out)
}

impl ProductOut {
    fn from_product(p: Product, plans: Option<Vec<String>>) -> Self {
        ProductOut {
            id: p.id.to_string(),
            identifier: p.identifier,
            name: p.name,
            description: p.description,
            tax_code: p.tax_code,
            created_by: p.created_by,
            modified_on: iso_micros(p.modified_at),
            images: Vec::new(),
            files: Vec::new(),
            plans,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductSettingsOut {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub currency: String,
    pub product_url: Option<String>,
}

impl From<ProductSettings> for ProductSettingsOut {
    fn from(s: ProductSettings) -> Self {
        ProductSettingsOut { vpn: s.vpn, tor: s.tor, proxy: s.proxy, currency: s.currency, product_url: s.product_url }
    }
}

fn conflict_on_identifier(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::Conflict("identifier") => {
            ApiError::field("identifier", format!("{what} with this identifier already exists."))
        }
        StoreError::Conflict("already archived") => ApiError::BadRequest("Already archived.".into()),
        other => other.into(),
    }
}

/// List live products, newest first.
#[utoipa::path(get, path = "/api/v1/catalog/products/", tag = "catalog", params(CatalogListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of products", body = Page<ProductOut>), (status = 401)))]
pub async fn list_products(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Query(query): Query<CatalogListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<ProductOut>>> {
    let mut paging = Paging::from_parts(&parts, CATALOG_PAGE_SIZE)?;
    let search = query.search.as_deref();
    let total = state.store.count_products(&tenant, search).await? as u64;
    let (limit, offset) = paging.window(total)?;
    let products = state.store.list_products(&tenant, search, limit, offset).await?;
    let mut results = Vec::with_capacity(products.len());
    for p in products {
        results.push(product_out(&state, &tenant, &base, p, ProductView::Listed).await?);
    }
    Ok(Json(paging.page(total, results)))
}

/// Create a product.
#[utoipa::path(post, path = "/api/v1/catalog/products/", tag = "catalog", request_body = ProductIn, security(("bearer" = [])),
    responses((status = 201, body = ProductOut), (status = 400), (status = 401)))]
pub async fn create_product(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<ProductIn>,
) -> ApiResult<(StatusCode, Json<ProductOut>)> {
    let new = NewProduct::parse(input.name, input.identifier, input.description, input.tax_code)?;
    let images = media::check_uploads(
        &state,
        &tenant,
        MediaOwner::ProductImage,
        "image_keys",
        input.image_keys.as_deref().unwrap_or_default(),
    )
    .await?;
    let product = state
        .store
        .insert_product(&tenant, &new, "API", state.clock.now())
        .await
        .map_err(|e| conflict_on_identifier(e, "product"))?;
    media::attach(&state, &tenant, MediaOwner::ProductImage, &product.id.to_string(), images).await?;
    Ok((StatusCode::CREATED, Json(product_out(&state, &tenant, &base, product, ProductView::Listed).await?)))
}

/// Retrieve a product by UUID or identifier, with its published plans.
#[utoipa::path(get, path = "/api/v1/catalog/products/{pk}/", tag = "catalog",
    params(("pk" = String, Path, description = "Product UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = ProductOut), (status = 401), (status = 404)))]
pub async fn retrieve_product(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(pk): Path<String>,
) -> ApiResult<Json<ProductOut>> {
    let product = state.store.find_product(&tenant, &pk).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(product_out(&state, &tenant, &base, product, ProductView::WithPlans).await?))
}

/// Update a product's name, description or tax code.
#[utoipa::path(patch, path = "/api/v1/catalog/products/{pk}/", tag = "catalog", request_body = ProductPatch,
    params(("pk" = String, Path, description = "Product UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = ProductOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_product(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(pk): Path<String>,
    Body(patch): Body<ProductPatch>,
) -> ApiResult<Json<ProductOut>> {
    let changes = ProductChanges::parse(patch.name, patch.description, patch.tax_code)?;
    state.store.find_product(&tenant, &pk).await?.ok_or_else(ApiError::not_found)?;
    let images = media::check_uploads(
        &state,
        &tenant,
        MediaOwner::ProductImage,
        "image_keys",
        patch.image_keys.as_deref().unwrap_or_default(),
    )
    .await?;
    let files = media::check_uploads(
        &state,
        &tenant,
        MediaOwner::ProductFile,
        "file_keys",
        patch.file_keys.as_deref().unwrap_or_default(),
    )
    .await?;
    let product = state.store.update_product(&tenant, &pk, &changes, state.clock.now()).await?;
    media::attach(&state, &tenant, MediaOwner::ProductImage, &product.id.to_string(), images).await?;
    media::attach(&state, &tenant, MediaOwner::ProductFile, &product.id.to_string(), files).await?;
    Ok(Json(product_out(&state, &tenant, &base, product, ProductView::Listed).await?))
}

/// Archive a product.
#[utoipa::path(delete, path = "/api/v1/catalog/products/{pk}/", tag = "catalog",
    params(("pk" = String, Path, description = "Product UUID or identifier")), security(("bearer" = [])),
    responses((status = 204, description = "Archived"), (status = 400, description = "Already archived"), (status = 401), (status = 404)))]
pub async fn archive_product(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .archive_product(&tenant, &pk, state.clock.now())
        .await
        .map_err(|e| conflict_on_identifier(e, "product"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A product's settings.
#[utoipa::path(get, path = "/api/v1/catalog/products/{pk}/settings/", tag = "catalog",
    params(("pk" = String, Path, description = "Product UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = ProductSettingsOut), (status = 401), (status = 404)))]
pub async fn get_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
) -> ApiResult<Json<ProductSettingsOut>> {
    let product = state.store.find_product(&tenant, &pk).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(product.settings.into()))
}

/// Update a product's settings (`vpn`, `tor`, `proxy`, `currency`, `productUrl`).
#[utoipa::path(patch, path = "/api/v1/catalog/products/{pk}/settings/", tag = "catalog",
    params(("pk" = String, Path, description = "Product UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = ProductSettingsOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_settings(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
    Body(patch): Body<Map<String, Value>>,
) -> ApiResult<Json<ProductSettingsOut>> {
    let product = state.store.find_product(&tenant, &pk).await?.ok_or_else(ApiError::not_found)?;
    let settings = product.settings.patched(&patch)?;
    state.store.update_product_settings(&tenant, &pk, &settings, state.clock.now()).await?;
    Ok(Json(settings.into()))
}

/// Body of `POST /catalog/features/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FeatureIn {
    /// Required.
    pub name: Option<String>,
    /// `BOOLEAN`, `CUSTOMIZABLE` or `METER`. Required.
    pub feature_type: Option<String>,
    pub identifier: Option<String>,
    pub description: Option<String>,
    /// METER: `{"featureSubType": "PRE_AGGREGATED_USAGE"|"RAW_EVENTS", "units": {"singular", "plural"}}`.
    #[schema(value_type = Option<Object>)]
    pub feature_details: Option<Value>,
    /// RAW_EVENTS: `{"aggregation": {"function": "COUNT"|"SUM"|"MAX"|"UNIQUE_COUNT"|"LATEST", "field"},
    /// "filters": [[{"property", "operator", "value"}]]}`: conditions in a group are ANDed, groups ORed.
    #[schema(value_type = Option<Object>)]
    pub meter: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Body of `PATCH /catalog/features/{pk}/`: `identifier`, `featureType`,
/// `featureDetails` and `meter` cannot change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FeaturePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub identifier: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub feature_type: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub feature_details: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub meter: Option<Value>,
}

/// List live features, newest first.
#[utoipa::path(get, path = "/api/v1/catalog/features/", tag = "catalog", params(CatalogListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of features", body = Page<FeatureOut>), (status = 401)))]
pub async fn list_features(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(query): Query<CatalogListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<FeatureOut>>> {
    let mut paging = Paging::from_parts(&parts, CATALOG_PAGE_SIZE)?;
    let search = query.search.as_deref();
    let total = state.store.count_features(&tenant, search).await? as u64;
    let (limit, offset) = paging.window(total)?;
    let features = state.store.list_features(&tenant, search, limit, offset).await?;
    let results: Vec<FeatureOut> = features.into_iter().map(Into::into).collect();
    Ok(Json(paging.page(total, results)))
}

/// Create a feature.
#[utoipa::path(post, path = "/api/v1/catalog/features/", tag = "catalog", request_body = FeatureIn, security(("bearer" = [])),
    responses((status = 201, body = FeatureOut), (status = 400), (status = 401)))]
pub async fn create_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<FeatureIn>,
) -> ApiResult<(StatusCode, Json<FeatureOut>)> {
    let new = NewFeature::parse(
        input.name,
        input.identifier,
        input.description,
        input.feature_type,
        input.feature_details,
        input.meter,
        input.metadata,
    )?;
    let feature = state
        .store
        .insert_feature(&tenant, &new, state.clock.now())
        .await
        .map_err(|e| conflict_on_identifier(e, "feature"))?;
    crate::usage::meters::forget_catalog(&tenant);
    Ok((StatusCode::CREATED, Json(feature.into())))
}

/// Retrieve a feature by UUID or identifier (archived ones too, marked `isArchived`).
#[utoipa::path(get, path = "/api/v1/catalog/features/{pk}/", tag = "catalog",
    params(("pk" = String, Path, description = "Feature UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = FeatureOut), (status = 401), (status = 404)))]
pub async fn retrieve_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
) -> ApiResult<Json<FeatureOut>> {
    let feature = state.store.find_feature(&tenant, &pk).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(feature.into()))
}

/// Rename a feature or change its description or metadata.
#[utoipa::path(patch, path = "/api/v1/catalog/features/{pk}/", tag = "catalog", request_body = FeaturePatch,
    params(("pk" = String, Path, description = "Feature UUID or identifier")), security(("bearer" = [])),
    responses((status = 200, body = FeatureOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
    Body(patch): Body<FeaturePatch>,
) -> ApiResult<Json<FeatureOut>> {
    let immutable: Vec<&str> = [
        ("identifier", patch.identifier.is_some()),
        ("feature_type", patch.feature_type.is_some()),
        ("feature_details", patch.feature_details.is_some()),
        ("meter", patch.meter.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let changes = FeatureChanges::parse(patch.name, patch.description, patch.metadata, &immutable)?;
    let feature = state.store.update_feature(&tenant, &pk, &changes, state.clock.now()).await?;
    crate::usage::meters::forget_catalog(&tenant);
    Ok(Json(feature.into()))
}

/// Archive a feature.
#[utoipa::path(delete, path = "/api/v1/catalog/features/{pk}/", tag = "catalog",
    params(("pk" = String, Path, description = "Feature UUID or identifier")), security(("bearer" = [])),
    responses((status = 204, description = "Archived"), (status = 400, description = "Already archived"), (status = 401), (status = 404)))]
pub async fn archive_feature(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(pk): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .archive_feature(&tenant, &pk, state.clock.now())
        .await
        .map_err(|e| conflict_on_identifier(e, "feature"))?;
    crate::usage::meters::forget_catalog(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// Change a product image's name, order, thumbnail flag or visibility.
#[utoipa::path(patch, path = "/api/v1/catalog/products/{product_pk}/image/{pk}/", tag = "catalog", request_body = MediaPatch,
    params(("product_pk" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ProductImageOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_image(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path((product_pk, pk)): Path<(String, String)>,
    Body(patch): Body<MediaPatch>,
) -> ApiResult<Json<ProductImageOut>> {
    let product = state.store.find_product(&tenant, &product_pk).await?.ok_or_else(ApiError::not_found)?;
    let changes = patch.into_changes()?;
    let file = state
        .store
        .update_media(&tenant, MediaOwner::ProductImage, &product.id.to_string(), &pk, &changes, state.clock.now())
        .await?;
    Ok(Json(ProductImageOut::new(&base, file)))
}

/// Delete a product image.
#[utoipa::path(delete, path = "/api/v1/catalog/products/{product_pk}/image/{pk}/", tag = "catalog",
    params(("product_pk" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_image(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((product_pk, pk)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let product = state.store.find_product(&tenant, &product_pk).await?.ok_or_else(ApiError::not_found)?;
    let file = state.store.delete_media(&tenant, MediaOwner::ProductImage, &product.id.to_string(), &pk).await?;
    media::remove_files(&state.config.media_dir(), std::iter::once(file.storage_path.as_str())).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a product file's name, order or visibility.
#[utoipa::path(patch, path = "/api/v1/catalog/products/{product_pk}/file/{pk}/", tag = "catalog", request_body = MediaPatch,
    params(("product_pk" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ProductFileOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_file(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path((product_pk, pk)): Path<(String, String)>,
    Body(patch): Body<MediaPatch>,
) -> ApiResult<Json<ProductFileOut>> {
    let product = state.store.find_product(&tenant, &product_pk).await?.ok_or_else(ApiError::not_found)?;
    let mut changes = patch.into_changes()?;
    if changes.thumbnail.take().is_some() {
        return Err(ApiError::field("thumbnail", "Product files have no thumbnail; images do."));
    }
    let f = state
        .store
        .update_media(&tenant, MediaOwner::ProductFile, &product.id.to_string(), &pk, &changes, state.clock.now())
        .await?;
    let file = media::signed_file_url(&state, &base, &f).await?;
    Ok(Json(ProductFileOut { id: f.id.to_string(), name: f.name, file, ordering: f.ordering, enabled: f.enabled }))
}

/// Delete a product file.
#[utoipa::path(delete, path = "/api/v1/catalog/products/{product_pk}/file/{pk}/", tag = "catalog",
    params(("product_pk" = String, Path), ("pk" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401), (status = 404)))]
pub async fn delete_file(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((product_pk, pk)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let product = state.store.find_product(&tenant, &product_pk).await?.ok_or_else(ApiError::not_found)?;
    let file = state.store.delete_media(&tenant, MediaOwner::ProductFile, &product.id.to_string(), &pk).await?;
    media::remove_files(&state.config.media_dir(), std::iter::once(file.storage_path.as_str())).await;
    Ok(StatusCode::NO_CONTENT)
}
