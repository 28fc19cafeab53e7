//! The portal's page: the customer's subscriptions (live, past and
//! cancelled), licence keys with their instances, and orders with their
//! invoices, server-rendered in the hosted checkout's look, with no scripts
//! and no external assets. Forms post back with the session's form token.

use super::{form_token, Viewer};
use crate::error::ServiceResult;
use crate::licenses::{holding, key_of};
use crate::routes::hosted::{esc, per, shell};
use crate::state::AppState;
use kelviq_core::billing::{amount_text, SubStatus, Subscription};
use kelviq_core::money::currency_symbol;
use kelviq_core::storefront::CancellationMode;
use kelviq_core::timefmt::date;
use kelviq_store::{DocTable, Filter};
use std::fmt::Write;

/// Cancellation reasons the portal offers (the API's feedback values).
pub const REASONS: &[(&str, &str)] = &[
    ("TOO_EXPENSIVE", "It is too expensive"),
    ("MISSING_FEATURES", "It is missing features I need"),
    ("SWITCHED_SERVICE", "I switched to another service"),
    ("UNUSED", "I do not use it enough"),
    ("OTHER", "Another reason"),
];

pub(crate) fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}{} {}",
        currency_symbol(currency),
        amount_text(minor.abs(), currency),
        currency.to_ascii_uppercase()
    )
}

pub(crate) fn day(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| date(t.date_naive())).unwrap_or_else(|| "—".into())
}

pub(crate) fn hidden(v: &Viewer) -> String {
    format!("<input type=\"hidden\" name=\"form\" value=\"{}\">", form_token(&v.token))
}

fn subscription_card(out: &mut String, v: &Viewer, s: &Subscription, plans: &Plans) {
    let base = format!("/portal/{}/subscriptions/{}", esc(&v.slug), s.id);
    let _ = write!(
        out,
        "<div class=\"card\"><h3>{}</h3><span class=\"status\">{}</span><dl><dt>Price</dt><dd>{}{}</dd>",
        esc(&s.plan_name),
        esc(s.status.as_str()),
        esc(&money(s.amount_minor, &s.currency)),
        per(s.charge_period)
    );
    let renews = s.status.grants() && s.cancel_at.is_none() && !s.is_one_time();
    if renews {
        let _ = write!(out, "<dt>Next renewal</dt><dd>{}</dd>", day(s.period_end));
    }
    if s.status == SubStatus::Trialing {
        let _ = write!(out, "<dt>Trial days left</dt><dd>{}</dd>", s.trial_days_remaining(v.now));
    }
    if let Some(end) = s.ended_at.or(s.cancel_at) {
        let _ = write!(out, "<dt>Ends</dt><dd>{}</dd>", day(Some(end)));
    }
    out.push_str("</dl>");
    let settings = &v.settings;
    let seats = plans.get(&s.plan_id).is_some_and(|p| p.sells_per_unit(s.charge_period, &s.currency));
    let changes = settings.allow_plan_changes || (settings.allow_quantity_changes && seats);
    if renews && changes {
        let _ = write!(out, "<p><a class=\"button secondary\" href=\"{base}/change\">Change plan</a></p>");
    }
    let mode = settings.cancellation_mode;
    if s.status.grants() && s.cancel_at.is_some() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{base}/resume\">{}<button type=\"submit\" class=\"secondary\">Keep my subscription</button></form>",
            hidden(v)
        );
    } else if renews && mode == CancellationMode::Disabled {
        if let Some(email) = &settings.support_email {
            let _ =
                write!(out, "<p class=\"muted\">To cancel, write to <a href=\"mailto:{0}\">{0}</a>.</p>", esc(email));
        }
    } else if renews {
        let id = s.id;
        let (summary, button) = match mode {
            CancellationMode::Immediately => ("Cancel now", "Cancel now"),
            _ => ("Cancel at the end of the period", "Cancel at period end"),
        };
        let _ = write!(
            out,
            "<details><summary>{summary}</summary><form method=\"post\" action=\"{base}/cancel\">{}\
             <label for=\"reason-{id}\">Why are you cancelling?</label><select id=\"reason-{id}\" name=\"reason\" required>",
            hidden(v)
        );
        for (value, label) in REASONS {
            let _ = write!(out, "<option value=\"{value}\">{label}</option>");
        }
        let _ = write!(
            out,
            "</select><label for=\"comment-{id}\">Anything else? (optional)</label>\
             <input id=\"comment-{id}\" name=\"comment\" maxlength=\"500\">\
             <button type=\"submit\">{button}</button></form></details>"
        );
    }
    out.push_str("</div>");
}

