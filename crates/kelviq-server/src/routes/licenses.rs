//! Licenses. Kelviq's three calls (server key): `POST /license/activate/`,
//! `/license/deactivate/`, `/license/validate/` (validate takes a client key
//! too). Ours: `POST /license/heartbeat/`, `POST /license/checkout/`,
//! `GET /license/public-key/` (server or client key; client-key calls are
//! limited per address), and the merchant's `GET /licenses/`,
//! `GET/PATCH /licenses/{id}/`, `POST /licenses/{id}/regenerate/`,
//! `POST /licenses/{id}/reset/`, `DELETE /licenses/{id}/instances/{instance}/`.

use crate::clock::tenant_now;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AliasedBody, Body, Caller, Page, ServerCaller};
use crate::http::paging::paged;
use crate::licenses::activation::{self, Activation, Failure, Refusal};
use crate::licenses::admin::{self, LicenseChanges};
use crate::licenses::{cache, offline};
use crate::state::AppState;
use crate::wire::double_option;
use crate::wire::licenses::{
    ActivateOut, DeactivateOut, HeartbeatOut, LicenseFileOut, LicenseOut, PublicKeyOut, ValidateOut,
};
use crate::wire::selling::Renderer;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kelviq_core::keys::KeyKind;
use kelviq_core::timefmt::iso_seconds;
use kelviq_core::FieldErrors;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// Validation, a hot route, outside the `/api/v1` nest (as the entitlement
/// check: a nested route's URI is rebuilt without its prefix on every request).
pub fn edge_router() -> Router<AppState> {
    Router::new().route("/api/v1/license/validate", post(validate))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/license/activate", post(activate))
        .route("/license/deactivate", post(deactivate))
        .route("/license/heartbeat", post(heartbeat))
        .route("/license/checkout", post(checkout))
        .route("/license/public-key", get(public_key))
        .route("/licenses", get(list_licenses))
        .route("/licenses/{id}", get(retrieve_license).patch(update_license))
        .route("/licenses/{id}/regenerate", post(regenerate_license))
        .route("/licenses/{id}/reset", post(reset_license))
        .route("/licenses/{id}/instances/{instance_id}", delete(revoke_instance))
}

fn refused(f: Failure) -> ApiResult<Response> {
    let (status, message) = match f {
        Failure::Refused(Refusal::NotFound(m)) => (StatusCode::NOT_FOUND, m),
        Failure::Refused(Refusal::Forbidden(m)) => (StatusCode::FORBIDDEN, m),
        Failure::Refused(Refusal::TooMany(m)) => (StatusCode::TOO_MANY_REQUESTS, m),
        Failure::Service(e) => return Err(e.into()),
    };
    Ok((status, Json(json!({ "error": message }))).into_response())
}

/// The caller of a license call a desktop app makes: a server key, or a
/// client key within its address's limit per minute (429 beyond). Read from the request
/// in place (no copy of its headers), as validation is a hot path.
pub struct LicenseCaller(pub Caller);

impl FromRequestParts<AppState> for LicenseCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.kind == KeyKind::Server {
            return Ok(LicenseCaller(caller));
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|peer| crate::geo::address(&state.geo, peer, &parts.headers));
        let now = tenant_now(state, &caller.tenant).await?;
        if state.licenses.client_call_allowed(ip, state.config.license_client_requests_per_minute, now) {
            Ok(LicenseCaller(caller))
        } else {
            Err(ApiError::TooManyRequests("Too many license requests from this address; try again in a minute.".into()))
        }
    }
}

fn fields(errors: FieldErrors) -> ApiError {
    ApiError::Fields(errors)
}

/// Body of `POST /license/activate/` (the Python SDK sends snake_case).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateIn {
    pub license_key: Option<String>,
    /// When given, the license must be this customer's.
    pub customer_id: Option<String>,
    pub instance_name: Option<String>,
    /// Kept with the instance; `fingerprint` (a string) names the machine.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Activate an instance of a license (a slot, unless the plan reuses the
/// live instance with the same `metadata.fingerprint`).
#[utoipa::path(post, path = "/api/v1/license/activate/", tag = "licenses", request_body = ActivateIn, security(("bearer" = [])),
    responses((status = 201, description = "The instance", body = ActivateOut), (status = 400), (status = 401),
        (status = 403, description = "`{\"error\": \"Activation limit reached (5/5).\"}` or `This license has expired.`"),
        (status = 404, description = "`{\"error\": \"Invalid license key or customer ID.\"}`"), (status = 429)))]
