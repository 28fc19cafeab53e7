//! Signing in to the portal with a code sent by e-mail (no link from the
//! merchant needed): the customer types their address, receives a six-digit
//! code (10 minutes, 5 tries, then a 15-minute lock), types it, and gets a
//! portal session. Several customers sharing the address choose one. The
//! page never says whether an address is known.

use super::open_session;
use crate::error::ServiceResult;
use crate::routes::hosted::esc;
use crate::state::AppState;
use crate::storefront::look::{page, Brand, Layout};
use chrono::{DateTime, Utc};
use kelviq_core::signin::{new_code, normalize, PendingCode, LOCK_MINUTES, MAX_TRIES};
use kelviq_core::{Environment, Tenant};

/// The HMAC of a code for an address (a stolen table does not give codes).
fn code_hash(state: &AppState, tenant: &Tenant, email: &str, code: &str) -> String {
    let key = state.webhooks.key.derive("kelviq/portal-codes/v1");
    kelviq_core::signing::sign(&key, format!("{}:{}:{email}:{code}", tenant.org_id, tenant.env.as_str()).as_bytes())
}

/// The address as typed, checked and lower-cased.
pub fn address(typed: &str) -> Option<String> {
    let e = typed.trim().to_ascii_lowercase();
    (e.len() <= 254 && kelviq_core::validation::is_valid_email(&e)).then_some(e)
}

/// What asking for a code gives.
pub enum Asked {
    /// A code was sent if the address is a customer's (the page says the same either way).
    Sent,
    Locked(DateTime<Utc>),
}

/// Sends a code to an address that is a customer's. A new code keeps the
/// tries of the one it replaces, so asking again does not buy more tries.
pub async fn ask(
    state: &AppState,
    tenant: &Tenant,
    email: &str,
    org_name: &str,
    now: DateTime<Utc>,
) -> ServiceResult<Asked> {
    let pending = state.store.find_portal_code(tenant, email).await?;
    if let Some(until) = pending.as_ref().and_then(|p| p.locked(now)) {
        return Ok(Asked::Locked(until));
    }
    if state.store.customers_with_email(tenant, email).await?.is_empty() {
        return Ok(Asked::Sent);
    }
    let code = new_code();
    let mut fresh = PendingCode::new(code_hash(state, tenant, email, &code), now);
    if let Some(p) = pending.filter(|p| now < p.expires_at) {
        fresh.tries = p.tries;
    }
    state.store.put_portal_code(tenant, email, Some(&fresh), now).await?;
    let body = format!(
        "Your code to sign in to your {org_name} account is {code}.\n\n\
         It works for 10 minutes. If you did not ask for it, you can ignore this message.\n"
    );
    crate::mail::send(state, tenant, email, &format!("{code} is your {org_name} sign-in code"), &body).await?;
    Ok(Asked::Sent)
}

/// What typing a code gives.
pub enum Typed {
    /// The address's customers, each with a new portal session token.
    Accepted(Vec<(String, Option<String>, String)>),
    Wrong(i64),
    /// No code (expired, used) or locked.
    Refused(Option<DateTime<Utc>>),
    BadCode,
}

pub async fn verify(
    state: &AppState,
    tenant: &Tenant,
    email: &str,
    typed: &str,
    now: DateTime<Utc>,
) -> ServiceResult<Typed> {
    let Some(code) = normalize(typed) else { return Ok(Typed::BadCode) };
    let Some(claimed) = state.store.claim_code_try(tenant, email, now).await? else {
        let locked = state.store.find_portal_code(tenant, email).await?.and_then(|p| p.locked(now));
        return Ok(Typed::Refused(locked));
    };
    let given = code_hash(state, tenant, email, &code);
    if kelviq_core::keys::hashes_match(&given, &claimed.code_hash) {
        if !state.store.take_portal_code(tenant, email, &claimed.code_hash).await? {
            return Ok(Typed::Refused(None));
        }
        let mut sessions = Vec::new();
        for (customer_id, name) in state.store.customers_with_email(tenant, email).await? {
            let token = open_session(state, tenant, &customer_id, now).await?;
            sessions.push((customer_id, name, token));
        }
        return Ok(Typed::Accepted(sessions));
    }
    if claimed.tries >= MAX_TRIES {
        let until = now + chrono::Duration::minutes(LOCK_MINUTES);
        state.store.lock_portal_code(tenant, email, until).await?;
        return Ok(Typed::Refused(Some(until)));
    }
    Ok(Typed::Wrong(MAX_TRIES - claimed.tries))
}

/// `test` for the sandbox, else production.
pub fn environment(mode: Option<&str>) -> Environment {
    if mode == Some("test") {
        Environment::Sandbox
    } else {
        Environment::Production
    }
}

fn mode_field(env: Environment) -> &'static str {
    if env == Environment::Sandbox {
        "<input type=\"hidden\" name=\"mode\" value=\"test\">"
    } else {
        ""
    }
}

/// The page asking for an address (with a message, e.g. a lock).
pub fn email_page(slug: &str, brand: &Brand, env: Environment, error: Option<&str>) -> String {
    let error =
        error.map(|e| format!("<p id=\"error\" class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    page(
        &format!("Sign in to {}", brand.seller),
        Some(brand),
        Layout::Narrow,
        &format!(
            "<h1>Sign in</h1>{error}<p>We will e-mail you a code to sign in to your account.</p>\
             <form method=\"post\" action=\"/portal/{}/sign-in\">{}<label for=\"email\">Email address</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
             <button type=\"submit\" id=\"send\">Send me a code</button></form>",
            esc(slug),
            mode_field(env)
        ),
    )
}

/// The page asking for the code sent to `email`.
pub fn code_page(slug: &str, brand: &Brand, env: Environment, email: &str, error: Option<&str>) -> String {
    let error =
        error.map(|e| format!("<p id=\"error\" class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    page(
        &format!("Sign in to {}", brand.seller),
        Some(brand),
        Layout::Narrow,
        &format!(
            "<h1>Check your email</h1>{error}<p>If {} belongs to an account, we sent it a \
             six-digit code. It works for 10 minutes.</p><form method=\"post\" action=\"/portal/{}/sign-in/code\">{}\
             <input type=\"hidden\" name=\"email\" value=\"{}\"><label for=\"code\">Code</label>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"9\" required>\
             <button type=\"submit\" id=\"verify\">Sign in</button></form>",
            esc(email),
            esc(slug),
            mode_field(env),
            esc(email)
        ),
    )
}

/// The page where customers sharing an address choose one.
pub fn choose_page(slug: &str, brand: &Brand, sessions: &[(String, Option<String>, String)]) -> String {
    let mut items = String::new();
    for (id, name, token) in sessions {
        let label = name.clone().map(|n| format!("{n} ({id})")).unwrap_or_else(|| id.clone());
        items.push_str(&format!(
            "<li><a href=\"/portal/{}/?token={}\">{}</a></li>",
            esc(slug),
            esc(token),
            esc(&label)
        ));
    }
    page(
        &format!("Choose an account at {}", brand.seller),
        Some(brand),
        Layout::Narrow,
        &format!("<h1>Choose an account</h1><p>This address belongs to several accounts.</p><ul>{items}</ul>"),
    )
}
