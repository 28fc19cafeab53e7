//! A plan's price in its stored form, typed: read once when the plan is
//! loaded, and quoted from without looking at JSON. Serialises to exactly
//! the document `parse_price` validates and the store keeps.

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn yes() -> bool {
    true
}

/// A price of a plan in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    #[serde(default)]
    pub id: Option<String>,
    /// FREE, PAID or CUSTOM.
    pub price_type: String,
    pub currency: String,
    #[serde(default)]
    pub free_trial: bool,
    #[serde(default)]
    pub trial_period: Option<i64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// INCLUSIVE, EXCLUSIVE or UNSPECIFIED.
    #[serde(default)]
    pub tax_behavior: Option<String>,
    #[serde(default)]
    pub charge_catalog_price: Vec<ChargeGroup>,
    /// Fixed prices for buyers in some countries (see `local`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_prices: Vec<super::LocalPrice>,
}

impl Price {
    pub fn is_paid(&self) -> bool {
        self.price_type == "PAID"
    }
}

/// The charges of the plan itself (`feature` none) or of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeGroup {
    /// The feature's id.
    #[serde(default)]
    pub feature: Option<String>,
    /// FLAT, PACKAGE, TIERED, VOLUME or STAIRSTEP.
    #[serde(default)]
    pub price_model: Option<String>,
    #[serde(default)]
    pub reset: Option<String>,
    #[serde(default)]
    pub reset_time: Option<Value>,
    #[serde(default)]
    pub has_unlimited_usage: bool,
    /// ADVANCE_COMMITMENT or PAY_AS_YOU_GO.
    #[serde(default)]
    pub payment_type: Option<String>,
    /// PAY_AS_YOU_GO: whether usage during a free trial is billed.
    #[serde(default)]
    pub bill_trial_usage: bool,
    #[serde(default)]
    pub rollover: Option<Value>,
    #[serde(default)]
    pub usage_alerts: Option<Value>,
    #[serde(default)]
    pub charges: Vec<Charge>,
}

impl ChargeGroup {
    /// The group's charge for a charge period, if it has one.
    pub fn charge_for(&self, period: &str) -> Option<&Charge> {
        self.charges.iter().find(|c| c.charge_period == period)
    }
}

/// One charge period's amount (FLAT, PACKAGE) or tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub charge_period: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<StoredTier>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
}

/// A tier as stored: unit prices in micro-minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTier {
    /// The tier's last unit; none: no end.
    #[serde(default)]
    pub up_to: Option<u64>,
    #[serde(default)]
    pub unit_micro: i64,
    #[serde(default)]
    pub flat_minor: i64,
}

/// Bounds on a per-unit feature's quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advanced {
    #[serde(default)]
    pub min_quantity: Option<u64>,
    #[serde(default)]
    pub max_quantity: Option<u64>,
}
