//! One-time charges of a customer's saved payment method (spec §1.5).

use crate::clock::tenant_now;
use crate::http::error::ApiResult;
use crate::http::extract::{Body, ServerCaller};
use crate::http::input::{self, required, FeatureQuantityIn};
use crate::selling::{self, NewCharge};
use crate::state::AppState;
use crate::wire::selling::*;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use kelviq_core::plans::ChargePeriod;
use kelviq_core::FieldErrors;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/charges", post(create_charge))
}

/// Body of `POST /charges/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChargeIn {
    pub plan_identifier: Option<String>,
    /// Must be ONE_TIME.
    pub charge_period: Option<String>,
    pub customer_id: Option<String>,
    pub features: Option<Vec<FeatureQuantityIn>>,
    pub currency_code: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub custom_amount: Option<Value>,
    pub tax_behavior: Option<String>,
    pub ip_address: Option<String>,
}

/// Charge a customer's saved payment method once for a one-time plan.
#[utoipa::path(post, path = "/api/v1/charges/", tag = "subscriptions", request_body = ChargeIn, security(("bearer" = [])),
    responses((status = 201, description = "The charge record", body = SubscriptionOut), (status = 400, description = "`{\"detail\": \"A payment method is required to complete this payment.\"}`"), (status = 401)))]
pub async fn create_charge(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<ChargeIn>,
) -> ApiResult<(StatusCode, Json<SubscriptionOut>)> {
    let mut errors = FieldErrors::new();
    let plan_identifier = required(&input.plan_identifier, "plan_identifier", &mut errors).map(str::to_string);
    let period = input::period(input.charge_period.as_deref(), &mut errors);
    if period.is_some_and(|p| p != ChargePeriod::OneTime) {
        errors.add("charge_period", "A charge is ONE_TIME.");
    }
    let customer_id = required(&input.customer_id, "customer_id", &mut errors).map(str::to_string);
    let features = input::quantities(input.features, &mut errors);
    let currency = input::currency(input.currency_code.as_deref(), "currency_code", &mut errors);
    if input.tax_behavior.as_deref().is_some_and(|t| t != "INCLUSIVE" && t != "EXCLUSIVE") {
        errors.add("tax_behavior", "Must be INCLUSIVE or EXCLUSIVE.");
    }
    let mut custom = None;
    if let Some(a) = input.custom_amount.as_ref().filter(|a| !a.is_null()) {
        match &currency {
            None => errors.add("currency_code", "This field is required with customAmount."),
            Some(c) => match input::positive_amount(a, c, "customAmount") {
                Ok(m) => custom = Some(m),
                Err(m) => errors.add("custom_amount", m),
            },
        }
    }
    errors.into_result()?;
    let (plan_identifier, customer_id) = (plan_identifier.expect("checked"), customer_id.expect("checked"));
    let charge = NewCharge {
        plan_identifier,
        customer_id,
        features,
        currency,
        custom_minor: custom,
        tax_behavior: input.tax_behavior,
    };
    let sub = selling::charge_once(&state, &tenant, charge).await?;
    let now = tenant_now(&state, &tenant).await?;
    Ok((StatusCode::CREATED, Json(Renderer::new(&state, &tenant, now).charge(&sub).await?)))
}
