//! Subscriptions (spec §1.5): list, retrieve, create for a customer with a
//! saved card, update (plan change, trial end) with a non-mutating preview,
//! cancel; and one-time charges (`POST /charges/`), which are purchases of
//! the same kind.

use crate::clock::tenant_now;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{BaseUrl, Body, ServerCaller};
use crate::http::input::{self, required, FeatureQuantityIn};
use crate::selling::{self, Cancellation, ChangeRequest, Purchase};
use crate::state::AppState;
use crate::wire::selling::*;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kelviq_core::billing::{amount_number, preview_change, Proration, SubStatus, Subscription};
use kelviq_core::plans::ChargePeriod;
use kelviq_core::timefmt::iso_seconds;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{DocTable, Filter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/subscriptions", get(list_subscriptions))
        .route("/subscriptions/create", post(create_subscription))
        .route("/subscriptions/{id}", get(retrieve_subscription))
        .route("/subscriptions/{id}/update", post(update_subscription))
        .route("/subscriptions/{id}/update/preview", post(preview_update))
        .route("/subscriptions/{id}/cancel", post(cancel_subscription))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionListQuery {
    pub customer_id: Option<String>,
    /// Comma-separated statuses, e.g. `active,trialing`. Without it, live subscriptions only.
    pub status: Option<String>,
    pub start_date_after: Option<String>,
    pub start_date_before: Option<String>,
    pub modified_on_after: Option<String>,
    pub modified_on_before: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List subscriptions, newest first.
#[utoipa::path(get, path = "/api/v1/subscriptions/", tag = "subscriptions", params(SubscriptionListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of subscriptions", body = Page<SubscriptionOut>), (status = 401)))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Query(q): Query<SubscriptionListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<SubscriptionOut>>> {
    let mut filters = Vec::new();
    if let Some(c) = q.customer_id.as_deref().filter(|c| !c.is_empty()) {
        filters.push(Filter::Eq("customer_id", c.to_string()));
    }
    let statuses: Vec<String> = match q.status.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(list) => {
            let mut out = Vec::new();
            for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let s = if s == "cancelled" { "canceled" } else { s };
                if SubStatus::parse(s).is_none() {
                    return Err(ApiError::field("status", format!("\"{s}\" is not a valid choice.")));
                }
                out.push(s.to_string());
            }
            out
        }
        None => SubStatus::ALL
            .iter()
            .filter(|s| s.grants() || **s == SubStatus::Incomplete)
            .map(|s| s.as_str().to_string())
            .collect(),
    };
    filters.push(Filter::In("status", statuses));
    for (value, column, after) in [
        (&q.start_date_after, "started_at", true),
        (&q.start_date_before, "started_at", false),
        (&q.modified_on_after, "modified_at", true),
        (&q.modified_on_before, "modified_at", false),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let field = match (column, after) {
                ("started_at", true) => "start_date_after",
                ("started_at", false) => "start_date_before",
                (_, true) => "modified_on_after",
                _ => "modified_on_before",
            };
            let t = input::instant(v).ok_or_else(|| ApiError::field(field, "Enter a valid date or datetime."))?;
            filters.push(if after { Filter::AtLeast(column, t) } else { Filter::Before(column, t) });
        }
    }
    let (paging, total, subs) =
        input::page_of::<Subscription>(&state, &tenant, DocTable::Subscriptions, &filters, &parts).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now).with_base(&base);
    let mut results = Vec::new();
    for s in &subs {
        results.push(r.subscription(s).await?);
    }
    Ok(Json(paging.page(total, results)))
}

async fn find_subscription(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<Subscription> {
    state.store.find_doc(DocTable::Subscriptions, tenant, id).await?.ok_or_else(|| selling::sub_not_found().into())
}

/// Retrieve a subscription.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/", tag = "subscriptions", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, description = "The subscription", body = SubscriptionOut), (status = 401), (status = 404)))]
pub async fn retrieve_subscription(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionOut>> {
    let s = find_subscription(&state, &tenant, &id).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).with_base(&base).subscription(&s).await?))
}

/// Body of `POST /subscriptions/create/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSubscriptionIn {
    pub plan_identifier: Option<String>,
    pub charge_period: Option<String>,
    pub customer_id: Option<String>,
    pub success_url: Option<String>,
    pub features: Option<Vec<FeatureQuantityIn>>,
    pub ip_address: Option<String>,
}

/// Start a subscription for a customer with a saved payment method.
#[utoipa::path(post, path = "/api/v1/subscriptions/create/", tag = "subscriptions", request_body = CreateSubscriptionIn,
    security(("bearer" = [])),
    responses((status = 201, description = "The subscription", body = SubscriptionOut), (status = 400, description = "`{\"detail\": \"Customer does not exist.\"}`, no payment method, declined"), (status = 401)))]
