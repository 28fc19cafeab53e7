//! Plans' prices, entitlements and files as the API shows them.

use crate::error::{ServiceError, ServiceResult};
use crate::wire::catalog::FeatureOut;
use kelviq_core::casing::camelize;
use kelviq_core::catalog::Feature;
use kelviq_core::plans::{price_to_wire, EntitlementDetails, Price};
use kelviq_store::MediaFile;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use utoipa::ToSchema;

/// A file a plan's buyers may download.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanFileOut {
    pub id: String,
    pub name: String,
    /// The download link (as `downloadUrl`).
    pub file: String,
    pub ordering: i64,
    pub enabled: bool,
    pub download_url: String,
}

impl PlanFileOut {
    pub fn new(base: &str, identifier: &str, f: MediaFile) -> Self {
        let download = format!("{base}/api/v1/catalog/plans/{identifier}/file/{}/download/", f.id);
        PlanFileOut {
            id: f.id.to_string(),
            name: f.name,
            file: download.clone(),
            ordering: f.ordering,
            enabled: f.enabled,
            download_url: download,
        }
    }
}

/// What a plan grants for a feature, every documented key present.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementDetailsOut {
    /// BOOLEAN: a boolean. CUSTOMIZABLE: a number. METER: the period limit, null when unlimited.
    pub value: Value,
    pub has_unlimited_usage: bool,
    pub reset: Option<String>,
    pub reset_time: Option<String>,
    pub hard_limit: bool,
    /// `{enabled, percentage, limit}`, or `{}`.
    #[schema(value_type = Object)]
    pub rollover: Value,
    /// `{enabled, thresholds, thresholdType}`, or `{}`.
    #[schema(value_type = Object)]
    pub usage_alerts: Value,
    pub is_inherited: bool,
    pub is_value_overridden: bool,
}

/// A feature of a plan with what the plan grants for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanEntitlementOut {
    pub feature: FeatureOut,
    pub details: EntitlementDetailsOut,
}

/// Whether an entitlement comes from the plan's parent, and whether the
/// plan changed the parent's value.
#[derive(Debug, Clone, Copy)]
pub struct Provenance {
    pub inherited: bool,
    pub overridden: bool,
}

impl PlanEntitlementOut {
    pub fn new(feature: Feature, details: &EntitlementDetails, from: Provenance) -> Self {
        let object = |v: &Option<Value>| {
            camelize(v.clone().filter(|v| !v.is_null()).unwrap_or_else(|| Value::Object(Default::default())))
        };
        PlanEntitlementOut {
            feature: FeatureOut::from(feature),
            details: EntitlementDetailsOut {
                value: details.value.clone(),
                has_unlimited_usage: details.has_unlimited_usage,
                reset: details.reset.clone(),
                reset_time: details.reset_time.clone(),
                hard_limit: details.hard_limit,
                rollover: object(&details.rollover),
                usage_alerts: object(&details.usage_alerts),
                is_inherited: from.inherited,
                is_value_overridden: from.overridden,
            },
        }
    }
}

/// One tier of a TIERED, VOLUME or STAIRSTEP price.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierOut {
    #[schema(value_type = f64)]
    pub flat_amount: Number,
    #[schema(value_type = f64)]
    pub unit_amount: Number,
    /// The tier's last unit, or `"inf"`.
    pub up_to: Value,
}

/// A charge's amount: `amount` (and `blockSize`) for FLAT and PACKAGE, the
/// currency alone for tiered models.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceDataOut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub amount: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// One charge of a feature group: per charge period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeOut {
    pub charge_period: Option<String>,
    pub price_data: PriceDataOut,
    pub tiers: Vec<TierOut>,
    pub advanced: Value,
}

/// The charges of one feature (or of the plan itself, `feature` null).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeGroupOut {
    pub feature: Option<String>,
    pub price_model: Option<String>,
    pub reset: Option<String>,
    pub reset_time: Option<String>,
    pub has_unlimited_usage: Option<bool>,
    pub payment_type: Option<String>,
    /// PAY_AS_YOU_GO: whether usage during a free trial is billed (default false).
    pub bill_trial_usage: bool,
    #[schema(value_type = Object)]
    pub rollover: Value,
    #[schema(value_type = Object)]
    pub usage_alerts: Value,
    pub charges: Vec<ChargeOut>,
}

/// A local price's charge: the price's charge for a feature (null: the
/// plan's own) and period, at the local amount.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalChargeOut {
    pub feature: Option<String>,
    #[serde(flatten)]
    pub charge: ChargeOut,
}

/// Fixed prices for buyers in some countries (or a country group), in their currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalPriceOut {
    pub countries: Vec<String>,
    /// TIER_1 … TIER_5.
    pub group: Option<String>,
    pub currency: String,
    /// Only a buyer billed in the country whose price was shown pays it.
    pub strict_country: bool,
    pub charges: Vec<LocalChargeOut>,
}

/// A price of a plan in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceOut {
    pub id: Option<String>,
    pub price_type: Option<String>,
    pub currency: String,
    pub free_trial: Option<bool>,
    pub trial_period: Option<i64>,
    pub enabled: Option<bool>,
    pub tax_behavior: Option<String>,
    pub charge_catalog_price: Vec<ChargeGroupOut>,
    /// Beyond Kelviq: fixed prices for buyers in some countries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_prices: Vec<LocalPriceOut>,
}

impl PriceOut {
    /// A stored price in the API's shape (amounts as decimal numbers).
    pub fn new(stored: &Price) -> ServiceResult<Self> {
        let wire = price_to_wire(stored);
        let typed: PriceOut = serde_json::from_value(wire.clone())
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a stored price does not read as a price: {e}")))?;
        debug_assert_eq!(serde_json::to_value(&typed).ok(), Some(wire), "a price's wire form is lossless");
        Ok(typed)
    }
}

/// The prices of a plan after a bulk replace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PricesOut {
    pub prices: Vec<PriceOut>,
}

/// What publishing did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedOut {
    /// Always `published`.
    pub status: String,
    pub version: i64,
    /// Live subscriptions moved onto the new version.
    pub migrated_subscriptions: u64,
}