/// The portal's page for the viewer.
pub async fn home(state: &AppState, v: &Viewer, notice: Option<&str>) -> ServiceResult<String> {
    let tenant = &v.tenant;
    let mine = [Filter::Eq("customer_id", v.customer_id.clone())];
    let subs: Vec<Subscription> = state.store.list_docs(DocTable::Subscriptions, tenant, &mine, 100, 0).await?;
    let (_, licenses) = state.store.list_licenses(tenant, Some(&v.customer_id), 100, 0).await?;
    let customer = state.store.find_customer_any(tenant, &v.customer_id).await?;
    let mut out = String::with_capacity(8192);
    let who = customer.as_ref().and_then(|c| c.email.clone()).unwrap_or_else(|| v.customer_id.clone());
    let _ = write!(out, "<h1>Your account</h1><p class=\"muted\">Signed in as {}</p>", esc(&who));
    if let Some(n) = notice {
        let _ = write!(out, "<p role=\"status\" class=\"notice\">{}</p>", esc(n));
    }
    let plans = current_plans(state, v, &subs).await?;
    out.push_str("<section aria-labelledby=\"subs\"><h2 id=\"subs\">Subscriptions</h2>");
    if subs.is_empty() {
        out.push_str("<p>No subscriptions yet.</p>");
    }
    for s in subs.iter().filter(|s| s.status != SubStatus::Superseded) {
        subscription_card(&mut out, v, s, &plans);
    }
    out.push_str("</section>");
    if v.settings.show_usage {
        usage(state, v, &mut out).await?;
    }
    resources(state, v, &plans, &mut out).await?;
    out.push_str("<section aria-labelledby=\"lic\"><h2 id=\"lic\">License keys</h2>");
    if licenses.is_empty() {
        out.push_str("<p>No license keys.</p>");
    }
    for l in &licenses {
        let instances = state.store.license_instances(l.id, false).await?;
        let limit = l.activation_limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        let _ = write!(
            out,
            "<div class=\"card\"><h3><code>{}</code></h3><dl><dt>Activations</dt><dd>{} of {}</dd><dt>Expires</dt><dd>{}</dd>\
             <dt>Status</dt><dd>{}</dd></dl>",
            esc(&key_of(state, l)?),
            holding(l, &instances, v.now),
            limit,
            day(l.expires_at),
            if l.enabled { "Enabled" } else { "Disabled" }
        );
        if !instances.is_empty() {
            out.push_str("<table><caption class=\"muted\">Activated devices</caption>");
        }
        for i in &instances {
            let name = i.name.clone().or(i.fingerprint.clone()).unwrap_or_else(|| i.id.to_string());
            let _ = write!(
                out,
                "<tr><td>{} <span class=\"muted\">since {}</span></td><td><form class=\"inline\" method=\"post\" \
                 action=\"/portal/{}/licenses/{}/instances/{}/deactivate\">{}<button type=\"submit\" class=\"secondary\" \
                 aria-label=\"Deactivate {}\">Deactivate</button></form></td></tr>",
                esc(&name),
                day(Some(i.activated_at)),
                esc(&v.slug),
                l.id,
                i.id,
                hidden(v),
                esc(&name)
            );
        }
        if !instances.is_empty() {
            out.push_str("</table>");
        }
        out.push_str("</div>");
    }
    out.push_str("</section>");
    super::account::orders(state, v, &mut out).await?;
    super::account::payment_methods(state, v, &mut out).await?;
    super::account::address(v, customer.as_ref(), &mut out);
    Ok(v.page(&format!("{} account", v.brand().seller), &out))
}

