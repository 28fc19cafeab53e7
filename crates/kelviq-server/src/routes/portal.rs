//! The customer portal: `POST /api/v1/portal/session/` (server key) and the
//! portal itself at `/portal/{org-slug}/`: opened by the signed link, then
//! kept by an HttpOnly cookie scoped to the portal's path.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{BaseUrl, Body, ServerCaller};
use crate::portal::{self, pages, Denied, Viewer};
use crate::routes::hosted::html;
use crate::selling::{self, Cancellation};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
        .route("/portal/{slug}/licenses/{license}/instances/{instance}/deactivate", post(deactivate))
        .route("/portal/{slug}/invoices/{id}", get(invoice))
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

fn denied(d: Denied) -> Response {
    match d {
        Denied::NoPortal => {
            html(StatusCode::NOT_FOUND, crate::routes::hosted::shell("Not found", "<h1>Not found</h1>"))
        }
        Denied::SignedOut => html(StatusCode::UNAUTHORIZED, pages::signed_out()),
        Denied::Service(e) => ApiError::from(e).into_response(),
    }
}

async fn signed_in(state: &AppState, slug: &str, headers: &HeaderMap) -> Result<Viewer, Response> {
    portal::viewer(state, slug, cookie_token(headers).as_deref()).await.map_err(denied)
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
            Err(d) => return denied(d),
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
    form: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
}

/// The viewer of a posted form, its form token checked.
async fn acting(state: &AppState, slug: &str, headers: &HeaderMap, form: &ActionForm) -> Result<Viewer, Response> {
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

fn back(v: &Viewer, done: &str) -> Response {
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
    let c = Cancellation {
        kind: "CURRENT_PERIOD_ENDS".into(),
        date: None,
        feedback: reason,
        comment,
        by: "CANCELLED_BY_CUSTOMER",
    };
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