pub async fn activate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<ActivateIn>,
) -> ApiResult<Response> {
    let a =
        Activation::new(input.license_key, input.customer_id, input.instance_name, input.metadata).map_err(fields)?;
    let done = match activation::activate(&state, &tenant, a).await {
        Ok(done) => done,
        Err(f) => return refused(f),
    };
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    let license = crate::licenses::details(&mut r, &done.license, &done.instances).await?;
    let out = ActivateOut {
        instance_id: done.instance.id.to_string(),
        activated_at: iso_seconds(done.instance.activated_at),
        expires_on: done.license.expires_at.map(iso_seconds),
        license,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Body of `POST /license/deactivate/`, `/license/heartbeat/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceIn {
    pub license_key: Option<String>,
    pub instance_id: Option<String>,
}

impl InstanceIn {
    fn checked(self) -> ApiResult<(String, String)> {
        let mut errors = FieldErrors::new();
        let key = activation::required_key(self.license_key, &mut errors);
        let instance = match self.instance_id.map(|i| i.trim().to_string()) {
            Some(i) if !i.is_empty() && i.len() <= 64 => i,
            Some(i) if !i.is_empty() => {
                errors.add("instance_id", "Not an instance id.");
                String::new()
            }
            _ => {
                errors.add("instance_id", "This field is required.");
                String::new()
            }
        };
        errors.into_result().map_err(fields)?;
        Ok((key, instance))
    }
}

/// Deactivate an instance (its slot is free again).
#[utoipa::path(post, path = "/api/v1/license/deactivate/", tag = "licenses", request_body = InstanceIn, security(("bearer" = [])),
    responses((status = 200, description = "Deactivated", body = DeactivateOut), (status = 400), (status = 401),
        (status = 404, description = "`{\"error\": \"Invalid license key or instance ID.\"}`"), (status = 429)))]
pub async fn deactivate(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<InstanceIn>,
) -> ApiResult<Response> {
    let (key, instance) = input.checked()?;
    match activation::deactivate(&state, &tenant, &key, &instance).await {
        Ok(at) => Ok(Json(DeactivateOut {
            message: "License instance deactivated successfully.".into(),
            deactivated_at: iso_seconds(at),
        })
        .into_response()),
        Err(f) => refused(f),
    }
}

/// Body of `POST /license/validate/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateIn {
    #[serde(alias = "licenseKey")]
    pub license_key: Option<String>,
    #[serde(alias = "instanceId")]
    pub instance_id: Option<String>,
}

/// Validate a license key, and an instance of it when one is named. Server
/// or client key (client-key calls are limited per address).
#[utoipa::path(post, path = "/api/v1/license/validate/", tag = "licenses", request_body = ValidateIn, security(("bearer" = [])),
    responses((status = 200, description = "The verdict (`valid: false` for EXPIRED past grace, DISABLED, SUBSCRIPTION_INACTIVE, HEARTBEAT_DEAD)", body = ValidateOut),
        (status = 400), (status = 401), (status = 404, description = "INVALID_KEY or INSTANCE_NOT_FOUND, in the same shape", body = ValidateOut), (status = 429)))]
pub async fn validate(
    State(state): State<AppState>,
    LicenseCaller(caller): LicenseCaller,
    AliasedBody(input): AliasedBody<ValidateIn>,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let key = activation::required_key(input.license_key, &mut errors);
    if input.instance_id.as_ref().is_some_and(|i| i.len() > 64) {
        errors.add("instance_id", "Not an instance id.");
    }
    errors.into_result().map_err(fields)?;
    let instance = input.instance_id.filter(|i| !i.trim().is_empty());
    let now = tenant_now(&state, &caller.tenant).await?;
    let answer = cache::validate(&state, &caller.tenant, &key, instance.as_deref(), now).await?;
    let status = if answer.found { StatusCode::OK } else { StatusCode::NOT_FOUND };
    Ok((status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response())
}

/// Record a heartbeat of a floating instance. Server or client key.
#[utoipa::path(post, path = "/api/v1/license/heartbeat/", tag = "licenses", request_body = InstanceIn, security(("bearer" = [])),
    responses((status = 200, description = "Recorded", body = HeartbeatOut), (status = 400), (status = 401), (status = 403),
        (status = 404, description = "Unknown, ended, or past its heartbeat (then released: activate again)"), (status = 429)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    LicenseCaller(caller): LicenseCaller,
    Body(input): Body<InstanceIn>,
) -> ApiResult<Response> {
    let (key, instance) = input.checked()?;
    match activation::heartbeat(&state, &caller.tenant, &key, &instance).await {
        Ok(b) => Ok(Json(HeartbeatOut {
            instance_id: b.instance_id.to_string(),
            last_heartbeat_at: iso_seconds(b.at),
            next_heartbeat_due_at: b.ttl.map(|t| iso_seconds(b.at + chrono::Duration::seconds(t))),
            heartbeat_ttl_seconds: b.ttl,
        })
        .into_response()),
        Err(f) => refused(f),
    }
}

/// Body of `POST /license/checkout/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutIn {
    pub license_key: Option<String>,
    pub instance_id: Option<String>,
    /// Seconds the file is good for: 3600 (1 hour) to 31536000 (1 year); default 2592000 (30 days).
    pub ttl: Option<i64>,
}

/// A signed offline licence file for a valid license and live instance.
/// Server or client key.
#[utoipa::path(post, path = "/api/v1/license/checkout/", tag = "licenses", request_body = CheckoutIn, security(("bearer" = [])),
    responses((status = 200, description = "The file", body = LicenseFileOut), (status = 400), (status = 401),
        (status = 403, description = "The license does not validate"), (status = 404), (status = 429)))]