/// Usage of each metered feature: used, limit, when it resets.
async fn usage(state: &AppState, v: &Viewer, out: &mut String) -> ServiceResult<()> {
    let Some(customer) = crate::usage::engine::load(state, &v.tenant, &v.customer_id).await? else { return Ok(()) };
    let rows = customer.rows(v.now);
    let meters: Vec<_> = rows.iter().filter(|r| r.state.current_usage.is_some()).collect();
    if meters.is_empty() {
        return Ok(());
    }
    out.push_str(
        "<section aria-labelledby=\"use\"><h2 id=\"use\">Usage</h2><table><thead><tr><th scope=\"col\">Feature</th>\
         <th scope=\"col\">Used</th><th scope=\"col\">Limit</th><th scope=\"col\">Resets</th></tr></thead><tbody>",
    );
    for r in meters {
        let limit = r.state.usage_limit.map_or_else(|| "unlimited".to_string(), |l| l.to_string());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{limit}</td><td>{}</td></tr>",
            esc(&r.feature_id),
            r.state.current_usage.unwrap_or(0),
            day(r.reset_at)
        );
    }
    out.push_str("</tbody></table></section>");
    Ok(())
}

/// The plans of the customer's subscriptions that grant access now.
pub(crate) type Plans = std::collections::HashMap<uuid::Uuid, kelviq_core::plans::PlanVersion>;

pub(crate) async fn current_plans(state: &AppState, v: &Viewer, subs: &[Subscription]) -> ServiceResult<Plans> {
    let mut plans = Plans::new();
    for s in subs.iter().filter(|s| s.status.grants()) {
        if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(s.plan_id) {
            if let Some(plan) = state.store.find_plan_version(&v.tenant, s.plan_id).await? {
                e.insert(plan);
            }
        }
    }
    Ok(plans)
}

/// A file of a plan the customer has now, or none.
pub async fn plan_file(state: &AppState, v: &Viewer, id: &str) -> ServiceResult<Option<kelviq_store::MediaFile>> {
    let mine = [Filter::Eq("customer_id", v.customer_id.clone())];
    let subs: Vec<Subscription> = state.store.list_docs(DocTable::Subscriptions, &v.tenant, &mine, 100, 0).await?;
    for plan in current_plans(state, v, &subs).await?.values() {
        let file = state.store.find_media(&v.tenant, kelviq_store::MediaOwner::PlanFile, &plan.identifier, id).await?;
        if let Some(f) = file.filter(|f| f.enabled) {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// The links and downloadable files of the plans the customer has now.
async fn resources(state: &AppState, v: &Viewer, plans: &Plans, out: &mut String) -> ServiceResult<()> {
    let mut items = String::new();
    let mut sorted: Vec<_> = plans.values().collect();
    sorted.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    sorted.dedup_by(|a, b| a.identifier == b.identifier);
    for plan in sorted {
        for l in &plan.fields.links {
            let (Some(name), Some(url)) =
                (l.get("name").and_then(|n| n.as_str()), l.get("url").and_then(|u| u.as_str()))
            else {
                continue;
            };
            if url.starts_with("https://") || url.starts_with("http://") {
                let _ =
                    write!(items, "<li><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></li>", esc(url), esc(name));
            }
        }
        let files = state.store.list_media(&v.tenant, kelviq_store::MediaOwner::PlanFile, &plan.identifier).await?;
        for f in files.iter().filter(|f| f.enabled) {
            let _ = write!(
                items,
                "<li><a href=\"/portal/{}/files/{}\" download>{}</a> <span class=\"muted\">{}</span></li>",
                esc(&v.slug),
                f.id,
                esc(&f.name),
                size_text(f.size)
            );
        }
    }
    if !items.is_empty() {
        let _ = write!(
            out,
            "<section aria-labelledby=\"res\"><h2 id=\"res\">Downloads and links</h2><ul>{items}</ul></section>"
        );
    }
    Ok(())
}

fn size_text(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The page of a link that does not work (401).
pub fn signed_out(slug: &str) -> String {
    shell(
        "Link expired",
        &format!(
            "<h1>This link has expired</h1><p>Portal links work for a limited time and only for the account they were made \
             for. Ask for a new link from the app you bought from, or <a href=\"/portal/{}/sign-in\">sign in with your \
             email address</a>.</p>",
            esc(slug)
        ),
    )
}
