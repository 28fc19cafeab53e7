//! The portal's account sections: orders with their invoices (past and
//! cancelled subscriptions included), saved payment methods and the
//! billing address, each with its forms.

use super::pages::{day, hidden, money};
use super::Viewer;
use crate::error::ServiceResult;
use crate::routes::hosted::esc;
use crate::selling::methods::DETACHED;
use crate::state::AppState;
use kelviq_core::billing::{Invoice, InvoiceStatus, Order, PaymentMethod};
use kelviq_core::customer::{BillingAddress, Customer};
use kelviq_store::{DocTable, Filter};
use std::fmt::Write;

/// Orders, newest first, each with its invoice (a PDF) and, when its
/// payment failed, the link to pay it.
pub async fn orders(state: &AppState, v: &Viewer, out: &mut String) -> ServiceResult<()> {
    let mine = [Filter::Eq("customer_id", v.customer_id.clone())];
    let orders: Vec<Order> = state.store.list_docs(DocTable::Orders, &v.tenant, &mine, 200, 0).await?;
    let invoices: Vec<Invoice> = state.store.list_docs(DocTable::Invoices, &v.tenant, &mine, 200, 0).await?;
    out.push_str("<section aria-labelledby=\"inv\"><h2 id=\"inv\">Orders and invoices</h2>");
    if orders.is_empty() && invoices.is_empty() {
        out.push_str("<p>No orders yet.</p></section>");
        return Ok(());
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Date</th><th scope=\"col\">Order</th>\
         <th scope=\"col\">Status</th><th scope=\"col\">Invoice</th><th scope=\"col\">Total</th></tr></thead><tbody>",
    );
    let slug = esc(&v.slug);
    for o in &orders {
        let invoice = invoices.iter().find(|i| i.order_id == o.id);
        let document = match invoice {
            Some(i) => format!("<a href=\"/portal/{slug}/invoices/{}\">{}</a>", esc(&i.id), esc(&i.number)),
            None => "—".into(),
        };
        let status = match (o.invoice_status, invoice) {
            (InvoiceStatus::PaymentFailed, Some(i)) => {
                let link = crate::invoices::pay_link::query(state, &v.tenant, &i.id);
                format!("Payment failed <a href=\"/invoices/{}/pay/?{}\">Pay now</a>", esc(&i.id), esc(&link))
            }
            _ => esc(&o.status.as_str().replace('_', " ").to_lowercase()),
        };
        let refunded = if o.refunded_minor > 0 {
            format!(" <span class=\"muted\">({} refunded)</span>", esc(&money(o.refunded_minor, &o.currency)))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}{}</td><td>{status}</td><td>{document}</td><td>{}{refunded}</td></tr>",
            day(Some(o.created_at)),
            esc(&o.plan_name),
            if o.is_renewal { " <span class=\"muted\">renewal</span>" } else { "" },
            esc(&money(o.total_minor, &o.currency)),
        );
    }
    out.push_str("</tbody></table></div></section>");
    Ok(())
}

