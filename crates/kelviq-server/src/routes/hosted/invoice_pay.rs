//! The hosted page of an unpaid invoice's payment link
//! (`/invoices/{id}/pay/?org=…&env=…&token=…`): what is due, and a way to
//! pay it: Stripe's page (3-D Secure there when the bank asks) where Stripe
//! is the provider, else a sandbox card saved as the customer's default
//! and charged. Thin: the checks and the work are the invoices', the
//! selling services' and the Stripe provider's.

use super::{esc, html};
use crate::error::ServiceError;
use crate::http::error::ApiError;
use crate::http::extract::BaseUrl;
use crate::invoices::pay_link;
use crate::providers::stripe::invoice as stripe_invoice;
use crate::selling::payments::CardInput;
use crate::selling::CheckoutError;
use crate::state::AppState;
use crate::storefront::look::{page, Brand, Layout};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use kelviq_core::billing::{Invoice, InvoiceStatus};
use kelviq_core::{Environment, Tenant};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct Link {
    #[serde(default)]
    org: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CardForm {
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    expiry: String,
}

fn refused() -> Response {
    html(
        StatusCode::NOT_FOUND,
        super::shell("Not found", "<h1>Payment link not valid</h1><p>This payment link is not valid.</p>"),
    )
}

/// The link's tenant and invoice, when its token is the invoice's.
async fn opened(state: &AppState, id: &str, link: &Link) -> Result<(Tenant, Invoice, Brand), Response> {
    let (Ok(org_id), Ok(env)) = (uuid::Uuid::parse_str(&link.org), link.env.parse::<Environment>()) else {
        return Err(refused());
    };
    let org = match state.store.find_organization(org_id).await {
        Ok(Some(org)) => org,
        Ok(None) => return Err(refused()),
        Err(e) => return Err(ApiError::from(ServiceError::from(e)).into_response()),
    };
    let tenant = Tenant { org_id, org_seq: org.seq, env };
    if id.len() > 64 || !pay_link::check(state, &tenant, id, &link.token) {
        return Err(refused());
    }
    let invoice = match crate::invoices::get(state, &tenant, id).await {
        Ok(i) => i,
        Err(ServiceError::NotFound(_)) => return Err(refused()),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let brand = Brand::load(state, &tenant).await.map_err(|e| ApiError::from(e).into_response())?;
    Ok((tenant, invoice, brand))
}

fn money(minor: i64, currency: &str) -> String {
    crate::portal::pages::money(minor, currency)
}

/// The page: what is due and how to pay, or that it is paid.
fn render(state: &AppState, tenant: &Tenant, i: &Invoice, brand: &Brand, stripe: bool, error: Option<&str>) -> String {
    let due = i.totals.total_minor - i.amount_paid_minor;
    let title = format!("Invoice {}", i.number);
    let head = format!(
        "<h1>{}</h1><p>{} · {}</p>",
        esc(&title),
        esc(&brand.seller),
        match i.status {
            InvoiceStatus::Paid => "paid".to_string(),
            _ => format!("{} due", money(due, &i.currency)),
        }
    );
    let body = match i.status {
        InvoiceStatus::Paid => format!("{head}<p role=\"status\" id=\"paid\">This invoice is paid. Thank you.</p>"),
        InvoiceStatus::PaymentFailed | InvoiceStatus::Open => {
            let error = error.map(|m| format!("<p role=\"alert\" id=\"error\">{}</p>", esc(m))).unwrap_or_default();
            let action = format!("/invoices/{}/pay/?{}", esc(&i.id), esc(&pay_link::query(state, tenant, &i.id)));
            let card = if stripe {
                "<p class=\"muted\">You enter your card on Stripe's secure page next; it is saved for your next payments.</p>".to_string()
            } else {
                "<fieldset><legend>Card</legend><label for=\"card_number\">Card number</label>\
                 <input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" required>\
                 <label for=\"expiry\">Expiry (MM/YY)</label><input id=\"expiry\" name=\"expiry\" autocomplete=\"cc-exp\" required></fieldset>"
                    .to_string()
            };
            format!(
                "{head}{error}<form method=\"post\" action=\"{action}\">{card}<button type=\"submit\" id=\"pay\">Pay {}</button></form>",
                esc(&money(due, &i.currency))
            )
        }
        other => format!("{head}<p>This invoice is {}: nothing can be paid on it.</p>", esc(other.as_str())),
    };
    page(&title, Some(brand), Layout::Narrow, &body)
}

pub(super) async fn show(State(state): State<AppState>, Path(id): Path<String>, Query(link): Query<Link>) -> Response {
    let (tenant, invoice, brand) = match opened(&state, &id, &link).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let stripe = matches!(crate::providers::stripe_client(&state, &tenant).await, Ok(Some(_)));
    if let (Some(session), true) = (link.session_id.as_deref().filter(|s| s.len() <= 255), stripe) {
        return returned(&state, &tenant, invoice, &brand, session).await;
    }
    html(StatusCode::OK, render(&state, &tenant, &invoice, &brand, stripe, None))
}

/// Back from Stripe's page: settle the invoice (or find it settled by
/// Stripe's webhook), then show it.
async fn returned(state: &AppState, tenant: &Tenant, invoice: Invoice, brand: &Brand, session: &str) -> Response {
    let stripe = match crate::providers::stripe_client(state, tenant).await {
        Ok(Some(s)) => s,
        Ok(None) => return refused(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let error = match stripe_invoice::complete(state, tenant, &stripe, &invoice.id, session).await {
        Ok(_) => None,
        Err(CheckoutError::Payer(_, m)) => Some(m),
        Err(CheckoutError::Api(e)) => return ApiError::from(e).into_response(),
    };
    let invoice = crate::invoices::get(state, tenant, &invoice.id).await.unwrap_or(invoice);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    html(status, render(state, tenant, &invoice, brand, true, error.as_deref()))
}

pub(super) async fn pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<Link>,
    BaseUrl(base): BaseUrl,
    Form(form): Form<CardForm>,
) -> Response {
    let (tenant, invoice, brand) = match opened(&state, &id, &link).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let stripe = match crate::providers::stripe_client(&state, &tenant).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let fail =
        |m: &str| html(StatusCode::BAD_REQUEST, render(&state, &tenant, &invoice, &brand, stripe.is_some(), Some(m)));
    if !matches!(invoice.status, InvoiceStatus::PaymentFailed | InvoiceStatus::Open) {
        return fail("This invoice cannot be paid.");
    }
    if let Some(stripe) = &stripe {
        let back = format!("{base}/invoices/{}/pay/?{}", invoice.id, pay_link::query(&state, &tenant, &invoice.id));
        return match stripe_invoice::hand_off(&state, &tenant, stripe, &invoice, &back).await {
            Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
            Err(CheckoutError::Payer(_, m)) => fail(&m),
            Err(CheckoutError::Api(e)) => ApiError::from(e).into_response(),
        };
    }
    let Some((month, year)) = super::parse_expiry(&form.expiry) else {
        return fail("Enter the card's expiry as MM/YY.");
    };
    let card = CardInput { number: form.card_number.clone(), exp_month: Some(month), exp_year: Some(year) };
    if let Err(e) = crate::selling::methods::add_card(&state, &tenant, &invoice.customer_id, &card, true).await {
        return match e {
            ServiceError::Fields(f) => {
                fail(f.fields().values().flatten().next().map_or("The card was refused.", |m| m))
            }
            e => ApiError::from(e).into_response(),
        };
    }
    match crate::invoices::pay(&state, &tenant, &invoice.id).await {
        Ok(paid) => html(StatusCode::OK, render(&state, &tenant, &paid, &brand, false, None)),
        Err(ServiceError::Error(m) | ServiceError::BadRequest(m)) => fail(&m),
        Err(e) => ApiError::from(e).into_response(),
    }
}
