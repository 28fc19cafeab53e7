//! Plan and quantity changes from the portal: which plans a customer may move
//! to (the merchant's storefront settings), what a change costs (the very
//! numbers `POST /subscriptions/{id}/update/preview/` answers, from the same
//! core function), and the change itself through the API's service.

use super::Viewer;
use crate::error::{ServiceError, ServiceResult};
use crate::selling::{self, ChangeRequest};
use crate::state::AppState;
use kelviq_core::billing::{preview_change, ChangePreview, FeatureQuantity, Quote, Subscription};
use kelviq_core::plans::ChargePeriod;
use kelviq_core::storefront::StorefrontSettings;
use kelviq_store::DocTable;
use std::collections::HashMap;

/// A plan and period a subscription may change to, priced for it.
#[derive(Debug, Clone)]
pub struct Choice {
    pub identifier: String,
    pub name: String,
    pub period: ChargePeriod,
    pub quote: Quote,
}

impl Choice {
    /// The form value naming this choice.
    pub fn value(&self) -> String {
        format!("{}|{}", self.identifier, self.period.as_str())
    }
}

/// What the customer asked for: a plan and period, and quantities.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub choice: Option<(String, ChargePeriod)>,
    pub quantities: Vec<FeatureQuantity>,
}

impl Asked {
    /// Reads `choice=<plan>|<PERIOD>` and `qty:<feature>=<n>` pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Asked, String> {
        let mut asked = Asked::default();
        for (k, v) in pairs {
            if k == "choice" {
                let (plan, period) = v.rsplit_once('|').ok_or("Choose a plan.")?;
                let period = ChargePeriod::parse(period).filter(|p| p.is_recurring()).ok_or("Choose a plan.")?;
                asked.choice = Some((plan.to_string(), period));
            } else if let Some(feature) = k.strip_prefix("qty:") {
                let n: u64 =
                    v.trim().parse().map_err(|_| format!("The quantity of {feature} must be a whole number."))?;
                if n > 1_000_000 {
                    return Err(format!("The quantity of {feature} must be at most 1,000,000."));
                }
                if feature.len() <= 255 && !feature.chars().any(char::is_control) {
                    asked.quantities.push(FeatureQuantity { identifier: feature.to_string(), quantity: n });
                }
            }
        }
        Ok(asked)
    }
}

/// The customer's subscription, if it is theirs and can change.
pub async fn changeable(state: &AppState, v: &Viewer, id: &str) -> ServiceResult<Subscription> {
    let s: Option<Subscription> = state.store.find_doc(DocTable::Subscriptions, &v.tenant, id).await?;
    let s = s.filter(|s| s.customer_id == v.customer_id).ok_or_else(ServiceError::not_found)?;
    selling::check_changeable(&s)?;
    Ok(s)
}

/// The plans (with each recurring period they have a price for in the
/// subscription's currency) the subscription may change to.
pub async fn choices(
    state: &AppState,
    v: &Viewer,
    settings: &StorefrontSettings,
    s: &Subscription,
) -> ServiceResult<Vec<Choice>> {
    if !settings.allow_plan_changes {
        return Ok(Vec::new());
    }
    let product_plans = state.store.published_plan_identifiers(&v.tenant, s.product_id).await?;
    let candidates = settings.allowed_plans.clone().unwrap_or_else(|| product_plans.clone());
    let identifiers = selling::feature_identifiers(state, &v.tenant).await?;
    let mut out = Vec::new();
    for identifier in candidates.iter().filter(|i| settings.may_change_to(i, &product_plans)) {
        let Some(plan) = state.store.find_published_plan(&v.tenant, identifier).await? else { continue };
        for period in ChargePeriod::ALL.into_iter().filter(|p| p.is_recurring()) {
            let features = carried(&plan, period, s, &identifiers);
            if let Ok(quote) = selling::quote_plan(&plan, period, Some(&s.currency), &features, &identifiers) {
                if !quote.free && quote.currency == s.currency {
                    out.push(Choice { identifier: plan.identifier.clone(), name: plan.name.clone(), period, quote });
                }
            }
        }
    }
    Ok(out)
}

