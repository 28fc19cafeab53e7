//! Invoices (server key): `GET /invoices/`, `GET /invoices/{id}/`,
//! `POST /invoices/{id}/void/`, `POST /invoices/{id}/pay/`,
//! `GET /invoices/{id}/document/?format=html|pdf`,
//! `GET /subscriptions/{id}/upcoming-invoice/`.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Page, ServerCaller};
use crate::http::input::{date_filters, page_of, status_filter};
use crate::invoices;
use crate::state::AppState;
use crate::wire::invoices::InvoiceOut;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kelviq_core::billing::{Invoice, InvoiceStatus};
use kelviq_store::{DocTable, Filter};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invoices", get(list_invoices))
        .route("/invoices/{id}", get(retrieve_invoice))
        .route("/invoices/{id}/void", post(void_invoice))
        .route("/invoices/{id}/pay", post(pay_invoice))
        .route("/invoices/{id}/document", get(invoice_document))
        .route("/subscriptions/{id}/upcoming-invoice", get(upcoming_invoice))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// DRAFT, OPEN, PAID, PAYMENT_FAILED, VOID or UNCOLLECTIBLE.
    pub status: Option<String>,
    /// Issued on or after this date (YYYY-MM-DD).
    pub start_date: Option<String>,
    /// Issued before the end of this date (YYYY-MM-DD).
    pub end_date: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

/// List invoices, newest first.
#[utoipa::path(get, path = "/api/v1/invoices/", tag = "invoices", params(InvoiceQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of invoices", body = Page<InvoiceOut>), (status = 400), (status = 401)))]
pub async fn list_invoices(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(q): Query<InvoiceQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<InvoiceOut>>> {
    let mut filters = Vec::new();
    for (column, value) in [("customer_id", &q.customer_id), ("subscription_id", &q.subscription_id)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            if v.chars().any(char::is_control) || v.len() > 255 {
                return Err(ApiError::field(column, "Enter a valid id."));
            }
            filters.push(Filter::Eq(column, v.to_string()));
        }
    }
    status_filter(q.status.as_deref(), &InvoiceStatus::names(), &mut filters)?;
    date_filters("created_at", q.start_date.as_deref(), q.end_date.as_deref(), &mut filters)?;
    let (paging, total, items) = page_of::<Invoice>(&state, &tenant, DocTable::Invoices, &filters, &parts).await?;
    Ok(Json(paging.page(total, items.iter().map(InvoiceOut::from).collect())))
}

/// Retrieve an invoice with its lines.
#[utoipa::path(get, path = "/api/v1/invoices/{id}/", tag = "invoices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The invoice", body = InvoiceOut), (status = 401), (status = 404)))]
pub async fn retrieve_invoice(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceOut>> {
    Ok(Json(InvoiceOut::from(&invoices::get(&state, &tenant, &id).await?)))
}

/// Void an unpaid invoice: nothing is owed on it; a subscription past due on it is active again.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/void/", tag = "invoices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The voided invoice", body = InvoiceOut), (status = 400), (status = 401), (status = 404)))]
pub async fn void_invoice(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceOut>> {
    Ok(Json(InvoiceOut::from(&invoices::void(&state, &tenant, &id).await?)))
}

/// Try now to collect an invoice whose payment failed, with the customer's billing method.
#[utoipa::path(post, path = "/api/v1/invoices/{id}/pay/", tag = "invoices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The paid invoice", body = InvoiceOut), (status = 400, description = "Not payable, or declined"), (status = 401), (status = 404)))]
pub async fn pay_invoice(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceOut>> {
    Ok(Json(InvoiceOut::from(&invoices::pay(&state, &tenant, &id).await?)))
}

/// What the subscription's next invoice would be if its period ended now
/// (the next period's charges and this period's usage so far); a DRAFT
/// without id or number.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/upcoming-invoice/", tag = "invoices", params(("id" = String, Path)),
    security(("bearer" = [])), responses((status = 200, description = "The upcoming invoice", body = InvoiceOut),
    (status = 401), (status = 404, description = "No such subscription, or nothing more to invoice")))]
pub async fn upcoming_invoice(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceOut>> {
    Ok(Json(InvoiceOut::from(&invoices::upcoming(&state, &tenant, &id).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// `html` (the default) or `pdf`.
    pub format: Option<String>,
}

/// The invoice as a document: a page of HTML (no scripts, no external
/// assets) or a PDF, with the seller, the customer, the lines and totals.
#[utoipa::path(get, path = "/api/v1/invoices/{id}/document/", tag = "invoices", params(("id" = String, Path), DocumentQuery),
    security(("bearer" = [])), responses(
        (status = 200, description = "The document", content(("text/html"), ("application/pdf"))),
        (status = 400), (status = 401), (status = 404)))]
pub async fn invoice_document(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(id): Path<String>,
    Query(q): Query<DocumentQuery>,
) -> ApiResult<Response> {
    let pdf = match q.format.as_deref().unwrap_or("html") {
        "html" | "" => false,
        "pdf" => true,
        other => return Err(ApiError::field("format", format!("\"{other}\" is not a valid choice: html or pdf."))),
    };
    let (invoice, doc) = invoices::document(&state, &tenant, &id).await?;
    if !pdf {
        return Ok(crate::routes::hosted::html(StatusCode::OK, doc.html()));
    }
    let name = format!("inline; filename=\"{}.pdf\"", invoice.number);
    let headers = [
        (header::CONTENT_TYPE, "application/pdf".to_string()),
        (header::CONTENT_DISPOSITION, name),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    Ok((StatusCode::OK, headers, doc.pdf()).into_response())
}
