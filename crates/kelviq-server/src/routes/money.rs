//! Money records (spec §1.6): orders with their invoices, transactions,
//! refunds and payment methods.

use crate::clock::tenant_now;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{Body, Paging, ServerCaller, DEFAULT_PAGE_SIZE};
use crate::http::input::{self, date_filters, page_of, required, search_filter, status_filter, SearchScope};
use crate::selling;
use crate::state::AppState;
use crate::wire::selling::*;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use kelviq_core::billing::{Order, OrderStatus, PaymentMethod, Refund, RefundStatus, Transaction, TransactionStatus};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{DocTable, Filter};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(retrieve_order))
        .route("/orders/{id}/events", get(order_events))
        .route("/transaction", get(list_transactions))
        .route("/refunds", get(list_refunds).post(create_refund))
        .route("/refunds/{id}", get(retrieve_refund))
        .route("/payment-methods", get(list_payment_methods))
        .route("/payment-methods/{id}", axum::routing::delete(delete_payment_method))
        .route("/payment-methods/{id}/default", axum::routing::post(default_payment_method))
}

fn method_id(id: &str) -> ApiResult<i64> {
    id.trim().parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(ApiError::not_found)
}

/// Make a payment method its customer's default (the one renewals charge).
#[utoipa::path(post, path = "/api/v1/payment-methods/{id}/default/", tag = "money", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204, description = "It is the default"), (status = 401), (status = 404)))]
pub async fn default_payment_method(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    crate::selling::methods::make_default(&state, &tenant, method_id(&id)?, None).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Remove a payment method that is not its customer's default.
#[utoipa::path(delete, path = "/api/v1/payment-methods/{id}/", tag = "money", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 400, description = "It is the default"), (status = 401), (status = 404)))]
pub async fn delete_payment_method(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    crate::selling::methods::detach(&state, &tenant, method_id(&id)?, None).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MoneyListQuery {
    pub search: Option<String>,
    pub status: Option<String>,
    /// Orders only: ONE_TIME or SUBSCRIPTION.
    pub billing_type: Option<String>,
    /// Orders only.
    pub is_renewal: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List orders, newest paid first.
#[utoipa::path(get, path = "/api/v1/orders/", tag = "money", params(MoneyListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of orders", body = Page<OrderOut>), (status = 401)))]
pub async fn list_orders(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<MoneyListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<OrderOut>>> {
    let mut filters = Vec::new();
    search_filter(q.search.as_deref(), &mut filters, SearchScope::Document);
    status_filter(q.status.as_deref(), &OrderStatus::names(), &mut filters)?;
    if let Some(b) = q.billing_type.as_deref().filter(|b| !b.is_empty()) {
        if b != "ONE_TIME" && b != "SUBSCRIPTION" {
            return Err(ApiError::field("billing_type", format!("\"{b}\" is not a valid choice.")));
        }
        filters.push(Filter::Eq("billing_type", b.to_string()));
    }
    if let Some(r) = q.is_renewal.as_deref().filter(|r| !r.is_empty()) {
        let v = match r.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(ApiError::field("is_renewal", "Must be true or false.")),
        };
        filters.push(Filter::Bool("is_renewal", v));
    }
    date_filters("paid_at", q.start_date.as_deref(), q.end_date.as_deref(), &mut filters)?;
    let (paging, total, orders) = page_of::<Order>(&state, &tenant, DocTable::Orders, &filters, &parts).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    let mut results = Vec::new();
    for o in &orders {
        results.push(r.order(o).await?);
    }
    Ok(Json(paging.page(total, results)))
}

async fn find_order(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<Order> {
    state.store.find_doc(DocTable::Orders, tenant, id).await?.ok_or_else(ApiError::not_found)
}

/// Retrieve an order.
#[utoipa::path(get, path = "/api/v1/orders/{id}/", tag = "money", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The order", body = OrderOut), (status = 401), (status = 404)))]
pub async fn retrieve_order(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderOut>> {
    let o = find_order(&state, &tenant, &id).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).order(&o).await?))
}

/// The events of an order and of every order of the same subscription, newest first.
#[utoipa::path(get, path = "/api/v1/orders/{id}/events/", tag = "money", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "A page of order events", body = Page<LogEntryOut>), (status = 401), (status = 404)))]
pub async fn order_events(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    parts: Parts,
) -> ApiResult<Json<Page<LogEntryOut>>> {
    let o = find_order(&state, &tenant, &id).await?;
    let items = order_history(&state, &tenant, o).await?;
    let mut paging = Paging::from_parts(&parts, DEFAULT_PAGE_SIZE)?;
    let (page, total) = paging.slice(&items)?;
    Ok(Json(paging.page(total, page.to_vec())))
}

/// List transactions (charges and refunds with their fees), newest first.
#[utoipa::path(get, path = "/api/v1/transaction/", tag = "money", params(MoneyListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of transactions", body = Page<TransactionOut>), (status = 401)))]
pub async fn list_transactions(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<MoneyListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<TransactionOut>>> {
    let mut filters = Vec::new();
    search_filter(q.search.as_deref(), &mut filters, SearchScope::WithOrderCustomer);
    status_filter(q.status.as_deref(), &TransactionStatus::names(), &mut filters)?;
    date_filters("created_at", q.start_date.as_deref(), q.end_date.as_deref(), &mut filters)?;
    let (paging, total, items) =
        page_of::<Transaction>(&state, &tenant, DocTable::Transactions, &filters, &parts).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    let mut results = Vec::new();
    for t in &items {
        results.push(r.transaction(t).await?);
    }
    Ok(Json(paging.page(total, results)))
}

/// List refunds, newest first.
#[utoipa::path(get, path = "/api/v1/refunds/", tag = "money", params(MoneyListQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of refunds", body = Page<RefundOut>), (status = 401)))]
pub async fn list_refunds(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<MoneyListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<RefundOut>>> {
    let mut filters = Vec::new();
    search_filter(q.search.as_deref(), &mut filters, SearchScope::WithOrderCustomer);
    status_filter(q.status.as_deref(), &RefundStatus::names(), &mut filters)?;
    date_filters("created_at", q.start_date.as_deref(), q.end_date.as_deref(), &mut filters)?;
    let (paging, total, items) = page_of::<Refund>(&state, &tenant, DocTable::Refunds, &filters, &parts).await?;
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    let mut results = Vec::new();
    for x in &items {
        results.push(r.refund(x).await?);
    }
    Ok(Json(paging.page(total, results)))
}

/// Body of `POST /refunds/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefundIn {
    pub order_id: Option<String>,
    /// Minor units; wins over `amount`.
    pub amount_units: Option<i64>,
    /// Major units.
    #[schema(value_type = Option<f64>)]
    pub amount: Option<Value>,
    /// DUPLICATE, FRAUDULENT, REQUESTED_BY_CUSTOMER (default) or OTHER.
    pub reason: Option<String>,
    pub internal_note: Option<String>,
    /// Beyond Kelviq: give the amount back as credit on the subscription's
    /// next invoices instead of to the card (the subscription carries on).
    pub as_credit: Option<bool>,
}

/// Refund an order in full (no amount) or in part.
#[utoipa::path(post, path = "/api/v1/refunds/", tag = "money", request_body = RefundIn, security(("bearer" = [])),
    responses((status = 200, description = "The refund", body = RefundOut), (status = 400, description = "`{\"error\": \"Amount exceeds order total.\"}`"), (status = 401), (status = 404)))]
pub async fn create_refund(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<RefundIn>,
) -> ApiResult<Json<RefundOut>> {
    let mut errors = FieldErrors::new();
    let order_id = required(&input.order_id, "order_id", &mut errors).map(str::to_string);
    if input.amount_units.is_some_and(|a| a < 1) {
        errors.add("amount_units", "Ensure this value is greater than or equal to 1.");
    }
    if let Some(r) = input.reason.as_deref() {
        if !["DUPLICATE", "FRAUDULENT", "REQUESTED_BY_CUSTOMER", "OTHER"].contains(&r) {
            errors.add("reason", format!("\"{r}\" is not a valid choice."));
        }
    }
    errors.into_result()?;
    let order = find_order(&state, &tenant, order_id.as_deref().expect("checked")).await?;
    let amount = match (input.amount_units, input.amount.as_ref().filter(|a| !a.is_null())) {
        (Some(units), _) => Some(units),
        (None, Some(a)) => {
            Some(input::positive_amount(a, &order.currency, "amount").map_err(|m| ApiError::field("amount", m))?)
        }
        (None, None) => None,
    };
    let how =
        selling::RefundTo { reason: input.reason, note: input.internal_note, as_credit: input.as_credit == Some(true) };
    let refund = selling::refund_order(&state, &tenant, &order.id, amount, how).await?;
    crate::http::reqlog::in_span(
        || tracing::info!(order = %order.id, refund = %refund.id, amount = refund.amount_minor, "refund created"),
    );
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).refund(&refund).await?))
}

