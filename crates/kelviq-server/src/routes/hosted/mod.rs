//! The hosted checkout page at `checkoutUrl`: server-rendered HTML with no
//! scripts and no external assets. Submitting it completes the session
//! exactly as the sandbox API helper does, then redirects to `successUrl`.

use crate::clock::tenant_now;
use crate::discounts::redeem::{self, NotTaken};
use crate::error::ServiceError;
use crate::http::error::ApiError;
use crate::http::extract::BaseUrl;
use crate::selling::payments::CardInput;
use crate::selling::{complete_checkout, CheckoutError, CheckoutForm};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use kelviq_core::billing::CheckoutSession;
use kelviq_core::billing::SessionStatus;
use kelviq_core::discounts::AppliedDiscount;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::tax::TaxBehavior;
use kelviq_core::Tenant;
use serde::Deserialize;

mod checkout_view;

use checkout_view::{render, Look};

mod invoice_pay;
mod stripe_pages;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout/{id}", get(page).post(submit))
        .route("/checkout/{id}/return", get(stripe_pages::returned))
        .route("/invoices/{id}/pay", get(invoice_pay::show).post(invoice_pay::pay))
}

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn per(period: ChargePeriod) -> &'static str {
    match period {
        ChargePeriod::OneTime => "",
        ChargePeriod::Daily => " per day",
        ChargePeriod::Weekly => " per week",
        ChargePeriod::TwentyEightDays => " every 28 days",
        ChargePeriod::Monthly => " per month",
        ChargePeriod::ThreeMonths => " every 3 months",
        ChargePeriod::SixMonths => " every 6 months",
        ChargePeriod::Yearly => " per year",
    }
}

pub(crate) use crate::storefront::look::shell;

/// The form's values as the payer typed them, to refill it after an error.
#[derive(Debug, Default, Deserialize)]
pub struct PayForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub tax_id: String,
    #[serde(default)]
    pub card_number: String,
    #[serde(default)]
    pub expiry: String,
    #[serde(default)]
    pub cvc: String,
    /// The code applied (carried by the payment form).
    #[serde(default)]
    pub discount_code: String,
}

/// The policy of every hosted page: nothing but its own inline styles and
/// same-origin images, never framed (clickjacking), no referrer leaked.
const PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(body),
    )
        .into_response()
}

fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        shell("Not found", "<h1>Checkout not found</h1><p>This checkout link is not valid.</p>"),
    )
}

/// Query of the page: `discount_code` pre-fills the discount field.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub discount_code: String,
}

