//! The portal's account actions: a plan's files, payment methods (add a
//! card through the provider, make one the default, remove another) and
//! the billing address. Each goes through the service the API uses.

use super::{acting, back, signed_in, ActionForm};
use crate::http::error::ApiError;
use crate::http::extract::BaseUrl;
use crate::portal::{account, pages, Viewer};
use crate::providers::stripe::methods as stripe_methods;
use crate::routes::hosted::html;
use crate::selling::methods;
use crate::selling::payments::CardInput;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use kelviq_core::customer::CustomerChanges;

type Pairs = Vec<(String, String)>;

fn value<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str())
}

/// A refusal the customer can act on, as a page with a way back.
fn refused(v: &Viewer, message: &str) -> Response {
    let body = format!(
        "<h1>That did not work</h1><div class=\"error\" role=\"alert\">{}</div><p><a href=\"/portal/{}/\">Back to your account</a></p>",
        crate::routes::hosted::esc(message),
        crate::routes::hosted::esc(&v.slug)
    );
    html(StatusCode::BAD_REQUEST, v.page("Not saved", &body))
}

fn outcome(v: &Viewer, done: &str, result: crate::error::ServiceResult<()>) -> Response {
    match result {
        Ok(()) => back(v, done),
        Err(e) => match crate::portal::changes::message(&e) {
            Some(m) => refused(v, &m),
            None => ApiError::from(e).into_response(),
        },
    }
}

/// A downloadable file of a plan the customer has now.
pub async fn file(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let v = match signed_in(&state, &slug, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let file = match pages::plan_file(&state, &v, &id).await {
        Ok(Some(f)) => f,
        Ok(None) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    crate::routes::media::serve_file(&state, &file, crate::routes::media::Disposition::Attachment)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `MM/YY` or `MM/YYYY`.
fn expiry(s: &str) -> (Option<u32>, Option<i32>) {
    match s.trim().split_once('/') {
        Some((m, y)) => (m.trim().parse().ok(), y.trim().parse().ok().map(|y: i32| if y < 100 { 2000 + y } else { y })),
        None => (None, None),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct StripeReturn {
    #[serde(default)]
    session_id: String,
}

/// Back from adding a card on Stripe's page: the card is saved (or was,
/// by Stripe's webhook) and the customer sees their account.
pub async fn stripe_card_added(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<StripeReturn>,
    headers: HeaderMap,
) -> Response {
    let v = match signed_in(&state, &slug, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let stripe = match crate::providers::stripe_client(&state, &v.tenant).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if q.session_id.is_empty() || q.session_id.len() > 255 {
        return ApiError::not_found().into_response();
    }
    let saved = stripe_methods::complete(&state, &v.tenant, &stripe, Some(&v.customer_id), &q.session_id).await;
    outcome(&v, "card-added", saved.map(|_| ()))
}

/// Saves a card through the environment's payment provider.
pub async fn add_card(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
    Form(pairs): Form<Pairs>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &ActionForm::of(&pairs)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let make_default = value(&pairs, "make_default").is_some();
    match crate::providers::stripe_client(&state, &v.tenant).await {
        Ok(Some(stripe)) => {
            // The card is typed on Stripe's page, and saved when the customer comes back.
            let portal = format!("{base}/portal/{}", v.slug);
            let back = format!("{portal}/payment-methods/stripe-return?session_id={{CHECKOUT_SESSION_ID}}");
            let to = stripe_methods::hand_off(&state, &v.tenant, &stripe, &v.customer_id, make_default, &back, &portal);
            return match to.await {
                Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
                Err(e) => outcome(&v, "card-added", Err(e)),
            };
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let number: String =
        value(&pairs, "card_number").unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
    if number.is_empty() || number.len() > 19 || !number.chars().all(|c| c.is_ascii_digit()) {
        return refused(&v, "Enter the card number (digits only).");
    }
    let (exp_month, exp_year) = expiry(value(&pairs, "expiry").unwrap_or_default());
    let card = CardInput { number, exp_month, exp_year };
    let added = methods::add_card(&state, &v.tenant, &v.customer_id, &card, make_default).await.map(|_| ());
    outcome(&v, "card-added", added)
}

fn method_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|i| *i > 0)
}

/// What a payment method form asks.
#[derive(Clone, Copy)]
enum MethodOp {
    MakeDefault,
    Remove,
}

async fn on_method(
    state: AppState,
    slug: &str,
    id: &str,
    headers: &HeaderMap,
    pairs: &Pairs,
    op: MethodOp,
) -> Response {
    let v = match acting(&state, slug, headers, &ActionForm::of(pairs)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = method_id(id) else { return ApiError::not_found().into_response() };
    let mine = Some(v.customer_id.as_str());
    match op {
        MethodOp::MakeDefault => outcome(&v, "default", methods::make_default(&state, &v.tenant, id, mine).await),
        MethodOp::Remove => outcome(&v, "removed", methods::detach(&state, &v.tenant, id, mine).await),
    }
}

pub async fn make_default(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(pairs): Form<Pairs>,
) -> Response {
    on_method(state, &slug, &id, &headers, &pairs, MethodOp::MakeDefault).await
}

pub async fn remove_method(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(pairs): Form<Pairs>,
) -> Response {
    on_method(state, &slug, &id, &headers, &pairs, MethodOp::Remove).await
}

/// Saves the billing address through the customer service (`customer.updated`).
pub async fn save_address(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(pairs): Form<Pairs>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &ActionForm::of(&pairs)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let current = match state.store.find_customer(&v.tenant, &v.customer_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let typed = account::typed_address(&pairs, current.billing_address.as_ref());
    let changes = match CustomerChanges::parse(None, None, None, Some(Some(typed))) {
        Ok(c) => c,
        Err(e) => return refused(&v, &e.fields().values().flatten().cloned().collect::<Vec<_>>().join(" ")),
    };
    let saved = state.store.update_customer(&v.tenant, &v.customer_id, &changes, state.clock.now()).await;
    outcome(&v, "address", saved.map(|_| ()).map_err(Into::into))
}
