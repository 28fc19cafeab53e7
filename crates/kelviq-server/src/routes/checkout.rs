//! Checkout (spec §1.2): create a session, list and read sessions and their
//! events, and the sandbox helper that completes a session without a browser.

use crate::clock::tenant_now;
use crate::geo::Visitor;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{BaseUrl, Body, Paging, ServerCaller, DEFAULT_PAGE_SIZE};
use crate::http::input::{self, FeatureQuantityIn};
use crate::selling::payments::CardInput;
use crate::selling::sessions::{open_session, NewCheckout};
use crate::selling::{complete_checkout, CheckoutError, CheckoutForm};
use crate::state::AppState;
use crate::wire::selling::*;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use kelviq_core::billing::CheckoutSession;
use kelviq_core::billing::SessionStatus;
use kelviq_core::customer::validate_customer_id;
use kelviq_core::validation::is_valid_email;
use kelviq_core::{Environment, FieldErrors, Tenant};
use kelviq_store::{DocTable, Filter};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout", post(create_checkout))
        .route("/checkout/sessions", get(list_sessions))
        .route("/checkout/sessions/{id}", get(retrieve_session))
        .route("/checkout/sessions/{id}/events", get(session_events))
        .route("/checkout/sessions/{id}/complete", post(complete_session))
}

/// Body of `POST /checkout/`. Keys may be camelCase or snake_case.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckoutIn {
    pub plan_identifier: Option<String>,
    /// ONE_TIME, DAILY, WEEKLY, TWENTY_EIGHT_DAYS, MONTHLY, THREE_MONTHS, SIX_MONTHS or YEARLY.
    pub charge_period: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    /// Your customer id; a new customer with this id is created at completion when it does not exist.
    /// Omitted: a customer with a generated id is created.
    pub customer_id: Option<String>,
    /// Pre-fills the email field (and the new customer's email).
    pub email: Option<String>,
    pub name: Option<String>,
    pub features: Option<Vec<FeatureQuantityIn>>,
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
    pub ip_address: Option<String>,
    /// Trial days, overriding the plan's.
    pub trial_period: Option<i64>,
    /// Pay-what-you-want amount in major units; needs `currencyCode` and `taxBehavior`.
    #[schema(value_type = Option<f64>)]
    pub custom_amount: Option<Value>,
    pub currency_code: Option<String>,
    /// INCLUSIVE or EXCLUSIVE.
    pub tax_behavior: Option<String>,
    pub discounts_enabled: Option<bool>,
    pub discount_code: Option<String>,
    pub lock_email: Option<bool>,
    /// ISO 3166-1 alpha-2.
    pub default_billing_country: Option<String>,
    pub plans_enabled: Option<String>,
    /// Stored verbatim and returned in the `checkout.completed` event.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Checks the body of `POST /checkout/`.
