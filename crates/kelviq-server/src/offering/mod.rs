//! A product's offering (`GET /monetization/product-offering/{id}/`):
//! what a pricing page or paywall renders — the product's visible
//! published plans in display order, their prices in the buyer's currency,
//! their features, the billing periods, and the customer's subscription.

use crate::error::{ServiceError, ServiceResult};
use crate::geo::Visitor;
use crate::state::AppState;
use crate::wire::plans::{PlanEntitlementOut, Provenance};
use kelviq_core::billing::Subscription;
use kelviq_core::catalog::Product;
use kelviq_core::plans::{ChargePeriod, PlanVersion, Price};
use kelviq_core::Tenant;
use kelviq_store::{DocTable, Filter};

/// What is asked.
#[derive(Debug, Clone, Default)]
pub struct OfferingAsk {
    pub customer_id: Option<String>,
    /// Only these plans (identifiers); `None`: every visible one.
    pub plans_enabled: Option<Vec<String>>,
}

/// A plan as offered: its version, its price in the offering's currency
/// and what it grants.
#[derive(Debug, Clone)]
pub struct OfferedPlan {
    pub plan: PlanVersion,
    /// The price the buyer pays (a local price for their country, if any).
    pub price: Option<Price>,
    /// The plan's own price, in the base currency.
    pub original: Option<Price>,
    pub features: Vec<PlanEntitlementOut>,
    /// The name of the plan it builds on, if any.
    pub base_plan_name: Option<String>,
}

/// The customer's standing with the product.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    pub exists: bool,
    pub current: Option<Subscription>,
    pub has_previous: bool,
}

#[derive(Debug, Clone)]
pub struct Offering {
    pub product: Product,
    pub country: Option<String>,
    /// The buyer's currency (a local price's, else the base currency).
    pub currency: String,
    /// The currency of the plans' own prices.
    pub base_currency: String,
    pub plans: Vec<OfferedPlan>,
    /// Charge periods any plan offers, in order.
    pub periods: Vec<ChargePeriod>,
    pub standing: Standing,
}

/// The price a plan offers in `currency`: its enabled price there, else
/// its free one, else its first enabled one.
fn price_in(plan: &PlanVersion, currency: &str) -> Option<Price> {
    let enabled = || plan.prices.iter().filter(|p| p.enabled);
    enabled()
        .find(|p| p.currency.eq_ignore_ascii_case(currency))
        .or_else(|| enabled().find(|p| !p.is_paid()))
        .or_else(|| enabled().next())
        .cloned()
}

pub async fn offering(
    state: &AppState,
    tenant: &Tenant,
    product_id: &str,
    ask: OfferingAsk,
    visitor: &Visitor,
) -> ServiceResult<Option<Offering>> {
    let Ok(id) = uuid::Uuid::parse_str(product_id.trim()) else { return Ok(None) };
    let Some(product) = state.store.find_product(tenant, &id.to_string()).await? else { return Ok(None) };
    let mut plans = Vec::new();
    for identifier in state.store.published_plan_identifiers(tenant, product.id).await? {
        if ask.plans_enabled.as_ref().is_some_and(|only| !only.contains(&identifier)) {
            continue;
        }
        if let Some(plan) = state.store.find_published_plan(tenant, &identifier).await? {
            if plan.fields.is_visible || ask.plans_enabled.is_some() {
                plans.push(plan);
            }
        }
    }
    // Display order: the plan's ordering, then the order plans were made.
    plans.sort_by_key(|p| p.fields.ordering.unwrap_or(i64::MAX));
    let base_currency = plans
        .iter()
        .flat_map(|p| p.prices.iter().filter(|x| x.enabled && x.is_paid()))
        .map(|x| x.currency.clone())
        .next()
        .unwrap_or_else(|| "USD".into());
    let country = visitor.country.as_deref();
    // The country groups, read once, and only when a local price may apply.
    let groups = match country {
        Some(_) if plans.iter().any(crate::selling::sessions::has_local_prices) => {
            crate::promotions::groups(state, tenant).await?
        }
        _ => Vec::new(),
    };
    let mut currency = base_currency.clone();
    let mut offered = Vec::with_capacity(plans.len());
    for plan in plans {
        let mut features = Vec::new();
        for e in state.store.effective_entitlements(tenant, &plan).await? {
            let feature = state.store.find_feature(tenant, &e.feature_id.to_string()).await?.ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!("plan grants missing feature {}", e.feature_id))
            })?;
            let from = Provenance { inherited: e.inherited, overridden: e.overridden };
            features.push(PlanEntitlementOut::new(feature, &e.details, from));
        }
        let base_plan_name = match &plan.fields.parent {
            Some(parent) => state.store.find_plan(tenant, parent, None).await?.map(|p| p.name),
            None => None,
        };
        let original = price_in(&plan, &base_currency);
        let (local_plan, local) = crate::selling::sessions::localize(&plan, country, &groups);
        let price = match local {
            Some(_) => {
                let p = local_plan.prices.first().cloned();
                currency = p.as_ref().map_or(currency, |p| p.currency.clone());
                p
            }
            None => original.clone(),
        };
        offered.push(OfferedPlan { price, original, plan, features, base_plan_name });
    }
    let periods = ChargePeriod::ALL
        .into_iter()
        .filter(|period| {
            offered.iter().any(|o| {
                o.price.iter().flat_map(|p| &p.charge_catalog_price).any(|g| g.charge_for(period.as_str()).is_some())
            })
        })
        .collect();
    let standing = match ask.customer_id.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => standing(state, tenant, c, product.id).await?,
        None => Standing::default(),
    };
    let country = visitor.country.clone();
    Ok(Some(Offering { product, country, currency, base_currency, plans: offered, periods, standing }))
}

async fn standing(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    product: uuid::Uuid,
) -> ServiceResult<Standing> {
    if state.store.find_customer(tenant, customer_id).await?.is_none() {
        return Ok(Standing::default());
    }
    let filters = [Filter::Eq("customer_id", customer_id.to_string())];
    let subs: Vec<Subscription> = state.store.list_docs(DocTable::Subscriptions, tenant, &filters, 200, 0).await?;
    let of_product: Vec<Subscription> = subs.into_iter().filter(|s| s.product_id == product).collect();
    let current = of_product.iter().find(|s| s.status.grants()).cloned();
    Ok(Standing { exists: true, has_previous: of_product.iter().any(|s| !s.status.grants()), current })
}
