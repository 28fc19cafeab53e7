//! Customers (spec §1.1): create, list, retrieve, partial update, archive.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Page;
use crate::http::extract::{Body, Paging, ServerCaller, DEFAULT_PAGE_SIZE};
use crate::state::AppState;
use crate::wire::double_option;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kelviq_core::customer::{BillingAddress, Customer, CustomerChanges, NewCustomer};
use kelviq_core::timefmt::iso_micros;
use kelviq_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_customers).post(create_customer))
        .route("/customers/{customer_id}", get(retrieve_customer).patch(update_customer).delete(archive_customer))
}

/// A postal address. Accepted in camelCase or snake_case.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingAddressWire {
    /// ISO 3166-1 alpha-2 country code, e.g. `US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    pub line2: Option<String>,
    #[serde(default, alias = "postal_code", skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The buyer's tax id (a VAT number such as `DE123456789`), checked
    /// against the format of the address's country.
    #[serde(default, alias = "tax_id", skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
}

impl From<BillingAddressWire> for BillingAddress {
    fn from(a: BillingAddressWire) -> Self {
        BillingAddress {
            country: a.country,
            line1: a.line1,
            line2: a.line2,
            postal_code: a.postal_code,
            city: a.city,
            state: a.state,
            tax_id: a.tax_id,
        }
    }
}

impl From<BillingAddress> for BillingAddressWire {
    fn from(a: BillingAddress) -> Self {
        BillingAddressWire {
            country: a.country,
            line1: a.line1,
            line2: a.line2,
            postal_code: a.postal_code,
            city: a.city,
            state: a.state,
            tax_id: a.tax_id,
        }
    }
}

/// Body of `POST /customers/`. Keys may be camelCase (`customerId`) or snake_case (`customer_id`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomerIn {
    /// Your own unique id for the customer. Cannot be reused, even after archiving.
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Free-form JSON object, stored and returned verbatim.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub billing_address: Option<BillingAddressWire>,
}

/// Body of `PATCH /customers/{customerId}/`: only the fields given change; `metadata` replaces.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CustomerPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<BillingAddressWire>)]
    pub billing_address: Option<Option<BillingAddressWire>>,
}

/// A customer as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerOut {
    /// Server id (UUID).
    pub id: String,
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub billing_address: Option<BillingAddressWire>,
    /// ISO 8601 UTC with microseconds, e.g. `2025-06-04T06:03:30.195790Z`.
    pub created_on: String,
    pub modified_on: String,
}

impl From<Customer> for CustomerOut {
    fn from(c: Customer) -> Self {
        CustomerOut {
            id: c.id.to_string(),
            customer_id: c.customer_id,
            name: c.name,
            email: c.email,
            details: c.details,
            metadata: c.metadata,
            billing_address: c.billing_address.map(Into::into),
            created_on: iso_micros(c.created_at),
            modified_on: iso_micros(c.modified_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerListQuery {
    /// Case-insensitive substring of name, email or customerId.
    pub search: Option<String>,
    /// 1-based page number.
    pub page: Option<String>,
    /// Results per page (default 10, at most 100).
    pub page_size: Option<String>,
}

/// List live customers, newest first.
#[utoipa::path(get, path = "/api/v1/customers/", tag = "customers", params(CustomerListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<CustomerOut>), (status = 401), (status = 404, description = "Invalid page")))]
pub async fn list_customers(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Query(query): Query<CustomerListQuery>,
    parts: Parts,
) -> ApiResult<Json<Page<CustomerOut>>> {
    let mut paging = Paging::from_parts(&parts, DEFAULT_PAGE_SIZE)?;
    let search = query.search.as_deref();
    // Count first so that `page=last` and out-of-range pages resolve as DRF does.
    let total = state.store.count_customers(&tenant, search).await? as u64;
    let (limit, offset) = paging.window(total)?;
    let customers = state.store.list_customers(&tenant, search, limit, offset).await?;
    let results: Vec<CustomerOut> = customers.into_iter().map(Into::into).collect();
    Ok(Json(paging.page(total, results)))
}

/// Create a customer.
#[utoipa::path(post, path = "/api/v1/customers/", tag = "customers", request_body = CustomerIn,
    security(("bearer" = [])),
    responses((status = 201, body = CustomerOut), (status = 400, description = "Field errors, e.g. `{\"email\": [\"Enter a valid email address.\"]}`"), (status = 401)))]
pub async fn create_customer(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<CustomerIn>,
) -> ApiResult<(StatusCode, Json<CustomerOut>)> {
    let new = NewCustomer::parse(
        input.customer_id,
        input.name,
        input.email,
        input.metadata,
        input.billing_address.map(Into::into),
    )?;
    let customer = state.store.insert_customer(&tenant, &new, state.clock.now()).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::field("customer_id", "customer with this customerId already exists."),
        other => other.into(),
    })?;
    crate::http::reqlog::in_span(|| tracing::info!(customer = %customer.id, "customer created"));
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// Retrieve a customer by your customer id.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/", tag = "customers",
    params(("customer_id" = String, Path, description = "Your customer id")),
    security(("bearer" = [])),
    responses((status = 200, body = CustomerOut), (status = 401), (status = 404)))]
pub async fn retrieve_customer(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(customer_id): Path<String>,
) -> ApiResult<Json<CustomerOut>> {
    let customer = state.store.find_customer(&tenant, &customer_id).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(customer.into()))
}

/// Update some of a customer's fields.
#[utoipa::path(patch, path = "/api/v1/customers/{customer_id}/", tag = "customers", request_body = CustomerPatch,
    params(("customer_id" = String, Path, description = "Your customer id")),
    security(("bearer" = [])),
    responses((status = 200, body = CustomerOut), (status = 400), (status = 401), (status = 404)))]
pub async fn update_customer(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(customer_id): Path<String>,
    Body(patch): Body<CustomerPatch>,
) -> ApiResult<Json<CustomerOut>> {
    let changes = CustomerChanges::parse(
        patch.name,
        patch.email,
        patch.metadata,
        patch.billing_address.map(|a| a.map(Into::into)),
    )?;
    let customer = state.store.update_customer(&tenant, &customer_id, &changes, state.clock.now()).await?;
    Ok(Json(customer.into()))
}

/// Archive a customer. Its customer id stays taken.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/", tag = "customers",
    params(("customer_id" = String, Path, description = "Your customer id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Archived"), (status = 400, description = "The customer has an active subscription"), (status = 401), (status = 404)))]
pub async fn archive_customer(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Path(customer_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.find_customer(&tenant, &customer_id).await?.ok_or_else(ApiError::not_found)?;
    if !crate::selling::live_subscriptions(&state, &tenant, &customer_id).await?.is_empty() {
        return Err(ApiError::BadRequest(
            "This customer has an active subscription; cancel it before archiving the customer.".into(),
        ));
    }
    state.store.archive_customer(&tenant, &customer_id, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
