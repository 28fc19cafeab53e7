//! The customer portal: `POST /api/v1/portal/session/` (server key) and the
//! portal itself at `/portal/{org-slug}/`: opened by the signed link, then
//! kept by an HttpOnly cookie scoped to the portal's path.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{BaseUrl, Body, ServerCaller};
use crate::portal::{self, pages, signin, Denied, Viewer};
use crate::routes::hosted::html;
use crate::selling::{self, Cancellation};
use crate::state::AppState;
use crate::storefront::look::Brand;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod account;
mod changes;

const COOKIE: &str = "kq_portal";

/// `POST /portal/session/`, under `/api/v1`.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/portal/session", post(create_session))
}

/// The portal's pages, at the root.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/{slug}", get(home))
        .route("/portal/{slug}/subscriptions/{id}/cancel", post(cancel))
        .route("/portal/{slug}/subscriptions/{id}/resume", post(resume))
        .route("/portal/{slug}/subscriptions/{id}/change", get(changes::change_page).post(changes::change))
        .route("/portal/{slug}/payment-methods", post(account::add_card))
        .route("/portal/{slug}/payment-methods/stripe-return", get(account::stripe_card_added))
        .route("/portal/{slug}/payment-methods/{id}/default", post(account::make_default))
        .route("/portal/{slug}/payment-methods/{id}/remove", post(account::remove_method))
        .route("/portal/{slug}/billing-address", post(account::save_address))
        .route("/portal/{slug}/licenses/{license}/instances/{instance}/deactivate", post(deactivate))
        .route("/portal/{slug}/invoices/{id}", get(invoice))
        .route("/portal/{slug}/files/{id}", get(account::file))
        .route("/portal/{slug}/sign-in", get(sign_in_page).post(ask_code))
        .route("/portal/{slug}/sign-in/code", post(type_code))
}

/// Body of `POST /portal/session/` (the Python SDK sends `customerId`, the Node SDK `customer_id`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionIn {
    pub customer_id: Option<String>,
}

/// A portal session: send the customer to `{customerPortalUrl}?token={token}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalSessionOut {
    /// `cpt-<uuid>:<uuid>`: opaque, one customer's, expires (default 1 hour).
    pub token: String,
    pub email: String,
    pub customer_portal_url: String,
}

/// Open a customer portal session.
#[utoipa::path(post, path = "/api/v1/portal/session/", tag = "portal", request_body = PortalSessionIn, security(("bearer" = [])),
    responses((status = 200, description = "The session", body = PortalSessionOut),
        (status = 400, description = "`{\"customerId\": [\"Invalid customer id\"]}` or `Customer does not have an email`"), (status = 401)))]
pub async fn create_session(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<PortalSessionIn>,
) -> ApiResult<Json<PortalSessionOut>> {
    let customer = input
        .customer_id
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty() && c.len() <= 255 && !c.chars().any(char::is_control))
        .ok_or_else(|| ApiError::field("customer_id", "This field is required."))?;
    let s = portal::create_session(&state, &tenant, &customer, &base).await?;
    Ok(Json(PortalSessionOut { token: s.token, email: s.email, customer_portal_url: s.url }))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_string())
    })
}

fn denied(slug: &str, d: Denied) -> Response {
    match d {
        Denied::NoPortal => {
            html(StatusCode::NOT_FOUND, crate::routes::hosted::shell("Not found", "<h1>Not found</h1>"))
        }
        Denied::SignedOut => html(StatusCode::UNAUTHORIZED, pages::signed_out(slug)),
        Denied::Service(e) => ApiError::from(e).into_response(),
    }
}

pub(super) async fn signed_in(state: &AppState, slug: &str, headers: &HeaderMap) -> Result<Viewer, Response> {
    portal::viewer(state, slug, cookie_token(headers).as_deref()).await.map_err(|d| denied(slug, d))
}

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
    done: Option<String>,
}