pub async fn create_subscription(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<CreateSubscriptionIn>,
) -> ApiResult<(StatusCode, Json<SubscriptionOut>)> {
    let mut errors = FieldErrors::new();
    let plan_identifier = required(&input.plan_identifier, "plan_identifier", &mut errors).map(str::to_string);
    let period = input::period(input.charge_period.as_deref(), &mut errors);
    let customer_id = required(&input.customer_id, "customer_id", &mut errors).map(str::to_string);
    let features = input::quantities(input.features, &mut errors);
    errors.into_result()?;
    let (plan_identifier, period, customer_id) =
        (plan_identifier.expect("checked"), period.expect("checked"), customer_id.expect("checked"));
    let plan = selling::published_plan(&state, &tenant, &plan_identifier).await?;
    let identifiers = selling::feature_identifiers(&state, &tenant).await?;
    let quote = selling::quote_plan(&plan, period, None, &features, &identifiers)?;
    let trial_days = quote.trial_days;
    let purchase = Purchase {
        plan,
        period,
        quote,
        features,
        trial_days,
        checkout_session: None,
        discount: None,
        first_payment: Default::default(),
    };
    let sub = selling::buy_with_saved_method(&state, &tenant, &customer_id, purchase).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok((StatusCode::CREATED, Json(Renderer::new(&state, &tenant, now).with_base(&base).subscription(&sub).await?)))
}

/// Body of `POST /subscriptions/{id}/update/` and its preview.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateSubscriptionIn {
    pub plan_identifier: Option<String>,
    pub charge_period: Option<String>,
    pub features: Option<Vec<FeatureQuantityIn>>,
    /// IMMEDIATE_CHARGE, PRORATE_NEXT_INVOICE or NO_PRORATION; omitted: upgrades now, downgrades at period end.
    pub proration_behavior: Option<String>,
    /// Deprecated spelling (old SDKs): IMMEDIATE_CHARGE, NEXT_BILLING_CYCLE, PRO_RATA.
    pub probation_behaviour: Option<String>,
    /// `"now"` or a future datetime.
    pub trial_end: Option<String>,
    /// `activate_on_payment`.
    pub payment_behavior: Option<String>,
    pub ip_address: Option<String>,
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
}

async fn parse_change(
    state: &AppState,
    tenant: &Tenant,
    s: &Subscription,
    input: UpdateSubscriptionIn,
) -> ApiResult<ChangeRequest> {
    let mut errors = FieldErrors::new();
    let plan_identifier = required(&input.plan_identifier, "plan_identifier", &mut errors).map(str::to_string);
    let period = input::period(input.charge_period.as_deref(), &mut errors);
    let features = match input.features {
        Some(f) => input::quantities(Some(f), &mut errors),
        None => s.features.clone(),
    };
    let proration = match (input.proration_behavior.as_deref(), input.probation_behaviour.as_deref()) {
        (Some(p), _) if !p.is_empty() => {
            match Proration::parse(p).filter(|_| !["PRO_RATA", "NEXT_BILLING_CYCLE"].contains(&p)) {
                Some(p) => Some(p),
                None => {
                    errors.add("proration_behavior", format!("\"{p}\" is not a valid choice."));
                    None
                }
            }
        }
        (_, Some(p)) if !p.is_empty() => match Proration::parse(p) {
            Some(p) => Some(p),
            None => {
                errors.add("probation_behaviour", format!("\"{p}\" is not a valid choice."));
                None
            }
        },
        _ => None,
    };
    let now = tenant_now(state, tenant).await?;
    let trial_end = match input.trial_end.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some("now") => Some(None),
        Some(t) => match input::instant(t) {
            Some(at) if at > now => Some(Some(at)),
            Some(_) => {
                errors.add("trial_end", "trialEnd must be in the future.");
                None
            }
            None => {
                errors.add(
                    "trial_end",
                    "trialEnd must be 'now' or an ISO 8601 datetime string like '2025-12-31 23:59:59'.",
                );
                None
            }
        },
    };
    let activate_on_payment = match input.payment_behavior.as_deref().filter(|p| !p.is_empty()) {
        None => false,
        Some("activate_on_payment") => true,
        Some(other) => {
            errors.add("payment_behavior", format!("\"{other}\" is not a valid choice."));
            false
        }
    };
    errors.into_result()?;
    let (plan_identifier, period) = (plan_identifier.expect("checked"), period.expect("checked"));
    if period == ChargePeriod::OneTime {
        return Err(ApiError::field(
            "charge_period",
            "A subscription cannot change to ONE_TIME; sell it with a charge.",
        ));
    }
    let req = selling::plan_change_request(state, tenant, s, &plan_identifier, period, features).await?;
    Ok(ChangeRequest { proration, trial_end, activate_on_payment, ..req })
}