/// The quantities of what the subscription's plan sells per unit (the
/// plan's minimum where none was bought).
pub async fn quantities(state: &AppState, v: &Viewer, s: &Subscription) -> ServiceResult<Vec<FeatureQuantity>> {
    let Some(plan) = state.store.find_plan_version(&v.tenant, s.plan_id).await? else { return Ok(Vec::new()) };
    let identifiers = selling::feature_identifiers(state, &v.tenant).await?;
    let Ok(quote) = selling::quote_plan(&plan, s.charge_period, Some(&s.currency), &s.features, &identifiers) else {
        return Ok(Vec::new());
    };
    Ok(quote
        .lines
        .iter()
        .filter_map(|l| Some(FeatureQuantity { identifier: l.feature.clone()?, quantity: l.quantity? }))
        .collect())
}

/// The subscription's quantities the plan also sells per unit.
fn carried(
    plan: &kelviq_core::plans::PlanVersion,
    period: ChargePeriod,
    s: &Subscription,
    identifiers: &HashMap<String, String>,
) -> Vec<FeatureQuantity> {
    let Ok(bare) = selling::quote_plan(plan, period, Some(&s.currency), &[], identifiers) else { return Vec::new() };
    s.features
        .iter()
        .filter(|f| bare.lines.iter().any(|l| l.feature.as_deref() == Some(&f.identifier)))
        .cloned()
        .collect()
}

/// The change a customer asked for, checked against the settings.
pub async fn request(
    state: &AppState,
    v: &Viewer,
    settings: &StorefrontSettings,
    s: &Subscription,
    asked: &Asked,
) -> ServiceResult<ChangeRequest> {
    let (identifier, period) = asked.choice.clone().unwrap_or((s.plan_identifier.clone(), s.charge_period));
    let moves = identifier != s.plan_identifier || period != s.charge_period;
    if moves {
        let product_plans = state.store.published_plan_identifiers(&v.tenant, s.product_id).await?;
        if !settings.may_change_to(&identifier, &product_plans) {
            return Err(ServiceError::field("plan_identifier", "This plan is not offered here."));
        }
    }
    let plan = selling::published_plan(state, &v.tenant, &identifier).await?;
    let identifiers = selling::feature_identifiers(state, &v.tenant).await?;
    let mut features = carried(&plan, period, s, &identifiers);
    if !asked.quantities.is_empty() {
        if !settings.allow_quantity_changes {
            return Err(ServiceError::field("features", "Quantities cannot be changed here."));
        }
        for q in &asked.quantities {
            match features.iter_mut().find(|f| f.identifier == q.identifier) {
                Some(f) => f.quantity = q.quantity,
                None => features.push(q.clone()),
            }
        }
    }
    if !moves && features == quantities(state, v, s).await? {
        return Err(ServiceError::BadRequest("That is the plan you have now.".into()));
    }
    selling::plan_change_request(state, &v.tenant, s, &identifier, period, features).await
}

/// What the change costs, as `update/preview/` answers it.
pub fn preview(s: &Subscription, req: &ChangeRequest, v: &Viewer) -> ChangePreview {
    preview_change(s, &req.quote, req.period, req.proration, false, v.now)
}

/// Makes the change through the API's service.
pub async fn apply(
    state: &AppState,
    v: &Viewer,
    settings: &StorefrontSettings,
    id: &str,
    asked: &Asked,
) -> ServiceResult<()> {
    let s = changeable(state, v, id).await?;
    let req = request(state, v, settings, &s, asked).await?;
    selling::change_subscription(state, &v.tenant, id, req).await?;
    Ok(())
}

/// A service error as a sentence for the page, when it is the customer's to fix.
pub fn message(e: &ServiceError) -> Option<String> {
    match e {
        ServiceError::Fields(f) | ServiceError::FieldConflict(f) => {
            Some(f.fields().values().flatten().cloned().collect::<Vec<_>>().join(" "))
        }
        ServiceError::BadRequest(m) | ServiceError::Error(m) | ServiceError::Conflict(m) => Some(m.clone()),
        _ => None,
    }
}