/// The portal. With `?token=` (the signed link): the token moves into the
/// cookie and the page reloads without it in the address.
pub async fn home(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = q.token {
        let v = match portal::viewer(&state, &slug, Some(&token)).await {
            Ok(v) => v,
            Err(d) => return denied(&slug, d),
        };
        let max_age = (v.expires_at - v.now).num_seconds().max(1);
        let secure =
            if state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={}; Path=/portal/{}/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            v.token, v.slug
        );
        let to = format!("/portal/{}/", v.slug);
        return (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, to)]).into_response();
    }
    let v = match signed_in(&state, &slug, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let notice = match q.done.as_deref() {
        Some("cancelled") => Some("Your subscription will end at the end of the period."),
        Some("resumed") => Some("Your subscription will renew as before."),
        Some("changed") => Some("Your plan was changed."),
        Some("card-added") => Some("Your card was saved."),
        Some("default") => Some("That payment method will be used for future payments."),
        Some("removed") => Some("The payment method was removed."),
        Some("address") => Some("Your billing address was saved."),
        Some("deactivated") => Some("The device was deactivated; its activation is free again."),
        _ => None,
    };
    match pages::home(&state, &v, notice).await {
        Ok(page) => {
            let mut r = html(StatusCode::OK, page);
            r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    pub(super) form: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
}

impl ActionForm {
    /// The form token of posted pairs.
    pub(super) fn of(pairs: &[(String, String)]) -> ActionForm {
        ActionForm {
            form: pairs.iter().find(|(k, _)| k == "form").map(|(_, v)| v.clone()),
            reason: None,
            comment: None,
        }
    }
}

/// The viewer of a posted form, its form token checked.
pub(super) async fn acting(
    state: &AppState,
    slug: &str,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<Viewer, Response> {
    let v = signed_in(state, slug, headers).await?;
    let expected = portal::form_token(&v.token);
    let given = form.form.as_deref().unwrap_or_default();
    if !kelviq_core::keys::hashes_match(given, &expected) {
        return Err(html(
            StatusCode::FORBIDDEN,
            crate::routes::hosted::shell(
                "Refused",
                "<h1>This form has expired</h1><p>Reload the page and try again.</p>",
            ),
        ));
    }
    Ok(v)
}

pub(super) fn back(v: &Viewer, done: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/portal/{}/?done={done}", v.slug))]).into_response()
}

/// The customer's own subscription, or 404.
async fn own_subscription(state: &AppState, v: &Viewer, id: &str) -> Result<(), Response> {
    let s: Option<kelviq_core::billing::Subscription> = state
        .store
        .find_doc(kelviq_store::DocTable::Subscriptions, &v.tenant, id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match s {
        Some(s) if s.customer_id == v.customer_id => Ok(()),
        _ => Err(ApiError::not_found().into_response()),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = own_subscription(&state, &v, &id).await {
        return r;
    }
    let reason = form.reason.filter(|r| pages::REASONS.iter().any(|(value, _)| value == r));
    let comment = form
        .comment
        .map(|c| c.chars().filter(|c| !c.is_control()).take(500).collect::<String>())
        .filter(|c| !c.is_empty());
    let Some(kind) = v.settings.cancellation_mode.cancellation_type() else {
        return html(
            StatusCode::FORBIDDEN,
            crate::routes::hosted::shell(
                "Refused",
                "<h1>Cancellation is not offered here</h1><p>Contact the seller.</p>",
            ),
        );
    };
    let c = Cancellation { kind: kind.into(), date: None, feedback: reason, comment, by: "CANCELLED_BY_CUSTOMER" };
    match selling::cancel_subscription(&state, &v.tenant, &id, c).await {
        Ok(()) => back(&v, "cancelled"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn resume(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = own_subscription(&state, &v, &id).await {
        return r;
    }
    match selling::resume_subscription(&state, &v.tenant, &id).await {
        Ok(()) => back(&v, "resumed"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn deactivate(
    State(state): State<AppState>,
    Path((slug, license, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let row = match crate::licenses::admin::find(&state, &v.tenant, &license).await {
        Ok(row) if row.customer_id == v.customer_id => row,
        Ok(_) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let key = match crate::licenses::key_of(&state, &row) {
        Ok(k) => k,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match crate::licenses::activation::deactivate(&state, &v.tenant, &key, &instance).await {
        Ok(_) => back(&v, "deactivated"),
        Err(crate::licenses::activation::Failure::Service(e)) => ApiError::from(e).into_response(),
        Err(_) => ApiError::not_found().into_response(),
    }
}

/// An invoice of the customer's, as PDF.
pub async fn invoice(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let v = match signed_in(&state, &slug, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (invoice, doc) = match crate::invoices::document(&state, &v.tenant, &id).await {
        Ok((i, d)) if i.customer_id == v.customer_id => (i, d),
        Ok(_) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let headers = [
        (header::CONTENT_TYPE, "application/pdf".to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.pdf\"", invoice.number)),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    (headers, doc.pdf()).into_response()
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: Option<String>,
    code: Option<String>,
    mode: Option<String>,
}

async fn organisation(state: &AppState, slug: &str) -> Result<kelviq_store::Organization, Response> {
    match state.store.find_organization_by_slug(slug).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(denied(slug, Denied::NoPortal)),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn tenant_of(org: &kelviq_store::Organization, mode: Option<&str>) -> kelviq_core::Tenant {
    kelviq_core::Tenant { org_id: org.id, org_seq: org.seq, env: signin::environment(mode) }
}

/// A sign-in form's organisation, tenant (from `mode`), address and clock.
struct SignIn {
    org: kelviq_store::Organization,
    brand: Brand,
    tenant: kelviq_core::Tenant,
    email: String,
    now: chrono::DateTime<chrono::Utc>,
}

async fn signing_in(state: &AppState, slug: &str, form: &SignInForm) -> Result<SignIn, Response> {
    let org = organisation(state, slug).await?;
    let tenant = tenant_of(&org, form.mode.as_deref());
    let brand = brand_of(state, &org, &tenant).await?;
    let Some(email) = form.email.as_deref().and_then(signin::address) else {
        let page = signin::email_page(&org.slug, &brand, tenant.env, Some("Enter a valid email address."));
        return Err(html(StatusCode::BAD_REQUEST, page));
    };
    let now = crate::clock::tenant_now(state, &tenant).await.map_err(|e| ApiError::from(e).into_response())?;
    Ok(SignIn { org, brand, tenant, email, now })
}

async fn brand_of(
    state: &AppState,
    org: &kelviq_store::Organization,
    tenant: &kelviq_core::Tenant,
) -> Result<Brand, Response> {
    let settings = crate::storefront::get(state, tenant).await.map_err(|e| ApiError::from(e).into_response())?;
    Ok(Brand::of(&org.name, &settings, tenant.env))
}

fn at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// The sign-in page: an e-mail address (`?mode=test` for the sandbox).
pub async fn sign_in_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<SignInQuery>,
) -> Response {
    let org = match organisation(&state, &slug).await {
        Ok(org) => org,
        Err(r) => return r,
    };
    let tenant = tenant_of(&org, q.mode.as_deref());
    match brand_of(&state, &org, &tenant).await {
        Ok(brand) => html(StatusCode::OK, signin::email_page(&org.slug, &brand, tenant.env, None)),
        Err(r) => r,
    }
}

/// Sends a code (when the address is a customer's) and asks for it.
pub async fn ask_code(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Form(form): Form<SignInForm>,
) -> Response {
    let SignIn { org, brand, tenant, email, now } = match signing_in(&state, &slug, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match signin::ask(&state, &tenant, &email, &org.name, now).await {
        Ok(signin::Asked::Sent) => html(StatusCode::OK, signin::code_page(&org.slug, &brand, tenant.env, &email, None)),
        Ok(signin::Asked::Locked(until)) => {
            let m = format!("Too many wrong codes. Try again after {}.", at(until));
            html(StatusCode::TOO_MANY_REQUESTS, signin::email_page(&org.slug, &brand, tenant.env, Some(&m)))
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Checks a typed code: the portal (one account) or the choice of accounts.
pub async fn type_code(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Form(form): Form<SignInForm>,
) -> Response {
    let SignIn { org, brand, tenant, email, now } = match signing_in(&state, &slug, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page =
        |status: StatusCode, m: &str| html(status, signin::code_page(&org.slug, &brand, tenant.env, &email, Some(m)));
    match signin::verify(&state, &tenant, &email, form.code.as_deref().unwrap_or_default(), now).await {
        Ok(signin::Typed::Accepted(sessions)) if sessions.len() == 1 => {
            let to = format!("/portal/{}/?token={}", org.slug, sessions[0].2);
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        Ok(signin::Typed::Accepted(sessions)) if sessions.is_empty() => html(
            StatusCode::UNAUTHORIZED,
            signin::email_page(&org.slug, &brand, tenant.env, Some("No account uses this address any more.")),
        ),
        Ok(signin::Typed::Accepted(sessions)) => {
            html(StatusCode::OK, signin::choose_page(&org.slug, &brand, &sessions))
        }
        Ok(signin::Typed::Wrong(left)) => page(
            StatusCode::UNAUTHORIZED,
            &format!("That code is not right. {left} {} left.", if left == 1 { "try" } else { "tries" }),
        ),
        Ok(signin::Typed::BadCode) => page(StatusCode::BAD_REQUEST, "Enter the six digits of the code."),
        Ok(signin::Typed::Refused(Some(until))) => {
            let m = format!("Too many wrong codes. Try again after {}.", at(until));
            html(StatusCode::TOO_MANY_REQUESTS, signin::email_page(&org.slug, &brand, tenant.env, Some(&m)))
        }
        Ok(signin::Typed::Refused(None)) => html(
            StatusCode::UNAUTHORIZED,
            signin::email_page(&org.slug, &brand, tenant.env, Some("That code has expired. Ask for a new one.")),
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}
