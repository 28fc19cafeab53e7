//! The hosted checkout page at `checkoutUrl`: server-rendered HTML with no
//! scripts and no external assets. Submitting it completes the session
//! exactly as the sandbox API helper does, then redirects to `successUrl`.

use crate::clock::tenant_now;
use crate::discounts::redeem::{self, NotTaken};
use crate::error::ServiceError;
use crate::http::error::ApiError;
use crate::selling::payments::CardInput;
use crate::selling::{complete_checkout, CheckoutError, CheckoutForm};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use kelviq_core::billing::SessionStatus;
use kelviq_core::billing::{amount_text, CheckoutSession};
use kelviq_core::discounts::AppliedDiscount;
use kelviq_core::money::currency_symbol;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::tax::TaxBehavior;
use kelviq_core::Environment;
use kelviq_core::Tenant;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/checkout/{id}", get(page).post(submit))
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input,select{width:100%;padding:.55rem;font-size:1rem;margin-top:.3rem;box-sizing:border-box;border:1px solid #888;border-radius:4px}\
input[readonly]{background:#eee}.row{display:flex;gap:1rem}.row>div{flex:1}\
button{margin-top:1.5rem;width:100%;padding:.8rem;font-size:1.05rem;background:#1f4fd8;color:#fff;border:0;border-radius:4px;cursor:pointer}\
.error{background:#fde8e8;border:1px solid #c81e1e;color:#8a1010;padding:.75rem;border-radius:4px;margin:1rem 0}\
.summary{border:1px solid #ccc;border-radius:4px;padding:1rem}.muted{color:#555;font-size:.9rem}\
table{width:100%;border-collapse:collapse}td{padding:.2rem 0}td:last-child{text-align:right}";

pub(crate) fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    )
}

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

fn render(
    cs: &CheckoutSession,
    env: Environment,
    status: SessionStatus,
    form: &PayForm,
    error: Option<&str>,
    tax: Option<TaxBehavior>,
    applied: Option<&AppliedDiscount>,
) -> String {
    let title = format!("Checkout: {}", cs.plan_name);
    if status == SessionStatus::Success {
        let body = format!(
            "<h1>Payment complete</h1><p>Thank you. Your purchase of {} is complete.</p><p><a href=\"{}\">Continue</a></p>",
            esc(&cs.plan_name),
            esc(&cs.success_url)
        );
        return shell(&title, &body);
    }
    if status == SessionStatus::Expired {
        return shell(&title, "<h1>This checkout has expired</h1><p>Start again from the page that sent you here.</p>");
    }
    let q = &cs.quote;
    let code_refused = error.is_some() && applied.is_none() && !form.discount_code.is_empty();
    let mut shown = q.lines.clone();
    shown.extend(applied.and_then(|d| d.line(&q.lines)));
    let total_minor: i64 = q.total_minor + shown.iter().skip(q.lines.len()).map(|l| l.amount_minor).sum::<i64>();
    let total = format!("{}{}", currency_symbol(&q.currency), amount_text(total_minor, &q.currency));
    let mut lines = String::new();
    for l in &shown {
        lines.push_str(&format!(
            "<tr><td>{}</td><td>{}{}</td></tr>",
            esc(&l.description),
            currency_symbol(&q.currency),
            amount_text(l.amount_minor, &q.currency)
        ));
    }
    let trial = if cs.trial_days > 0 {
        format!(
            "<p><strong>{} day free trial.</strong> You will not be charged today; {total}{} starts when the trial ends.</p>",
            cs.trial_days,
            per(cs.charge_period)
        )
    } else {
        String::new()
    };
    let error =
        error.map(|e| format!("<div class=\"error\" role=\"alert\" id=\"error\">{}</div>", esc(e))).unwrap_or_default();
    let email = if form.email.is_empty() { cs.customer_email.clone().unwrap_or_default() } else { form.email.clone() };
    let name = if form.name.is_empty() { cs.customer_name.clone().unwrap_or_default() } else { form.name.clone() };
    let country = if form.country.is_empty() {
        cs.billing_country.clone().or(cs.default_billing_country.clone()).unwrap_or_default()
    } else {
        form.country.clone()
    };
    let locked = if cs.lock_email && cs.customer_email.is_some() { " readonly aria-readonly=\"true\"" } else { "" };
    // The code is applied by its own form (a GET of this page with
    // `discount_code`), so that Enter in the payment form always pays; the
    // payment form carries the code applied.
    let applied_note =
        |code: &str| format!("<p id=\"discount\">Discount code <strong>{}</strong> applied.</p>", esc(code));
    let (discount_form, carried) = match (&cs.discount, applied) {
        (Some(held), _) => (applied_note(&held.code), String::new()),
        _ if !cs.discounts_enabled || q.free || cs.custom_amount => (String::new(), String::new()),
        (None, shown) => (
            format!(
                "<form method=\"get\" action=\"/checkout/{id}/\" aria-label=\"Discount code\">\
                 <label for=\"discount_code\">Discount code (optional)</label>\
                 <div class=\"row\"><div><input id=\"discount_code\" name=\"discount_code\" value=\"{code}\" autocomplete=\"off\"{invalid}></div>\
                 <div style=\"flex:0 0 6rem\"><button type=\"submit\" id=\"apply\" style=\"margin-top:0;padding:.5rem\">Apply</button></div></div>{note}</form>",
                id = esc(&cs.id),
                code = esc(&form.discount_code),
                invalid = if code_refused { " aria-invalid=\"true\" aria-describedby=\"error\"" } else { "" },
                note = shown.map(|d| applied_note(&d.code)).unwrap_or_default(),
            ),
            shown
                .map(|d| format!("<input type=\"hidden\" name=\"discount_code\" value=\"{}\">", esc(&d.code)))
                .unwrap_or_default(),
        ),
    };
    let card = if q.free {
        String::new()
    } else {
        format!(
            "<fieldset style=\"border:0;padding:0;margin:0\"><legend style=\"font-weight:600;margin-top:1rem\">Card</legend>\
             <label for=\"card_number\">Card number</label><input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" required value=\"{}\" placeholder=\"1234 1234 1234 1234\">\
             <div class=\"row\"><div><label for=\"expiry\">Expiry (MM/YY)</label><input id=\"expiry\" name=\"expiry\" autocomplete=\"cc-exp\" required value=\"{}\" placeholder=\"12/30\"></div>\
             <div><label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" inputmode=\"numeric\" autocomplete=\"cc-csc\" required placeholder=\"123\"></div></div></fieldset>",
            esc(&form.card_number),
            esc(&form.expiry)
        )
    };
    let button = if cs.trial_days > 0 {
        "Start trial".to_string()
    } else if q.free {
        "Get it free".to_string()
    } else if tax == Some(TaxBehavior::Exclusive) {
        format!("Pay {total} + tax")
    } else {
        format!("Pay {total}")
    };
    let tax_note = match tax {
        _ if q.free => "",
        Some(TaxBehavior::Exclusive) => "<p id=\"tax-note\">Tax for your billing country is added to this amount.</p>",
        Some(TaxBehavior::Inclusive) => "<p id=\"tax-note\">Prices include tax for your billing country.</p>",
        None => "",
    };
    let body = format!(
        "<h1>{plan}</h1>{error}<section class=\"summary\" aria-label=\"Order summary\"><table>{lines}</table>\
         <p><strong>Total: <span id=\"total\">{total}</span>{per}</strong></p>{tax_note}{trial}</section>\
         {discount_form}<form method=\"post\" action=\"/checkout/{id}/\">{carried}\
         <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\"{locked}>\
         <label for=\"name\">Name</label><input id=\"name\" name=\"name\" autocomplete=\"name\" value=\"{name}\">\
         <label for=\"country\">Billing country</label><input id=\"country\" name=\"country\" autocomplete=\"country\" maxlength=\"2\" value=\"{country}\" placeholder=\"US\">\
         <label for=\"tax_id\">Tax id (businesses, optional)</label><input id=\"tax_id\" name=\"tax_id\" maxlength=\"24\" value=\"{tax_id}\" placeholder=\"DE123456789\">\
         {card}<button type=\"submit\" id=\"pay\">{button}</button></form>{hint}",
        hint = if env == Environment::Sandbox && !q.free {
            "<p class=\"muted\">Sandbox: pay with 4242 4242 4242 4242; 4000 0000 0000 0002 is declined.</p>"
        } else {
            ""
        },
        plan = esc(&cs.plan_name),
        per = per(cs.charge_period),
        id = esc(&cs.id),
        email = esc(&email),
        name = esc(&name),
        country = esc(&country),
        tax_id = esc(&form.tax_id),
    );
    shell(&title, &body)
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
            let form = PayForm { discount_code: q.discount_code.chars().take(64).collect(), ..Default::default() };
            let (applied, error) = match typed_code(&state, &tenant, &cs, &form).await {
                Ok(applied) => (applied, None),
                Err(message) => (None, Some(message)),
            };
            let status = cs.shown_status(now);
            html(StatusCode::OK, render(&cs, tenant.env, status, &form, error.as_deref(), tax, applied.as_ref()))
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

async fn submit(State(state): State<AppState>, Path(id): Path<String>, Form(form): Form<PayForm>) -> Response {
    let (tenant, cs) = match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let tax = tax_shown(&state, &tenant, &cs).await;
    let typed = typed_code(&state, &tenant, &cs, &form).await;
    let applied = typed.as_ref().ok().cloned().flatten();
    let fail = |message: &str| {
        let page = render(&cs, tenant.env, SessionStatus::Open, &form, Some(message), tax, applied.as_ref());
        html(StatusCode::BAD_REQUEST, page)
    };
    if let Err(message) = &typed {
        return fail(message);
    }
    let expiry = if cs.quote.free { None } else { parse_expiry(&form.expiry) };
    if !cs.quote.free && expiry.is_none() {
        return fail("Enter the card's expiry as MM/YY.");
    }
    if !cs.quote.free && !(3..=4).contains(&form.cvc.trim().len()) {
        return fail("Enter the card's security code (CVC).");
    }
    let checkout = CheckoutForm {
        card: (!cs.quote.free).then(|| CardInput {
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
    match complete_checkout(&state, &tenant, &id, checkout).await {
        Ok(done) => (StatusCode::SEE_OTHER, [(header::LOCATION, done.success_url)]).into_response(),
        Err(CheckoutError::Payer("billing_country", message)) => {
            // Priced again (a local price for another country): show the new price.
            let cs = match state.store.find_checkout_session_anywhere::<CheckoutSession>(&id).await {
                Ok(Some((_, cs))) => cs,
                _ => cs.clone(),
            };
            let page = render(&cs, tenant.env, SessionStatus::Open, &form, Some(&message), tax, applied.as_ref());
            html(StatusCode::BAD_REQUEST, page)
        }
        Err(CheckoutError::Payer(_, message)) => fail(&message),
        Err(CheckoutError::Api(ServiceError::BadRequest(message))) => {
            let now = tenant_now(&state, &tenant).await.unwrap_or_else(|_| state.clock.now());
            let page = render(&cs, tenant.env, cs.shown_status(now), &form, Some(&message), tax, applied.as_ref());
            html(StatusCode::BAD_REQUEST, page)
        }
        Err(CheckoutError::Api(e)) => ApiError::from(e).into_response(),
    }
}