fn parse_checkout(input: CheckoutIn) -> ApiResult<NewCheckout> {
    let mut errors = FieldErrors::new();
    let plan_identifier = input::required(&input.plan_identifier, "plan_identifier", &mut errors).map(str::to_string);
    let period = input::period(input.charge_period.as_deref(), &mut errors);
    match input::required(&input.success_url, "success_url", &mut errors) {
        Some(u) if !input::valid_url(u) => errors.add("success_url", "Enter a valid URL."),
        _ => {}
    }
    if let Some(u) = input.cancel_url.as_deref().filter(|u| !u.is_empty() && !input::valid_url(u)) {
        errors.add("cancel_url", format!("\"{u}\" is not a valid URL."));
    }
    if let Some(id) = &input.customer_id {
        validate_customer_id(id, &mut errors);
    }
    let email = input.email.clone().map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
    if email.as_deref().is_some_and(|e| !is_valid_email(e)) {
        errors.add("email", "Enter a valid email address.");
    }
    let features = input::quantities(input.features, &mut errors);
    if input.trial_period.is_some_and(|d| !(1..=365).contains(&d)) {
        errors.add("trial_period", "Ensure this value is from 1 to 365.");
    }
    let tax = input.tax_behavior.clone();
    if tax.as_deref().is_some_and(|t| t != "INCLUSIVE" && t != "EXCLUSIVE") {
        errors.add("tax_behavior", format!("\"{}\" is not a valid choice.", tax.clone().unwrap_or_default()));
    }
    let currency = input::currency(input.currency_code.as_deref(), "currency_code", &mut errors);
    let mut custom_minor = None;
    if let Some(amount) = input.custom_amount.as_ref().filter(|v| !v.is_null()) {
        match (&currency, &tax) {
            (None, _) => errors.add("currency_code", "This field is required with customAmount."),
            (_, None) => errors.add("tax_behavior", "This field is required with customAmount."),
            (Some(c), Some(_)) => match input::positive_amount(amount, c, "customAmount") {
                Ok(m) => custom_minor = Some(m),
                Err(m) => errors.add("custom_amount", m),
            },
        }
    }
    let country = input::country(input.default_billing_country.as_deref(), "default_billing_country", &mut errors);
    if let Some(ip) = input.ip_address.as_deref().filter(|ip| ip.trim().parse::<std::net::IpAddr>().is_err()) {
        errors.add("ip_address", format!("\"{ip}\" is not an IPv4 or IPv6 address."));
    }
    let metadata = match input.metadata {
        None | Some(Value::Null) => json!({}),
        Some(m @ Value::Object(_)) => m,
        Some(_) => {
            errors.add("metadata", "Expected a dictionary of items.");
            json!({})
        }
    };
    errors.into_result()?;
    Ok(NewCheckout {
        plan_identifier: plan_identifier.expect("checked"),
        period: period.expect("checked"),
        success_url: input.success_url.unwrap_or_default(),
        cancel_url: input.cancel_url.filter(|u| !u.is_empty()),
        customer_id: input.customer_id,
        email,
        name: input.name,
        features,
        trial_days: input.trial_period,
        currency,
        tax_behavior: tax,
        custom_minor,
        default_billing_country: country,
        metadata,
        discounts_enabled: input.discounts_enabled.unwrap_or(true),
        discount_code: input.discount_code.filter(|c| !c.trim().is_empty()),
        lock_email: input.lock_email.unwrap_or(false),
        ip_address: input.ip_address,
        visitor_country: None,
        offering_id: input.offering_id,
        pricing_table_id: input.pricing_table_id,
        rule_id: input.rule_id,
    })
}

/// Create a checkout session and get the hosted page's URL.
#[utoipa::path(post, path = "/api/v1/checkout/", tag = "checkout", request_body = CheckoutIn, security(("bearer" = [])),
    responses((status = 201, description = "`{checkoutUrl, checkoutSessionId}`", body = CheckoutCreatedOut), (status = 400, description = "Field errors"), (status = 401)))]
pub async fn create_checkout(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    visitor: Visitor,
    Body(input): Body<CheckoutIn>,
) -> ApiResult<(StatusCode, Json<CheckoutCreatedOut>)> {
    let mut new = parse_checkout(input)?;
    // The buyer's address as the merchant gives it, else the request's.
    new.visitor_country = match new.ip_address.as_deref().and_then(|ip| ip.trim().parse().ok()) {
        Some(ip) => Visitor::at(&state.geo, ip).country,
        None => visitor.country,
    };
    let session = open_session(&state, &tenant, new).await?;
    let url = format!("{base}/checkout/{}/", session.id);
    Ok((StatusCode::CREATED, Json(CheckoutCreatedOut { checkout_url: url, checkout_session_id: session.id })))
}

/// Query of the session list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    pub search: Option<String>,
    /// open, processing, success or expired.
    pub status: Option<String>,
    /// Created on or after (YYYY-MM-DD).
    pub start_date: Option<String>,
    /// Created on or before (YYYY-MM-DD).
    pub end_date: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List checkout sessions, newest first.
