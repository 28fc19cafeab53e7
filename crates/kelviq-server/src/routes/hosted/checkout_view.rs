//! The hosted checkout page's view: the order summary (product image, plan,
//! its main features, line items, subtotal, discount, tax, total and what
//! happens at renewal) beside the payment form, in the seller's look.

use super::{esc, per, PayForm};
use crate::error::ServiceResult;
use crate::state::AppState;
use crate::storefront::look::{page, Brand, Layout};
use kelviq_core::billing::{amount_text, CheckoutSession, SessionStatus};
use kelviq_core::discounts::AppliedDiscount;
use kelviq_core::money::currency_symbol;
use kelviq_core::plans::entitlement_phrase;
use kelviq_core::tax::TaxBehavior;
use kelviq_core::Tenant;
use kelviq_store::MediaOwner;

/// At most this many of the plan's features are listed.
const FEATURES_SHOWN: usize = 6;

/// What the page shows besides the session: who sells, and what.
pub struct Look {
    pub brand: Brand,
    pub product: String,
    pub image: Option<String>,
    pub features: Vec<String>,
    /// Stripe takes the card on its own page: this one asks for none.
    pub card_elsewhere: bool,
}

impl Look {
    pub async fn load(state: &AppState, tenant: &Tenant, cs: &CheckoutSession) -> ServiceResult<Look> {
        let brand = Brand::load(state, tenant).await?;
        let product_key = cs.product_id.to_string();
        let product = state.store.find_product_any(tenant, &product_key).await?.map(|p| p.name).unwrap_or_default();
        let images = state.store.list_media(tenant, MediaOwner::ProductImage, &product_key).await?;
        let image = images
            .iter()
            .filter(|f| f.enabled)
            .max_by_key(|f| (f.thumbnail, -f.ordering))
            .map(|f| crate::media::image_url("", f));
        let mut features = Vec::new();
        if let Some(plan) = state.store.find_plan_version(tenant, cs.plan_id).await? {
            let known = state.store.features_by_id(tenant).await?;
            features = plan
                .entitlements
                .iter()
                .filter_map(|e| entitlement_phrase(known.get(&e.feature_id)?, &e.details))
                .take(FEATURES_SHOWN)
                .collect();
        }
        let card_elsewhere =
            crate::selling::payments::card_taker(state, tenant).await? == crate::selling::payments::CardTaker::Stripe;
        Ok(Look { brand, product, image, features, card_elsewhere })
    }
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}{}", currency_symbol(currency), amount_text(minor, currency))
}

/// The summary pane.
fn summary(cs: &CheckoutSession, look: &Look, tax: Option<TaxBehavior>, applied: Option<&AppliedDiscount>) -> String {
    let q = &cs.quote;
    let discount = applied.and_then(|d| d.line(&q.lines));
    let total_minor = q.total_minor + discount.as_ref().map_or(0, |l| l.amount_minor);
    let total = money(total_minor, &q.currency);
    let back = cs
        .cancel_url
        .as_ref()
        .map(|u| format!("<a class=\"back\" href=\"{}\">← Back to {}</a>", esc(u), esc(&look.brand.seller)))
        .unwrap_or_default();
    let image = look.image.as_ref().map(|i| format!("<img src=\"{}\" alt=\"\">", esc(i))).unwrap_or_default();
    let product = if look.product.is_empty() || look.product == cs.plan_name {
        String::new()
    } else {
        format!("<div class=\"muted\">{}</div>", esc(&look.product))
    };
    let mut out = format!(
        "<section class=\"pane-summary\" aria-labelledby=\"summary-title\">{back}<div class=\"product\">{image}<div>{product}\
         <h1 id=\"summary-title\">{}</h1></div></div>",
        esc(&cs.plan_name)
    );
    if !look.features.is_empty() {
        out.push_str("<ul class=\"features\" aria-label=\"Included\">");
        for f in &look.features {
            out.push_str(&format!("<li>{}</li>", esc(f)));
        }
        out.push_str("</ul>");
    }
    out.push_str("<table aria-label=\"Order summary\"><tbody>");
    for l in &q.lines {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&l.description),
            money(l.amount_minor, &q.currency)
        ));
    }
    let shows_subtotal = discount.is_some() || tax == Some(TaxBehavior::Exclusive);
    if shows_subtotal {
        out.push_str(&format!(
            "<tr class=\"sum\"><td>Subtotal</td><td>{}</td></tr>",
            money(q.total_minor, &q.currency)
        ));
    }
    if let Some(d) = &discount {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&d.description),
            money(d.amount_minor, &q.currency)
        ));
    }
    match tax {
        _ if q.free => {}
        Some(TaxBehavior::Exclusive) => {
            out.push_str("<tr><td>Tax</td><td class=\"muted\">from your billing country</td></tr>");
        }
        Some(TaxBehavior::Inclusive) => out.push_str("<tr><td>Tax</td><td class=\"muted\">included</td></tr>"),
        None => {}
    }
    out.push_str(&format!(
        "<tr class=\"total\"><td>Total</td><td><span id=\"total\">{total}</span>{}</td></tr>",
        per(cs.charge_period)
    ));
    if cs.trial_days > 0 {
        out.push_str(&format!("<tr><td>Due today</td><td>{}</td></tr>", money(0, &q.currency)));
    }
    out.push_str("</tbody></table>");
    let tax_note = match tax {
        _ if q.free => "",
        Some(TaxBehavior::Exclusive) => "<p id=\"tax-note\">Tax for your billing country is added to this amount.</p>",
        Some(TaxBehavior::Inclusive) => "<p id=\"tax-note\">Prices include tax for your billing country.</p>",
        None => "",
    };
    out.push_str(tax_note);
    if cs.trial_days > 0 {
        out.push_str(&format!(
            "<p><strong>{} day free trial.</strong> You will not be charged today; {total}{} starts when the trial ends.</p>",
            cs.trial_days,
            per(cs.charge_period)
        ));
    } else if cs.charge_period.is_recurring() && !q.free {
        out.push_str(&format!(
            "<p class=\"muted\">Renews automatically: {total}{} until you cancel. You can cancel any time.</p>",
            per(cs.charge_period)
        ));
    }
    out.push_str("</section>");
    out
}