/// Retrieve a refund.
#[utoipa::path(get, path = "/api/v1/refunds/{id}/", tag = "money", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The refund", body = RefundOut), (status = 401), (status = 404)))]
pub async fn retrieve_refund(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<RefundOut>> {
    let refund: Refund =
        state.store.find_doc(DocTable::Refunds, &tenant, &id).await?.ok_or_else(ApiError::not_found)?;
    let now = tenant_now(&state, &tenant).await?;
    Ok(Json(Renderer::new(&state, &tenant, now).refund(&refund).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentMethodQuery {
    pub customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List saved payment methods, newest first.
#[utoipa::path(get, path = "/api/v1/payment-methods/", tag = "money", params(PaymentMethodQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of payment methods", body = Page<PaymentMethodOut>), (status = 401)))]
pub async fn list_payment_methods(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<PaymentMethodQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<PaymentMethodOut>>> {
    let customer = q.customer_id.as_deref().filter(|c| !c.is_empty());
    let mut methods = state.store.payment_methods::<PaymentMethod>(&tenant, customer).await?;
    methods.retain(|m| m.doc.status == "succeeded");
    let now = tenant_now(&state, &tenant).await?;
    let mut r = Renderer::new(&state, &tenant, now);
    if let Some(email) = q.customer_email.as_deref().filter(|e| !e.is_empty()) {
        let mut kept = Vec::new();
        for m in methods {
            let c = r.customer(&m.doc.customer_id).await?;
            if c.and_then(|c| c.email).is_some_and(|e| e.eq_ignore_ascii_case(email)) {
                kept.push(m);
            }
        }
        methods = kept;
    }
    let mut paging = Paging::from_parts(&parts, DEFAULT_PAGE_SIZE)?;
    let (page, total) = paging.slice(&methods)?;
    let mut results = Vec::new();
    for m in page {
        results.push(r.payment_method(m).await?);
    }
    Ok(Json(paging.page(total, results)))
}
