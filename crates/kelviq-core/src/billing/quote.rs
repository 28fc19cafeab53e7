//! What a plan costs for one period: its lines and total.

use super::{LineKind, MeteredCharge};
use crate::money::{PriceModel, Tier, TierShare};
use crate::plans::{Charge, ChargePeriod, PlanVersion, Price};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A quantity asked for a feature (seats and other purchased units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureQuantity {
    pub identifier: String,
    pub quantity: u64,
}

/// One line of what a plan costs for one period, and of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub description: String,
    pub amount_minor: i64,
    /// The feature identifier for per-unit lines.
    pub feature: Option<String>,
    pub quantity: Option<u64>,
    #[serde(default)]
    pub kind: LineKind,
    /// The price of one unit in millionths of a minor unit, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_micro: Option<i64>,
    /// The period the line charges for (usage: the period it was used in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<DateTime<Utc>>,
    /// A usage line's breakdown by tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierShare>,
}

impl Line {
    /// A base line (not per unit).
    pub fn plain(description: impl Into<String>, amount_minor: i64) -> Line {
        Line::of_kind(LineKind::Base, description, amount_minor)
    }

    /// A line of `kind` that is not per unit.
    pub fn of_kind(kind: LineKind, description: impl Into<String>, amount_minor: i64) -> Line {
        Line {
            description: description.into(),
            amount_minor,
            feature: None,
            quantity: None,
            kind,
            unit_micro: None,
            period_start: None,
            period_end: None,
            tiers: Vec::new(),
        }
    }

    /// The line with the period it charges for.
    pub fn for_period(mut self, start: DateTime<Utc>, end: DateTime<Utc>) -> Line {
        (self.period_start, self.period_end) = (Some(start), Some(end));
        self
    }
}

/// What a plan costs for one period of a charge period, in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub currency: String,
    pub lines: Vec<Line>,
    pub total_minor: i64,
    /// Free-trial days the price offers (0: none).
    pub trial_days: i64,
    pub tax_behavior: String,
    pub free: bool,
}

/// Why a plan cannot be quoted; the field the caller got wrong and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteError {
    pub field: &'static str,
    pub message: String,
}

pub(super) fn quote_err(field: &'static str, message: impl Into<String>) -> QuoteError {
    QuoteError { field, message: message.into() }
}

/// The price model of a charge of a feature group.
pub(super) fn charge_model(group_model: &str, charge: &Charge) -> PriceModel {
    let amount = charge.amount_minor.unwrap_or(0);
    let tiers = || -> Vec<Tier> {
        charge
            .tiers
            .iter()
            .flatten()
            .map(|t| Tier { up_to: t.up_to, unit_micro: t.unit_micro, flat_minor: t.flat_minor })
            .collect()
    };
    match group_model {
        "PACKAGE" => PriceModel::Package { block_size: charge.block_size.unwrap_or(1), block_minor: amount },
        "TIERED" => PriceModel::Graduated(tiers()),
        "VOLUME" => PriceModel::Volume(tiers()),
        "STAIRSTEP" => PriceModel::StairStep(tiers()),
        _ => PriceModel::Flat { unit_micro: amount.saturating_mul(1_000_000) },
    }
}