/// The payment pane: the discount code, then who pays and with what.
fn payment(
    cs: &CheckoutSession,
    look: &Look,
    form: &PayForm,
    error: Option<&str>,
    tax: Option<TaxBehavior>,
    applied: Option<&AppliedDiscount>,
) -> String {
    let q = &cs.quote;
    let discount = applied.and_then(|d| d.line(&q.lines));
    let total = money(q.total_minor + discount.as_ref().map_or(0, |l| l.amount_minor), &q.currency);
    let code_refused = error.is_some() && applied.is_none() && !form.discount_code.is_empty();
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
                 <div style=\"flex:0 0 6rem\"><button type=\"submit\" id=\"apply\" class=\"secondary\" style=\"width:100%;margin-top:.3rem;padding:.6rem\">Apply</button></div></div>{note}</form>",
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
    let card = if q.free || look.card_elsewhere {
        String::new()
    } else {
        format!(
            "<fieldset><legend>Payment details</legend>\
             <label for=\"card_number\">Card number</label><input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" autocomplete=\"cc-number\" required value=\"{}\" placeholder=\"1234 1234 1234 1234\">\
             <div class=\"row\"><div><label for=\"expiry\">Expiry (MM/YY)</label><input id=\"expiry\" name=\"expiry\" autocomplete=\"cc-exp\" required value=\"{}\" placeholder=\"12/30\"></div>\
             <div><label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" inputmode=\"numeric\" autocomplete=\"cc-csc\" required placeholder=\"123\"></div></div></fieldset>",
            esc(&form.card_number),
            esc(&form.expiry)
        )
    };
    let button = if look.card_elsewhere && !q.free {
        "Continue to payment".to_string()
    } else if cs.trial_days > 0 {
        "Start trial".to_string()
    } else if q.free {
        "Get it free".to_string()
    } else if tax == Some(TaxBehavior::Exclusive) {
        format!("Pay {total} + tax")
    } else {
        format!("Pay {total}")
    };
    let hint = if look.card_elsewhere && !q.free {
        "<p class=\"muted\">You enter your card on Stripe's secure page next.</p>"
    } else if look.brand.test_mode && !q.free {
        "<p class=\"muted\">Test mode: pay with 4242 4242 4242 4242; 4000 0000 0000 0002 is declined.</p>"
    } else {
        ""
    };
    format!(
        "<section aria-label=\"Payment\">{error}{discount_form}<form method=\"post\" action=\"/checkout/{id}/\">{carried}\
         <fieldset><legend>Contact and billing</legend>\
         <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\"{locked}>\
         <label for=\"name\">Name</label><input id=\"name\" name=\"name\" autocomplete=\"name\" value=\"{name}\">\
         <div class=\"row\"><div><label for=\"country\">Billing country</label><input id=\"country\" name=\"country\" autocomplete=\"country\" maxlength=\"2\" value=\"{country}\" placeholder=\"US\"></div>\
         <div><label for=\"tax_id\">Tax ID (optional)</label><input id=\"tax_id\" name=\"tax_id\" maxlength=\"24\" value=\"{tax_id}\" placeholder=\"DE123456789\"></div></div></fieldset>\
         {card}<button type=\"submit\" id=\"pay\">{button}</button></form>{hint}</section>",
        id = esc(&cs.id),
        email = esc(&email),
        name = esc(&name),
        country = esc(&country),
        tax_id = esc(&form.tax_id),
    )
}

pub fn render(
    cs: &CheckoutSession,
    look: &Look,
    status: SessionStatus,
    form: &PayForm,
    error: Option<&str>,
    tax: Option<TaxBehavior>,
    applied: Option<&AppliedDiscount>,
) -> String {
    let title = format!("Checkout: {}", cs.plan_name);
    let brand = Some(&look.brand);
    if status == SessionStatus::Success {
        let body = format!(
            "<h1>Payment complete</h1><p>Thank you. Your purchase of {} is complete.</p><p><a class=\"button\" href=\"{}\">Continue</a></p>",
            esc(&cs.plan_name),
            esc(&cs.success_url)
        );
        return page(&title, brand, Layout::Narrow, &body);
    }
    if status == SessionStatus::Expired {
        let body = "<h1>This checkout has expired</h1><p>Start again from the page that sent you here.</p>";
        return page(&title, brand, Layout::Narrow, body);
    }
    let body = format!("{}{}", summary(cs, look, tax, applied), payment(cs, look, form, error, tax, applied));
    page(&title, brand, Layout::Split, &body)
}
