//! The hosted checkout's side of Stripe's payment page: handing the payer
//! over, and their return.

use super::{html, not_found};
use crate::error::ServiceError;
use crate::http::error::ApiError;
use crate::providers::stripe::checkout as stripe_checkout;
use crate::selling::{CheckoutError, CheckoutForm};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kelviq_core::billing::CheckoutSession;
use kelviq_core::Tenant;
use serde::Deserialize;

/// Sends the payer of `cs` to Stripe's page; the URL to go to.
pub(super) async fn hand_off(
    state: &AppState,
    tenant: &Tenant,
    cs: &CheckoutSession,
    form: CheckoutForm,
    base: &str,
) -> Result<String, CheckoutError> {
    let Some(stripe) = crate::providers::stripe_client(state, tenant).await? else {
        return Err(CheckoutError::Api(ServiceError::BadRequest("Stripe is no longer this seller's provider.".into())));
    };
    stripe_checkout::hand_off(state, tenant, &stripe, cs, form, base).await
}

#[derive(Debug, Deserialize)]
pub(super) struct Returned {
    #[serde(default)]
    session_id: String,
}

/// Where Stripe's page sends the payer back: the purchase completes (or
/// was completed by Stripe's webhook) and the payer goes on to the
/// seller's success URL; an unfinished payment goes back to the checkout.
pub(super) async fn returned(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Returned>,
) -> Response {
    let (tenant, cs) = match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let stripe_session = match &cs.handed_off {
        Some(_) if !q.session_id.is_empty() && q.session_id.len() <= 255 => q.session_id.clone(),
        Some(h) => h.session.clone(),
        None => return (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/checkout/{id}"))]).into_response(),
    };
    let stripe = match crate::providers::stripe_client(&state, &tenant).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match stripe_checkout::complete(&state, &tenant, &stripe, &id, &stripe_session).await {
        Ok(done) => (StatusCode::SEE_OTHER, [(header::LOCATION, done.success_url)]).into_response(),
        Err(CheckoutError::Payer(_, message)) => {
            let page = super::shell(
                "Payment not completed",
                &format!(
                    "<h1>Payment not completed</h1><p role=\"alert\">{}</p><p><a class=\"button\" href=\"/checkout/{}\">Back to checkout</a></p>",
                    super::esc(&message),
                    super::esc(&id)
                ),
            );
            html(StatusCode::BAD_REQUEST, page)
        }
        Err(CheckoutError::Api(e)) => ApiError::from(e).into_response(),
    }
}