/// Prices `plan` for `period` in `currency` (the plan's first paid currency
/// when `None`), with `quantities` for per-unit features. `feature_identifier`
/// maps a stored feature id to its identifier.
pub fn quote(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: Option<&str>,
    quantities: &[FeatureQuantity],
    feature_identifier: &dyn Fn(&str) -> Option<String>,
) -> Result<Quote, QuoteError> {
    let enabled: Vec<&Price> = plan.prices.iter().filter(|p| p.enabled).collect();
    if enabled.is_empty() {
        return Err(quote_err("plan_identifier", "This plan has no price."));
    }
    let wanted = currency.map(str::to_ascii_uppercase);
    let price = match &wanted {
        Some(c) => enabled
            .iter()
            .find(|p| p.currency == *c && p.is_paid())
            .or_else(|| enabled.iter().find(|p| !p.is_paid()))
            .ok_or_else(|| quote_err("currency_code", format!("This plan has no price in {c}.")))?,
        None => enabled.iter().find(|p| p.is_paid()).or(enabled.first()).expect("not empty"),
    };
    let currency = price.currency.clone();
    let tax_behavior = price.tax_behavior.clone().unwrap_or_else(|| "UNSPECIFIED".into());
    if !price.is_paid() {
        if period != ChargePeriod::OneTime {
            return Err(quote_err("charge_period", "This plan is free: use the charge period ONE_TIME."));
        }
        return Ok(Quote { currency, lines: Vec::new(), total_minor: 0, trial_days: 0, tax_behavior, free: true });
    }
    let mut lines = Vec::new();
    let mut offered = false;
    let mut used_features = Vec::new();
    for group in &price.charge_catalog_price {
        let Some(charge) = group.charge_for(period.as_str()) else {
            continue;
        };
        offered = true;
        match group.feature.as_deref() {
            None => lines.push(Line::plain(plan.name.clone(), charge.amount_minor.unwrap_or(0))),
            Some(feature_id) => {
                if group.payment_type.as_deref() == Some("PAY_AS_YOU_GO") {
                    continue; // billed in arrears from metered usage
                }
                let identifier = feature_identifier(feature_id).unwrap_or_else(|| feature_id.to_string());
                let min = charge.advanced.as_ref().and_then(|a| a.min_quantity);
                let max = charge.advanced.as_ref().and_then(|a| a.max_quantity);
                let asked = quantities.iter().find(|q| q.identifier == identifier).map(|q| q.quantity);
                let quantity = asked.or(min).unwrap_or(0);
                if min.is_some_and(|m| quantity < m) || max.is_some_and(|m| quantity > m) {
                    return Err(quote_err(
                        "features",
                        format!(
                            "The quantity of {identifier} must be from {} to {}.",
                            min.unwrap_or(0),
                            max.map_or("unlimited".to_string(), |m| m.to_string())
                        ),
                    ));
                }
                used_features.push(identifier.clone());
                let model = charge_model(group.price_model.as_deref().unwrap_or("FLAT"), charge);
                let amount = model.charge(quantity);
                lines.push(Line {
                    feature: Some(identifier.clone()),
                    quantity: Some(quantity),
                    unit_micro: model.unit_micro(),
                    ..Line::of_kind(LineKind::Quantity, format!("{identifier} × {quantity}"), amount)
                });
            }
        }
    }
    if !offered {
        return Err(quote_err("charge_period", format!("This plan has no {} price.", period.as_str())));
    }
    if let Some(q) = quantities.iter().find(|q| !used_features.contains(&q.identifier)) {
        return Err(quote_err("features", format!("{} has no per-unit price on this plan.", q.identifier)));
    }
    let total_minor = lines.iter().map(|l| l.amount_minor).sum();
    let trial_days = if price.free_trial && period.is_recurring() { price.trial_period.unwrap_or(0) } else { 0 };
    Ok(Quote { currency, lines, total_minor, trial_days, tax_behavior, free: false })
}

/// The feature ids a plan bills in arrears (pay-as-you-go), in any price.
pub fn pay_as_you_go_features(plan: &PlanVersion) -> Vec<String> {
    let mut ids: Vec<String> = plan
        .prices
        .iter()
        .filter(|p| p.enabled)
        .flat_map(|p| &p.charge_catalog_price)
        .filter(|g| g.payment_type.as_deref() == Some("PAY_AS_YOU_GO"))
        .filter_map(|g| g.feature.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `plan`'s enabled paid price in `currency`.
pub(super) fn paid_price<'p>(plan: &'p PlanVersion, currency: &str) -> Option<&'p crate::plans::Price> {
    plan.prices.iter().find(|p| p.enabled && p.is_paid() && p.currency.eq_ignore_ascii_case(currency))
}

/// The pay-as-you-go charges of `plan`'s price in `currency` for `period`:
/// each metered feature (by identifier) and how its usage is priced.
pub fn metered_charges(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: &str,
    feature_identifier: &dyn Fn(&str) -> Option<String>,
) -> Vec<MeteredCharge> {
    let Some(price) = paid_price(plan, currency) else { return Vec::new() };
    price
        .charge_catalog_price
        .iter()
        .filter(|g| g.payment_type.as_deref() == Some("PAY_AS_YOU_GO"))
        .filter_map(|g| {
            let charge = g.charge_for(period.as_str())?;
            let feature = g.feature.as_deref()?;
            Some(MeteredCharge {
                feature: feature_identifier(feature).unwrap_or_else(|| feature.to_string()),
                model: charge_model(g.price_model.as_deref().unwrap_or("FLAT"), charge),
                bill_trial_usage: g.bill_trial_usage,
            })
        })
        .collect()
}

/// The `taxBehavior` of `plan`'s price in `currency` (None: UNSPECIFIED).
pub fn price_tax_behavior(plan: &PlanVersion, currency: &str) -> Option<String> {
    plan.prices
        .iter()
        .find(|p| p.enabled && p.currency.eq_ignore_ascii_case(currency))
        .and_then(|p| p.tax_behavior.clone())
        .filter(|t| t != "UNSPECIFIED")
}