async fn page(State(state): State<AppState>, Path(id): Path<String>, Query(q): Query<PageQuery>) -> Response {
    match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
        Ok(Some((tenant, cs))) => {
            let now = match tenant_now(&state, &tenant).await {
                Ok(n) => n,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let tax = tax_shown(&state, &tenant, &cs).await;
            let look = match Look::load(&state, &tenant, &cs).await {
                Ok(l) => l,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let form = PayForm { discount_code: q.discount_code.chars().take(64).collect(), ..Default::default() };
            let (applied, error) = match typed_code(&state, &tenant, &cs, &form).await {
                Ok(applied) => (applied, None),
                Err(message) => (None, Some(message)),
            };
            let status = cs.shown_status(now);
            html(StatusCode::OK, render(&cs, &look, status, &form, error.as_deref(), tax, applied.as_ref()))
        }
        Ok(None) => not_found(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The code typed in the form, checked against the session (not taken):
/// what it takes off, or why it cannot be used.
async fn typed_code(
    state: &AppState,
    tenant: &Tenant,
    cs: &CheckoutSession,
    form: &PayForm,
) -> Result<Option<AppliedDiscount>, String> {
    let code = form.discount_code.trim();
    if code.is_empty() || cs.discount.is_some() {
        return Ok(None);
    }
    let unchecked = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "a discount code could not be checked");
        "The discount code could not be checked; try again.".to_string()
    };
    let now = tenant_now(state, tenant).await.map_err(|e| unchecked(&e))?;
    match redeem::preview(state, tenant, cs, code, now).await {
        Ok(d) => Ok(Some(d)),
        Err(NotTaken::Refused(m)) => Err(m),
        Err(NotTaken::Store(e)) => Err(unchecked(&e)),
    }
}

/// How the page speaks of tax: not at all when the environment has no
/// rates, else as the price is taxed (added on top, or included).
async fn tax_shown(state: &AppState, tenant: &Tenant, cs: &CheckoutSession) -> Option<TaxBehavior> {
    match crate::tax::any_rates(state, tenant).await {
        Ok(true) => crate::tax::behavior(state, tenant, Some(&cs.quote.tax_behavior)).await.ok(),
        _ => None,
    }
}

/// `MM/YY` or `MM/YYYY`.
fn parse_expiry(s: &str) -> Option<(u32, i32)> {
    let (m, y) = s.trim().split_once('/')?;
    Some((m.trim().parse().ok()?, y.trim().parse().ok()?))
}

async fn submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    BaseUrl(base): BaseUrl,
    Form(form): Form<PayForm>,
) -> Response {
    let (tenant, cs) = match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let tax = tax_shown(&state, &tenant, &cs).await;
    let look = match Look::load(&state, &tenant, &cs).await {
        Ok(l) => l,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let typed = typed_code(&state, &tenant, &cs, &form).await;
    let applied = typed.as_ref().ok().cloned().flatten();
    let fail = |message: &str| {
        let page = render(&cs, &look, SessionStatus::Open, &form, Some(message), tax, applied.as_ref());
        html(StatusCode::BAD_REQUEST, page)
    };
    if let Err(message) = &typed {
        return fail(message);
    }
    let card_here = !cs.quote.free && !look.card_elsewhere;
    let expiry = if card_here { parse_expiry(&form.expiry) } else { None };
    if card_here && expiry.is_none() {
        return fail("Enter the card's expiry as MM/YY.");
    }
    if card_here && !(3..=4).contains(&form.cvc.trim().len()) {
        return fail("Enter the card's security code (CVC).");
    }
    let checkout = CheckoutForm {
        payment: Default::default(),
        card: card_here.then(|| CardInput {
            number: form.card_number.clone(),
            exp_month: expiry.map(|e| e.0),
            exp_year: expiry.map(|e| e.1),
        }),
        email: Some(form.email.clone()),
        name: Some(form.name.clone()).filter(|n| !n.trim().is_empty()),
        billing_country: Some(form.country.trim().to_ascii_uppercase()).filter(|c| c.len() == 2),
        tax_id: Some(form.tax_id.clone()).filter(|t| !t.trim().is_empty()),
        discount_code: applied.as_ref().map(|d| d.code.clone()),
    };
    let done = if look.card_elsewhere && !cs.quote.free {
        stripe_pages::hand_off(&state, &tenant, &cs, checkout, &base).await
    } else {
        complete_checkout(&state, &tenant, &id, checkout).await.map(|done| done.success_url)
    };
    match done {
        Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
        Err(CheckoutError::Payer("billing_country", message)) => {
            // Priced again (a local price for another country): show the new price.
            let cs = match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
                Ok(Some((_, cs))) => cs,
                _ => cs.clone(),
            };
            let page = render(&cs, &look, SessionStatus::Open, &form, Some(&message), tax, applied.as_ref());
            html(StatusCode::BAD_REQUEST, page)
        }
        Err(CheckoutError::Payer(_, message)) => fail(&message),
        Err(CheckoutError::Api(ServiceError::BadRequest(message))) => {
            let now = tenant_now(&state, &tenant).await.unwrap_or_else(|_| state.clock.now());
            let page = render(&cs, &look, cs.shown_status(now), &form, Some(&message), tax, applied.as_ref());
            html(StatusCode::BAD_REQUEST, page)
        }
        Err(CheckoutError::Api(e)) => ApiError::from(e).into_response(),
    }
}