/// Saved payment methods: the default first, each other one can become
/// the default or be removed; and a form to add a card.
pub async fn payment_methods(state: &AppState, v: &Viewer, out: &mut String) -> ServiceResult<()> {
    let mut methods = state.store.payment_methods::<PaymentMethod>(&v.tenant, Some(&v.customer_id)).await?;
    methods.retain(|m| m.doc.status != DETACHED);
    methods.sort_by_key(|m| !m.is_default);
    out.push_str("<section aria-labelledby=\"pay\"><h2 id=\"pay\">Payment methods</h2>");
    if methods.is_empty() {
        out.push_str("<p>No saved payment methods.</p>");
    }
    let base = format!("/portal/{}/payment-methods", esc(&v.slug));
    for m in &methods {
        let label = format!("{} ending in {}", m.doc.brand, m.doc.last4);
        let _ = write!(
            out,
            "<div class=\"card row-between\"><div><strong>{}</strong> <span class=\"muted\">expires {:02}/{}</span>{}</div>",
            esc(&label),
            m.doc.exp_month,
            m.doc.exp_year,
            if m.is_default { " <span class=\"status\">Default</span>" } else { "" }
        );
        if !m.is_default {
            let _ = write!(
                out,
                "<div><form class=\"inline\" method=\"post\" action=\"{base}/{id}/default\">{h}<button type=\"submit\" \
                 class=\"secondary\" aria-label=\"Make {l} the default\">Make default</button></form> \
                 <form class=\"inline\" method=\"post\" action=\"{base}/{id}/remove\">{h}<button type=\"submit\" \
                 class=\"secondary\" aria-label=\"Remove {l}\">Remove</button></form></div>",
                id = m.id,
                h = hidden(v),
                l = esc(&label)
            );
        }
        out.push_str("</div>");
    }
    if crate::selling::payments::card_taker(state, &v.tenant).await? == crate::selling::payments::CardTaker::Stripe {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{base}\">{}<label class=\"check\"><input type=\"checkbox\" \
             name=\"make_default\" value=\"yes\" checked> Use it for future payments</label>\
             <button type=\"submit\" id=\"add-card\">Add a card on Stripe's secure page</button></form></section>",
            hidden(v)
        );
        return Ok(());
    }
    let _ = write!(
        out,
        "<details><summary>Add a card</summary><form method=\"post\" action=\"{base}\">{}\
         <label for=\"card-number\">Card number</label><input id=\"card-number\" name=\"card_number\" \
         autocomplete=\"cc-number\" inputmode=\"numeric\" maxlength=\"23\" required>\
         <label for=\"card-expiry\">Expiry (MM/YY)</label><input id=\"card-expiry\" name=\"expiry\" \
         autocomplete=\"cc-exp\" placeholder=\"MM/YY\" maxlength=\"7\" required>\
         <label class=\"check\"><input type=\"checkbox\" name=\"make_default\" value=\"yes\" checked> \
         Use it for future payments</label><button type=\"submit\">Save card</button></form></details></section>",
        hidden(v)
    );
    Ok(())
}

fn field(out: &mut String, name: &str, label: &str, value: Option<&str>, autocomplete: &str) {
    let _ = write!(
        out,
        "<label for=\"addr-{name}\">{label}</label><input id=\"addr-{name}\" name=\"{name}\" value=\"{}\" \
         autocomplete=\"{autocomplete}\" maxlength=\"200\">",
        esc(value.unwrap_or_default())
    );
}

/// The billing address, shown on invoices, with its form.
pub fn address(v: &Viewer, customer: Option<&Customer>, out: &mut String) {
    let a = customer.and_then(|c| c.billing_address.clone()).unwrap_or_default();
    let _ = write!(
        out,
        "<section aria-labelledby=\"addr\"><h2 id=\"addr\">Billing address</h2><p class=\"muted\">Shown on your \
         invoices.</p><form method=\"post\" action=\"/portal/{}/billing-address\">{}",
        esc(&v.slug),
        hidden(v)
    );
    field(out, "line1", "Address", a.line1.as_deref(), "address-line1");
    field(out, "line2", "Address line 2 (optional)", a.line2.as_deref(), "address-line2");
    out.push_str("<div class=\"row\"><div>");
    field(out, "postal_code", "Postal code", a.postal_code.as_deref(), "postal-code");
    out.push_str("</div><div>");
    field(out, "city", "City", a.city.as_deref(), "address-level2");
    out.push_str("</div></div><div class=\"row\"><div>");
    field(out, "state", "State or region (optional)", a.state.as_deref(), "address-level1");
    out.push_str("</div><div>");
    field(out, "country", "Country (two letters, like US)", a.country.as_deref(), "country");
    out.push_str("</div></div><button type=\"submit\" class=\"secondary\">Save address</button></form></section>");
}

/// The address a form asks for, keeping the customer's tax id.
pub fn typed_address(form: &[(String, String)], current: Option<&BillingAddress>) -> BillingAddress {
    let get =
        |k: &str| form.iter().find(|(name, _)| name == k).map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
    BillingAddress {
        country: get("country"),
        line1: get("line1"),
        line2: get("line2"),
        postal_code: get("postal_code"),
        city: get("city"),
        state: get("state"),
        tax_id: current.and_then(|a| a.tax_id.clone()),
    }
}