/// Change a subscription's plan, charge period, quantities or trial.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/update/", tag = "subscriptions", request_body = UpdateSubscriptionIn,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "`{subscriptionId}`", body = SubscriptionChangedOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_subscription(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<UpdateSubscriptionIn>,
) -> ApiResult<Json<SubscriptionChangedOut>> {
    let s = find_subscription(&state, &tenant, &id).await?;
    selling::check_changeable(&s)?;
    let req = parse_change(&state, &tenant, &s, input).await?;
    let id = selling::change_subscription(&state, &tenant, &id, req).await?;
    Ok(Json(SubscriptionChangedOut { subscription_id: id.to_string() }))
}

/// What an update would charge, without changing anything.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/update/preview/", tag = "subscriptions", request_body = UpdateSubscriptionIn,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "Amounts now and on the next invoice", body = UpdatePreviewOut), (status = 400), (status = 401), (status = 404)))]
pub async fn preview_update(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<UpdateSubscriptionIn>,
) -> ApiResult<Json<UpdatePreviewOut>> {
    let s = find_subscription(&state, &tenant, &id).await?;
    selling::check_changeable(&s)?;
    let req = parse_change(&state, &tenant, &s, input).await?;
    let now = tenant_now(&state, &tenant).await?;
    let end_trial_now = matches!(req.trial_end, Some(None));
    let preview = preview_change(&s, &req.quote, req.period, req.proration, end_trial_now, now);
    let n = |m: i64| amount_number(m, &s.currency);
    Ok(Json(UpdatePreviewOut {
        currency: s.currency.to_ascii_lowercase(),
        recurring_amount: n(preview.recurring_minor),
        recurring_amount_units: preview.recurring_minor,
        amount_charged_immediately: n(preview.charge_now_minor),
        amount_charged_immediately_units: preview.charge_now_minor,
        next_invoice: NextInvoiceOut {
            amount_due: n(preview.next_invoice_minor),
            amount_due_units: preview.next_invoice_minor,
            next_payment_attempt: preview.next_at.map(iso_seconds),
            line_items: preview
                .lines
                .iter()
                .map(|l| PreviewLineOut {
                    description: l.description.clone(),
                    amount: n(l.amount_minor),
                    amount_units: l.amount_minor,
                })
                .collect(),
        },
    }))
}

/// Body of `POST /subscriptions/{id}/cancel/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelIn {
    /// IMMEDIATE, CURRENT_PERIOD_ENDS or SPECIFIC_DATE.
    pub cancellation_type: Option<String>,
    /// YYYY-MM-DD; required for SPECIFIC_DATE.
    pub cancellation_date: Option<String>,
    pub cancellation_feedback: Option<String>,
    pub cancellation_comment: Option<String>,
}

pub const FEEDBACK: &[&str] = &[
    "TOO_EXPENSIVE",
    "MISSING_FEATURES",
    "SWITCHED_SERVICE",
    "UNUSED",
    "CUSTOMER_SERVICE",
    "LOW_QUALITY",
    "TOO_COMPLEX",
    "OTHER",
];

/// Cancel now, at the end of the period, or on a date.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel/", tag = "subscriptions", request_body = CancelIn,
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "`{message}`", body = MessageOut), (status = 400), (status = 401), (status = 404)))]
pub async fn cancel_subscription(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Body(input): Body<CancelIn>,
) -> ApiResult<Json<MessageOut>> {
    let mut errors = FieldErrors::new();
    let kind = required(&input.cancellation_type, "cancellation_type", &mut errors).map(str::to_string);
    if let Some(k) = &kind {
        if !["IMMEDIATE", "CURRENT_PERIOD_ENDS", "SPECIFIC_DATE"].contains(&k.as_str()) {
            errors.add("cancellation_type", format!("\"{k}\" is not a valid choice."));
        }
    }
    let date = match input.cancellation_date.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => match kelviq_core::timefmt::parse_date(d) {
            Some(d) => Some(d),
            None => {
                errors.add("cancellation_date", "Date has wrong format. Use YYYY-MM-DD.");
                None
            }
        },
        None => None,
    };
    if let Some(f) = input.cancellation_feedback.as_deref().filter(|f| !f.is_empty() && !FEEDBACK.contains(f)) {
        errors.add("cancellation_feedback", format!("\"{f}\" is not a valid choice."));
    }
    errors.into_result()?;
    find_subscription(&state, &tenant, &id).await?;
    let c = Cancellation {
        kind: kind.expect("checked"),
        date,
        feedback: input.cancellation_feedback.filter(|f| !f.is_empty()),
        comment: input.cancellation_comment,
        by: "CANCELLED_BY_MERCHANT",
    };
    selling::cancel_subscription(&state, &tenant, &id, c).await?;
    Ok(Json(MessageOut { message: "Subscription cancellation processed successfully.".into() }))
}
