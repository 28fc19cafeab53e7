//! A product's offering as the API shows it (the published
//! `ProductOfferingResponse`).

use crate::error::ServiceResult;
use crate::offering::{OfferedPlan, Offering};
use crate::wire::plans::{ChargeGroupOut, PlanEntitlementOut, PriceDataOut, PriceOut, TierOut};
use kelviq_core::money::currency_symbol;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::Tenant;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// One charge period of a plan's price, with the per-feature prices of that period.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingChargeOut {
    pub id: Option<String>,
    pub charge_period: Option<String>,
    pub tiers: Vec<TierOut>,
    pub price_data: PriceDataOut,
    #[schema(value_type = Object)]
    pub details: Value,
    #[schema(value_type = Object)]
    pub advanced: Value,
    /// The plan's per-feature charges for this period.
    pub feature_quantity_price: Vec<ChargeGroupOut>,
}

/// A plan's price in the offering's currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingPriceOut {
    pub id: Option<String>,
    /// FREE, PAID or CUSTOM.
    pub price_type: Option<String>,
    pub free_trial: Option<bool>,
    pub trial_period: Option<i64>,
    pub currency: String,
    pub enabled: Option<bool>,
    pub charges: Vec<OfferingChargeOut>,
}

impl From<PriceOut> for OfferingPriceOut {
    fn from(p: PriceOut) -> Self {
        let (base, per_feature): (Vec<ChargeGroupOut>, Vec<ChargeGroupOut>) =
            p.charge_catalog_price.into_iter().partition(|g| g.feature.is_none());
        let charges = base
            .into_iter()
            .flat_map(|g| g.charges)
            .map(|c| {
                let same_period = |g: &ChargeGroupOut| {
                    let mut g = g.clone();
                    g.charges.retain(|x| x.charge_period == c.charge_period);
                    (!g.charges.is_empty()).then_some(g)
                };
                OfferingChargeOut {
                    id: None,
                    charge_period: c.charge_period.clone(),
                    tiers: c.tiers,
                    price_data: c.price_data,
                    details: json!({}),
                    advanced: c.advanced,
                    feature_quantity_price: per_feature.iter().filter_map(same_period).collect(),
                }
            })
            .collect();
        OfferingPriceOut {
            id: p.id,
            price_type: p.price_type,
            free_trial: p.free_trial,
            trial_period: p.trial_period,
            currency: p.currency,
            enabled: p.enabled,
            charges,
        }
    }
}

/// A plan as a pricing page shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingPlanOut {
    pub name: String,
    pub description: String,
    pub identifier: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub is_visible: bool,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The identifier of the plan it builds on.
    pub base_plan: Option<String>,
    pub price: Option<OfferingPriceOut>,
    /// The plan's own price per charge period, in the base currency (`{"MONTHLY": 19.0}`).
    #[schema(value_type = Object)]
    pub original_price: Map<String, Value>,
    pub features: Vec<PlanEntitlementOut>,
    /// `metadata.highlight` is true.
    pub should_highlight: bool,
    pub enabled: bool,
    pub display_name: String,
    pub display_description: String,
    /// "Everything in {base plan}, plus", or "".
    pub includes: String,
}

fn plan_out(o: OfferedPlan) -> ServiceResult<OfferingPlanOut> {
    let price = o.price.as_ref().map(PriceOut::new).transpose()?;
    let original = o.original.as_ref().map(PriceOut::new).transpose()?;
    let mut original_price = Map::new();
    for g in original.iter().flat_map(|p| &p.charge_catalog_price).filter(|g| g.feature.is_none()) {
        for c in &g.charges {
            if let (Some(period), Some(amount)) = (&c.charge_period, &c.price_data.amount) {
                original_price.insert(period.clone(), Value::Number(amount.clone()));
            }
        }
    }
    let f = &o.plan.fields;
    Ok(OfferingPlanOut {
        name: o.plan.name.clone(),
        description: f.description.clone(),
        identifier: o.plan.identifier.clone(),
        details: json!({}),
        is_visible: f.is_visible,
        metadata: f.metadata.clone(),
        base_plan: f.parent.clone(),
        price: price.map(OfferingPriceOut::from),
        original_price,
        features: o.features,
        should_highlight: f.metadata.get("highlight").and_then(Value::as_bool).unwrap_or(false),
        enabled: true,
        display_name: o.plan.name.clone(),
        display_description: f.description.clone(),
        includes: o.base_plan_name.map(|b| format!("Everything in {b}, plus")).unwrap_or_default(),
    })
}

/// The customer's subscription to the product.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingSubscriptionOut {
    pub has_previous_subscription: bool,
    pub plan_identifier: Option<String>,
    pub subscription_id: Option<String>,
    pub charge_period: Option<String>,
}

/// A charge period some plan offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingPeriodOut {
    pub enabled: bool,
    pub display_name: String,
    pub charge_period: String,
    pub promo_caption: String,
}

fn period_name(p: ChargePeriod) -> &'static str {
    match p {
        ChargePeriod::OneTime => "One-time",
        ChargePeriod::Daily => "Daily",
        ChargePeriod::Weekly => "Weekly",
        ChargePeriod::TwentyEightDays => "Every 28 days",
        ChargePeriod::Monthly => "Monthly",
        ChargePeriod::ThreeMonths => "Quarterly",
        ChargePeriod::SixMonths => "Every 6 months",
        ChargePeriod::Yearly => "Yearly",
    }
}

/// `GET /monetization/product-offering/{product_id}/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingOut {
    pub organization_id: i64,
    /// The buyer's country (null when unknown).
    pub country_code: Option<String>,
    pub pricing_locale: String,
    pub currency_code: String,
    pub currency_symbol: String,
    /// Always 1: local prices are set per country, never converted at live rates.
    #[schema(value_type = f64)]
    pub currency_conversion_rate: Value,
    pub base_currency_code: String,
    pub base_currency_symbol: String,
    pub plans: Vec<OfferingPlanOut>,
    pub subscription: OfferingSubscriptionOut,
    pub is_customer_exists: bool,
    pub billing_periods: Vec<BillingPeriodOut>,
}

impl OfferingOut {
    pub fn new(tenant: &Tenant, o: Offering) -> ServiceResult<Self> {
        let symbol = currency_symbol(&o.currency);
        let base_symbol = currency_symbol(&o.base_currency);
        let current = o.standing.current.as_ref();
        Ok(OfferingOut {
            organization_id: tenant.org_seq,
            pricing_locale: format!("en-{}", o.country.as_deref().unwrap_or("US")),
            country_code: o.country,
            currency_code: o.currency.clone(),
            currency_symbol: symbol.clone(),
            currency_conversion_rate: json!(1.0),
            base_currency_code: o.base_currency,
            base_currency_symbol: base_symbol,
            plans: o.plans.into_iter().map(plan_out).collect::<ServiceResult<_>>()?,
            subscription: OfferingSubscriptionOut {
                has_previous_subscription: o.standing.has_previous,
                plan_identifier: current.map(|s| s.plan_identifier.clone()),
                subscription_id: current.map(|s| s.id.to_string()),
                charge_period: current.map(|s| s.charge_period.as_str().to_string()),
            },
            is_customer_exists: o.standing.exists,
            billing_periods: o
                .periods
                .into_iter()
                .map(|p| BillingPeriodOut {
                    enabled: true,
                    display_name: period_name(p).into(),
                    charge_period: p.as_str().into(),
                    promo_caption: String::new(),
                })
                .collect(),
        })
    }
}