pub async fn checkout(
    State(state): State<AppState>,
    LicenseCaller(caller): LicenseCaller,
    Body(input): Body<CheckoutIn>,
) -> ApiResult<Response> {
    let ttl = kelviq_core::licenses::offline::ttl(input.ttl).map_err(|m| ApiError::field("ttl", m));
    let checked = InstanceIn { license_key: input.license_key, instance_id: input.instance_id }.checked();
    let ((key, instance), ttl) = match (checked, ttl) {
        (Ok(k), Ok(t)) => (k, t),
        (Err(ApiError::Fields(mut e)), Err(ApiError::Fields(t))) => {
            for (f, ms) in t.fields() {
                for m in ms {
                    e.add(f, m.clone());
                }
            }
            return Err(ApiError::Fields(e));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    match offline::checkout(&state, &caller.tenant, &key, &instance, ttl).await {
        Ok(file) => Ok(Json(file).into_response()),
        Err(f) => refused(f),
    }
}

/// The environment's public key that signs licence files (Ed25519).
#[utoipa::path(get, path = "/api/v1/license/public-key/", tag = "licenses", security(("bearer" = [])),
    responses((status = 200, description = "The key", body = PublicKeyOut), (status = 401)))]
pub async fn public_key(State(state): State<AppState>, caller: Caller) -> Json<PublicKeyOut> {
    Json(offline::public_key(&state, &caller.tenant))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LicenseQuery {
    /// Only this customer's licenses.
    pub customer_id: Option<String>,
}

/// List licenses (a customer's, with `customer_id`), oldest first.
#[utoipa::path(get, path = "/api/v1/licenses/", tag = "licenses", security(("bearer" = [])),
    params(LicenseQuery, ("page" = Option<String>, Query), ("page_size" = Option<String>, Query)),
    responses((status = 200, description = "A page of licenses with their instances", body = Page<LicenseOut>), (status = 401)))]
pub async fn list_licenses(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<LicenseQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<LicenseOut>>> {
    let customer = q.customer_id.filter(|c| !c.is_empty());
    let page = paged(&parts, |limit, offset| admin::list(&state, &tenant, customer.as_deref(), limit, offset)).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut results = Vec::with_capacity(page.results.len());
    for row in &page.results {
        results.push(admin::view(&state, &tenant, row, now).await?);
    }
    Ok(Json(Page { count: page.count, next: page.next, previous: page.previous, results }))
}

#[utoipa::path(get, path = "/api/v1/licenses/{id}/", tag = "licenses", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The license", body = LicenseOut), (status = 401), (status = 404)))]
pub async fn retrieve_license(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseOut>> {
    let row = admin::find(&state, &tenant, &id).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(admin::view(&state, &tenant, &row, now).await?))
}

/// Body of `PATCH /licenses/{id}/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseIn {
    /// false: the key stops validating (DISABLED) and activating.
    pub enabled: Option<bool>,
    /// 1–10,000; null: unlimited.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub activation_limit: Option<Option<i64>>,
    /// ISO 8601 with a zone; null: never expires.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires_on: Option<Option<String>>,
}

/// Change a license's limit, expiry or `enabled`.
#[utoipa::path(patch, path = "/api/v1/licenses/{id}/", tag = "licenses", request_body = LicenseIn, security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "The license", body = LicenseOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_license(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<LicenseIn>,
) -> ApiResult<Json<LicenseOut>> {
    let changes = LicenseChanges {
        enabled: input.enabled,
        activation_limit: input.activation_limit,
        expires_on: input.expires_on,
    };
    Ok(Json(admin::update(&state, &tenant, &id, changes).await?))
}

/// Give the license a new key; the old one stops validating at once.
#[utoipa::path(post, path = "/api/v1/licenses/{id}/regenerate/", tag = "licenses", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "The license with its new key", body = LicenseOut), (status = 401), (status = 404)))]
pub async fn regenerate_license(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseOut>> {
    Ok(Json(admin::regenerate(&state, &tenant, &id).await?))
}

/// End every live instance of the license (the customer activates anew).
#[utoipa::path(post, path = "/api/v1/licenses/{id}/reset/", tag = "licenses", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "The license", body = LicenseOut), (status = 401), (status = 404)))]
pub async fn reset_license(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseOut>> {
    Ok(Json(admin::revoke(&state, &tenant, &id, None).await?))
}

/// End one instance of the license.
#[utoipa::path(delete, path = "/api/v1/licenses/{id}/instances/{instance_id}/", tag = "licenses", security(("bearer" = [])),
    params(("id" = String, Path), ("instance_id" = String, Path)),
    responses((status = 200, description = "The license", body = LicenseOut), (status = 401), (status = 404)))]
pub async fn revoke_instance(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path((id, instance_id)): Path<(String, String)>,
) -> ApiResult<Json<LicenseOut>> {
    Ok(Json(admin::revoke(&state, &tenant, &id, Some(&instance_id)).await?))
}
