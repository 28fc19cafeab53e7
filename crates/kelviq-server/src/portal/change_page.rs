//! The portal's page for changing a subscription's plan or quantities: the
//! choices, then a preview of the exact amounts, then a confirmation form.

use super::changes::{Asked, Choice};
use super::pages::{day, hidden, money};
use super::Viewer;
use crate::routes::hosted::{esc, per};
use kelviq_core::billing::{ChangePreview, FeatureQuantity, Subscription};
use std::fmt::Write;

/// What the page shows.
pub struct ChangeView<'a> {
    pub sub: &'a Subscription,
    pub choices: &'a [Choice],
    /// What the plan sells per unit, with today's quantities (empty: not changeable here).
    pub quantities: &'a [FeatureQuantity],
    pub asked: &'a Asked,
    pub preview: Option<&'a ChangePreview>,
    pub error: Option<&'a str>,
}

fn fields(out: &mut String, c: &ChangeView<'_>) {
    let (current_plan, current_period) =
        c.asked.choice.clone().unwrap_or((c.sub.plan_identifier.clone(), c.sub.charge_period));
    if !c.choices.is_empty() {
        out.push_str("<fieldset><legend>Plan</legend>");
        for (i, ch) in c.choices.iter().enumerate() {
            let checked = ch.identifier == current_plan && ch.period == current_period;
            let now = ch.identifier == c.sub.plan_identifier && ch.period == c.sub.charge_period;
            let _ = write!(
                out,
                "<div class=\"choice\"><input type=\"radio\" id=\"choice-{i}\" name=\"choice\" value=\"{}\"{}>\
                 <label for=\"choice-{i}\">{} <span class=\"muted\">{}{}{}</span></label></div>",
                esc(&ch.value()),
                if checked { " checked" } else { "" },
                esc(&ch.name),
                esc(&money(ch.quote.total_minor, &ch.quote.currency)),
                per(ch.period),
                if now { " (current)" } else { "" }
            );
        }
        out.push_str("</fieldset>");
    }
    if c.choices.is_empty() && c.quantities.is_empty() {
        out.push_str("<p>There is nothing to change on this subscription here.</p>");
    }
    if !c.quantities.is_empty() {
        out.push_str("<fieldset><legend>Quantities</legend>");
        for f in c.quantities {
            let value =
                c.asked.quantities.iter().find(|q| q.identifier == f.identifier).map_or(f.quantity, |q| q.quantity);
            let id = format!("qty-{}", esc(&f.identifier));
            let _ = write!(
                out,
                "<label for=\"{id}\">{}</label><input id=\"{id}\" type=\"number\" min=\"0\" max=\"1000000\" \
                 inputmode=\"numeric\" name=\"qty:{}\" value=\"{value}\">",
                esc(&f.identifier),
                esc(&f.identifier)
            );
        }
        out.push_str("</fieldset>");
    }
}

/// The page's body.
pub fn render(v: &Viewer, c: &ChangeView<'_>) -> String {
    let s = c.sub;
    let base = format!("/portal/{}/subscriptions/{}/change", esc(&v.slug), s.id);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<p><a href=\"/portal/{}/\">← Back to your account</a></p><h1>Change {}</h1>\
         <p class=\"muted\">Now: {}{}</p>",
        esc(&v.slug),
        esc(&s.plan_name),
        esc(&money(s.amount_minor, &s.currency)),
        per(s.charge_period)
    );
    if let Some(e) = c.error {
        let _ = write!(out, "<div class=\"error\" role=\"alert\">{}</div>", esc(e));
    }
    out.push_str(&format!("<form method=\"get\" action=\"{base}\">"));
    fields(&mut out, c);
    out.push_str("<button type=\"submit\" class=\"secondary\">Preview the change</button></form>");
    if let Some(p) = c.preview {
        let cur = &s.currency;
        let _ = write!(
            out,
            "<section aria-labelledby=\"preview\" class=\"card\"><h2 id=\"preview\">What you will pay</h2><dl>\
             <dt>Charged now</dt><dd id=\"charge-now\">{}</dd><dt>New price</dt><dd><span id=\"recurring\">{}</span>{}</dd>\
             <dt>Next invoice</dt><dd id=\"next-invoice\">{} on {}</dd></dl>",
            esc(&money(p.charge_now_minor, cur)),
            esc(&money(p.recurring_minor, cur)),
            per(c.asked.choice.as_ref().map_or(s.charge_period, |c| c.1)),
            esc(&money(p.next_invoice_minor, cur)),
            day(p.next_at)
        );
        if !p.lines.is_empty() {
            out.push_str("<table><caption class=\"muted\">Next invoice</caption><tbody>");
            for l in &p.lines {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(&l.description),
                    esc(&money(l.amount_minor, cur))
                );
            }
            out.push_str("</tbody></table>");
        }
        let _ = write!(out, "<form method=\"post\" action=\"{base}\">{}", hidden(v));
        if let Some((plan, period)) = &c.asked.choice {
            let _ = write!(out, "<input type=\"hidden\" name=\"choice\" value=\"{}|{}\">", esc(plan), period.as_str());
        }
        for q in &c.asked.quantities {
            let _ = write!(out, "<input type=\"hidden\" name=\"qty:{}\" value=\"{}\">", esc(&q.identifier), q.quantity);
        }
        out.push_str("<button type=\"submit\">Confirm the change</button></form></section>");
    }
    out
}
