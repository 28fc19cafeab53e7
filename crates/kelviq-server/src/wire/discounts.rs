//! Discount codes as the API shows them.

use chrono::{DateTime, Utc};
use kelviq_core::discounts::{CurrencyAmount, Discount, DiscountValue};
use kelviq_core::money::{currency_exponent, minor_number};
use kelviq_core::tax::percentage_number;
use kelviq_core::timefmt::iso_micros;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An amount of one currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmountOut {
    pub currency: String,
    /// In major units (`5.5`).
    #[schema(value_type = f64)]
    pub amount: Value,
}

impl From<&CurrencyAmount> for AmountOut {
    fn from(a: &CurrencyAmount) -> Self {
        AmountOut {
            currency: a.currency.clone(),
            amount: minor_number(a.minor, currency_exponent(&a.currency).unwrap_or(2)),
        }
    }
}

/// A discount code of the environment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscountOut {
    pub id: String,
    pub code: String,
    pub name: String,
    /// PERCENTAGE or FIXED.
    pub discount_type: String,
    /// Percent off (PERCENTAGE), 0.01 to 100; null for FIXED.
    #[schema(value_type = Option<f64>)]
    pub percentage: Option<Value>,
    /// The amount off per currency (FIXED); empty for PERCENTAGE.
    pub amounts: Vec<AmountOut>,
    /// ONCE, REPEATING or FOREVER.
    pub duration: String,
    /// How many invoices a REPEATING code covers, the first included.
    pub duration_in_cycles: Option<u32>,
    pub max_redemptions: Option<u32>,
    pub max_redemptions_per_customer: Option<u32>,
    /// Completed redemptions (a full refund gives one back).
    pub times_redeemed: i64,
    pub starts_at: Option<String>,
    pub expires_at: Option<String>,
    /// Product ids it applies to (with `plans`; both empty: everything).
    pub products: Vec<String>,
    /// Plan identifiers it applies to.
    pub plans: Vec<String>,
    pub first_purchase_only: bool,
    pub minimum_amount: Option<AmountOut>,
    /// Only buyers billed in these countries may redeem it (a promotion's strict coupon).
    pub countries: Vec<String>,
    /// The promotion whose coupon it is.
    pub promotion_id: Option<String>,
    /// ACTIVE, or EXPIRED (past its end or out of redemptions).
    pub status: String,
    pub created_on: String,
    pub modified_on: String,
}

impl DiscountOut {
    pub fn of(d: &Discount, now: DateTime<Utc>) -> Self {
        let (discount_type, percentage, amounts) = match &d.value {
            DiscountValue::Percentage { percentage } => ("PERCENTAGE", Some(percentage_number(*percentage)), vec![]),
            DiscountValue::Fixed { amounts } => ("FIXED", None, amounts.iter().map(AmountOut::from).collect()),
        };
        DiscountOut {
            id: d.id.to_string(),
            code: d.code.clone(),
            name: d.name.clone(),
            discount_type: discount_type.into(),
            percentage,
            amounts,
            duration: d.duration.as_str().into(),
            duration_in_cycles: match d.duration {
                kelviq_core::discounts::DiscountDuration::Repeating(n) => Some(n),
                _ => None,
            },
            max_redemptions: d.max_redemptions,
            max_redemptions_per_customer: d.max_redemptions_per_customer,
            times_redeemed: d.times_redeemed,
            starts_at: d.starts_at.map(iso_micros),
            expires_at: d.expires_at.map(iso_micros),
            products: d.products.iter().map(ToString::to_string).collect(),
            plans: d.plans.clone(),
            first_purchase_only: d.first_purchase_only,
            minimum_amount: d.minimum_amount.as_ref().map(AmountOut::from),
            countries: d.countries.clone(),
            promotion_id: d.promotion_id.map(|p| p.to_string()),
            status: d.status(now).as_str().into(),
            created_on: iso_micros(d.created_at),
            modified_on: iso_micros(d.modified_at),
        }
    }
}