#[utoipa::path(get, path = "/api/v1/checkout/sessions/", tag = "checkout", params(SessionListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of checkout sessions", body = Page<SessionOut>), (status = 401)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<SessionListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<SessionOut>>> {
    let now = tenant_now(&state, &tenant).await?;
    let mut filters = Vec::new();
    if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        filters.push(Filter::Search(s.to_string()));
    }
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    match status.map(|s| SessionStatus::parse(s).ok_or(s)) {
        None => {}
        Some(Ok(SessionStatus::Expired)) => {
            filters.push(Filter::Eq("status", SessionStatus::Open.as_str().into()));
            filters.push(Filter::Before("expires_at", now + Duration::microseconds(1)));
        }
        Some(Ok(SessionStatus::Open)) => {
            filters.push(Filter::Eq("status", SessionStatus::Open.as_str().into()));
            filters.push(Filter::AtLeast("expires_at", now + Duration::microseconds(1)));
        }
        Some(Ok(s @ (SessionStatus::Processing | SessionStatus::Success))) => {
            filters.push(Filter::Eq("status", s.as_str().into()))
        }
        Some(Err(other)) => return Err(ApiError::field("status", format!("\"{other}\" is not a valid choice."))),
    }
    input::date_filters("created_at", q.start_date.as_deref(), q.end_date.as_deref(), &mut filters)?;
    let (paging, total, sessions) =
        input::page_of::<CheckoutSession>(&state, &tenant, DocTable::CheckoutSessions, &filters, &parts).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    let mut results = Vec::new();
    for s in &sessions {
        results.push(r.session(s, SessionView::Summary).await?);
    }
    Ok(Json(paging.page(total, results)))
}

async fn find_session(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<CheckoutSession> {
    state.store.find_doc(DocTable::CheckoutSessions, tenant, id).await?.ok_or_else(ApiError::not_found)
}

/// A checkout session with its order, subscription and payment method.
#[utoipa::path(get, path = "/api/v1/checkout/sessions/{id}/", tag = "checkout", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "The session", body = SessionOut), (status = 401), (status = 404)))]
pub async fn retrieve_session(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionOut>> {
    let cs = find_session(&state, &tenant, &id).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).session(&cs, SessionView::Detail).await?))
}

/// A checkout session's events, newest first.
#[utoipa::path(get, path = "/api/v1/checkout/sessions/{id}/events/", tag = "checkout", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "A page of events", body = Page<LogEntryOut>), (status = 401), (status = 404)))]
pub async fn session_events(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    parts: Parts,
) -> ApiResult<Json<Page<LogEntryOut>>> {
    let cs = find_session(&state, &tenant, &id).await?;
    let entries = log_entries(&cs.log, None);
    let mut paging = Paging::from_parts(&parts, DEFAULT_PAGE_SIZE)?;
    let (page, total) = paging.slice(&entries)?;
    Ok(Json(paging.page(total, page.to_vec())))
}

/// Body of the sandbox completion helper.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompleteIn {
    /// A sandbox test card number, e.g. `4242424242424242`.
    pub card: Option<String>,
    pub exp_month: Option<u32>,
    pub exp_year: Option<i32>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub billing_country: Option<String>,
    /// A business buyer's tax id, e.g. `DE123456789` (checked against the billing country's format).
    pub tax_id: Option<String>,
    /// A discount code typed on the page (a session that holds one keeps it).
    pub discount_code: Option<String>,
}

/// Sandbox only: complete a session as submitting its hosted page would.
#[utoipa::path(post, path = "/api/v1/checkout/sessions/{id}/complete/", tag = "checkout", request_body = CompleteIn,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The completed session", body = SessionOut), (status = 400, description = "Declined card, completed or expired session, production environment"), (status = 404)))]
pub async fn complete_session(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<CompleteIn>,
) -> ApiResult<Json<SessionOut>> {
    if tenant.env == Environment::Production {
        return Err(ApiError::BadRequest(
            "Completing a checkout through the API is only possible in the sandbox; customers pay on the checkout page."
                .into(),
        ));
    }
    let form = CheckoutForm {
        payment: Default::default(),
        card: input.card.map(|number| CardInput { number, exp_month: input.exp_month, exp_year: input.exp_year }),
        email: input.email,
        name: input.name,
        billing_country: input.billing_country,
        tax_id: input.tax_id.filter(|t| !t.trim().is_empty()),
        discount_code: input.discount_code.filter(|c| !c.trim().is_empty()),
    };
    let cs = complete_checkout(&state, &tenant, &id, form).await.map_err(|e| match e {
        CheckoutError::Payer(field, m) => ApiError::field(field, m),
        CheckoutError::Api(e) => e.into(),
    })?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).session(&cs, SessionView::Detail).await?))
}
