//! Opening a checkout session: pricing what is asked and keeping it, open
//! for a day, for the hosted page (or the sandbox helper) to complete.

use super::{feature_identifiers, published_plan, quote_plan};
use crate::clock::tenant_now;
use crate::discounts::redeem::{self, NotTaken, Trying};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::Duration;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{CheckoutSession, FeatureQuantity, Line, Quote, SessionStatus};
use kelviq_core::ids::random_alphanumeric;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::Tenant;
use kelviq_store::{DocColumns, DocTable, Work};
use serde_json::Value;

/// How long a checkout session stays open.
pub const SESSION_LIFETIME_HOURS: i64 = 24;

/// A checkout session asked for, its fields checked.
#[derive(Debug, Clone)]
pub struct NewCheckout {
    pub plan_identifier: String,
    pub period: ChargePeriod,
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub features: Vec<FeatureQuantity>,
    /// Trial days overriding the plan's.
    pub trial_days: Option<i64>,
    pub currency: Option<String>,
    /// INCLUSIVE or EXCLUSIVE.
    pub tax_behavior: Option<String>,
    /// A pay-what-you-want amount, in minor units of `currency`.
    pub custom_minor: Option<i64>,
    pub default_billing_country: Option<String>,
    pub metadata: Value,
    pub discounts_enabled: bool,
    /// A discount code to apply (held for the session while it is open).
    pub discount_code: Option<String>,
    pub lock_email: bool,
    pub ip_address: Option<String>,
    /// The country of `ip_address` (a server key's), else of the request.
    pub visitor_country: Option<String>,
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
}

/// Prices and stores a new open checkout session.
pub async fn open_session(state: &AppState, tenant: &Tenant, new: NewCheckout) -> ServiceResult<CheckoutSession> {
    let plan = published_plan(state, tenant, &new.plan_identifier).await?;
    let identifiers = feature_identifiers(state, tenant).await?;
    // The buyer's country: the billing country given, else the address's.
    let country = new.default_billing_country.clone().or(new.visitor_country.clone());
    let (plan, price_local) = localized(state, tenant, &plan, country.as_deref()).await?;
    let mut quote = quote_plan(&plan, new.period, new.currency.as_deref(), &new.features, &identifiers)?;
    let local_quoted = price_local
        .filter(|_| new.custom_minor.is_none() && plan.prices.first().is_some_and(|p| p.currency == quote.currency));
    if let (Some(minor), Some(c)) = (new.custom_minor, &new.currency) {
        quote = Quote {
            currency: c.clone(),
            lines: vec![Line::plain(plan.name.clone(), minor)],
            total_minor: minor,
            trial_days: 0,
            tax_behavior: new.tax_behavior.clone().unwrap_or_default(),
            free: false,
        };
    } else if let Some(t) = &new.tax_behavior {
        quote.tax_behavior = t.clone();
    }
    let trial_days = match new.trial_days {
        Some(_) if !new.period.is_recurring() => {
            return Err(ServiceError::field("trial_period", "A one-time purchase has no trial."));
        }
        Some(d) => d,
        None => quote.trial_days,
    };
    let now = tenant_now(state, tenant).await?;
    // A known customer pre-fills the page.
    let known = match &new.customer_id {
        Some(id) => state.store.find_customer(tenant, id).await?,
        None => None,
    };
    let mut session = CheckoutSession {
        id: format!("cs_{}", random_alphanumeric(45)),
        status: SessionStatus::Open,
        plan_id: plan.id,
        plan_identifier: plan.identifier.clone(),
        plan_name: plan.name.clone(),
        plan_version: plan.version,
        product_id: plan.product_id,
        charge_period: new.period,
        quote,
        trial_days,
        customer_name: new.name.or(known.as_ref().and_then(|c| c.name.clone())),
        customer_email: new.email.or(known.as_ref().and_then(|c| c.email.clone())),
        customer_id: new.customer_id,
        success_url: new.success_url,
        cancel_url: new.cancel_url,
        features: new.features,
        metadata: new.metadata,
        discounts_enabled: new.discounts_enabled,
        discount_code: None,
        discount: None,
        price_country: local_quoted.and(country.clone()),
        price_strict: local_quoted.unwrap_or(false),
        lock_email: new.lock_email,
        default_billing_country: new.default_billing_country,
        billing_country: None,
        ip_address: new.ip_address,
        offering_id: new.offering_id,
        pricing_table_id: new.pricing_table_id,
        rule_id: new.rule_id,
        custom_amount: new.custom_minor.is_some(),
        created_at: now,
        expires_at: now + Duration::hours(SESSION_LIFETIME_HOURS),
        modified_at: now,
        order_id: None,
        subscription_id: None,
        payment_method_id: None,
        log: Vec::new(),
        handed_off: None,
    };
    session.log("checkout_session.created", "Checkout session created", "success", now);
    let mut w = state.store.begin(tenant).await?;
    if let Some(code) = &new.discount_code {
        hold_code(&mut w, &mut session, code, now).await?;
    }
    let cols = DocColumns {
        status: Some(SessionStatus::Open.as_str().into()),
        created_at: now,
        modified_at: now,
        expires_at: Some(session.expires_at),
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, &session.id, &session, &cols).await?;
    w.commit().await?;
    crate::http::reqlog::in_span(
        || tracing::info!(session = %session.id, plan = %session.plan_identifier, "checkout session created"),
    );
    Ok(session)
}

/// A plan as a buyer in `country` pays for it (its local prices first), and
/// whether a local price applies (and holds only for buyers billed there).
pub async fn localized(
    state: &AppState,
    tenant: &Tenant,
    plan: &kelviq_core::plans::PlanVersion,
    country: Option<&str>,
) -> ServiceResult<(kelviq_core::plans::PlanVersion, Option<bool>)> {
    if country.is_none() || !has_local_prices(plan) {
        return Ok((plan.clone(), None));
    }
    Ok(localize(plan, country, &crate::promotions::groups(state, tenant).await?))
}

/// Whether any price of a plan has local prices.
pub fn has_local_prices(plan: &kelviq_core::plans::PlanVersion) -> bool {
    plan.prices.iter().any(|p| !p.local_prices.is_empty())
}

/// [`localized`] with the environment's country groups already read.
pub fn localize(
    plan: &kelviq_core::plans::PlanVersion,
    country: Option<&str>,
    groups: &[kelviq_core::promotions::CountryGroup],
) -> (kelviq_core::plans::PlanVersion, Option<bool>) {
    let group_of = |c: &str| groups.iter().find(|g| g.countries.iter().any(|x| x == c)).map(|g| g.name.clone());
    let l = plan.localized(country, &group_of);
    (l.plan, l.local)
}

/// Applies a code to a new session and holds one of its redemptions until
/// the session expires.
async fn hold_code(w: &mut Work, session: &mut CheckoutSession, code: &str, now: DateTime<Utc>) -> ServiceResult<()> {
    let trying = Trying::of_session(session, session.customer_id.as_deref(), now);
    let checked = match redeem::session_takes_codes(session) {
        Ok(()) => redeem::check(w, code, &trying).await,
        Err(e) => Err(e),
    };
    let terms = match checked {
        Ok(terms) => terms,
        Err(NotTaken::Refused(m)) => return Err(ServiceError::field("discount_code", m)),
        Err(NotTaken::Store(e)) => return Err(e.into()),
    };
    w.hold_discount(terms.discount_id, session.customer_id.as_deref(), &session.id, session.expires_at, now).await?;
    session.discount_code = Some(terms.code.clone());
    session.discount = Some(terms);
    Ok(())
}
