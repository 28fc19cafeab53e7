//! Discount codes: what a code takes off, for how many invoices, and who may
//! redeem it. A redemption keeps a copy of the terms ([`AppliedDiscount`]),
//! so changing or deleting a code never changes what was sold with it.

use crate::billing::{Line, LineKind};
use crate::tax::{percentage_text, PERCENT_SCALE};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The smallest percentage a code may take off: 0.01 %.
pub const MIN_PERCENTAGE: i64 = PERCENT_SCALE / 100;

/// An amount of one currency, in its minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyAmount {
    pub currency: String,
    pub minor: i64,
}

/// What a code takes off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DiscountValue {
    /// A share of what is charged, in [`PERCENT_SCALE`] (0.01 % to 100 %).
    Percentage { percentage: i64 },
    /// A fixed amount per currency; a purchase in another currency is out of scope.
    Fixed { amounts: Vec<CurrencyAmount> },
}

/// For how many of a subscription's invoices a code applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "cycles")]
pub enum DiscountDuration {
    /// The first invoice only.
    Once,
    /// The first `n` invoices that bill a period (the first counts).
    Repeating(u32),
    /// Every invoice.
    Forever,
}

impl DiscountDuration {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountDuration::Once => "ONCE",
            DiscountDuration::Repeating(_) => "REPEATING",
            DiscountDuration::Forever => "FOREVER",
        }
    }

    /// How many invoices it covers (`None`: all).
    pub fn cycles(self) -> Option<u32> {
        match self {
            DiscountDuration::Once => Some(1),
            DiscountDuration::Repeating(n) => Some(n),
            DiscountDuration::Forever => None,
        }
    }
}

/// A discount code of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    pub id: uuid::Uuid,
    /// Upper case, 3–64 of `[A-Z0-9_-]`, unique in its environment.
    pub code: String,
    pub name: String,
    pub value: DiscountValue,
    pub duration: DiscountDuration,
    pub max_redemptions: Option<u32>,
    pub max_redemptions_per_customer: Option<u32>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Products it applies to (with `plans`; both empty: everything).
    pub products: Vec<uuid::Uuid>,
    /// Plan identifiers it applies to.
    pub plans: Vec<String>,
    pub first_purchase_only: bool,
    /// The least a purchase must come to (before the discount), in one currency.
    pub minimum_amount: Option<CurrencyAmount>,
    /// Only buyers billed in one of these countries may redeem it (a
    /// promotion's strict country coupon); empty: anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// The promotion that made it (a country's coupon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<uuid::Uuid>,
    /// Completed redemptions (kept by the store).
    #[serde(default)]
    pub times_redeemed: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// Whether a code can still be redeemed by anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountStatus {
    Active,
    /// Past its end, or out of redemptions.
    Expired,
}

impl DiscountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountStatus::Active => "ACTIVE",
            DiscountStatus::Expired => "EXPIRED",
        }
    }
}

/// What is known of a purchase when a code is tried on it.
#[derive(Debug, Clone)]
pub struct Redeeming<'a> {
    pub now: DateTime<Utc>,
    pub product_id: uuid::Uuid,
    pub plan_identifier: &'a str,
    pub currency: &'a str,
    /// What the purchase's first invoice charges before the discount.
    pub subtotal_minor: i64,
    /// Redemptions completed or held by open checkouts.
    pub taken: i64,
    /// Of those, the buyer's (0 for a new customer).
    pub taken_by_customer: i64,
    /// Whether the buyer bought anything before.
    pub bought_before: bool,
    /// The buyer's billing country, when known.
    pub country: Option<&'a str>,
    /// Whether `country` is final (the checkout completes): an unknown
    /// country then fails a code limited to countries.
    pub country_final: bool,
}

/// Why a code cannot be redeemed on a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotStarted,
    Expired,
    Exhausted,
    CustomerLimit,
    OutOfScope,
    Currency(String),
    Minimum(CurrencyAmount),
    NotFirstPurchase,
    /// Limited to buyers billed in a country (the first named).
    Country(String),
}

impl Refusal {
    /// What the buyer is told.
    pub fn message(&self) -> String {
        match self {
            Refusal::NotStarted => "This discount code is not valid yet.".into(),
            Refusal::Expired => "This discount code has expired.".into(),
            Refusal::Exhausted => "This discount code has reached its redemption limit.".into(),
            Refusal::CustomerLimit => "You have already used this discount code.".into(),
            Refusal::OutOfScope => "This discount code does not apply to this plan.".into(),
            Refusal::Currency(c) => format!("This discount code does not apply to purchases in {c}."),
            Refusal::Minimum(m) => format!(
                "This discount code needs a purchase of at least {} {}.",
                crate::money::minor_to_decimal(m.minor, crate::money::currency_exponent(&m.currency).unwrap_or(2)),
                m.currency
            ),
            Refusal::NotFirstPurchase => "This discount code is for a first purchase only.".into(),
            Refusal::Country(c) => format!(
                "This discount code is for buyers billed in {}.",
                crate::geo::country_name(c).unwrap_or(c.as_str())
            ),
        }
    }
}

/// A code as typed: trimmed and upper-cased, 3–64 of `[A-Z0-9_-]`.
pub fn normalize_code(text: &str) -> Result<String, &'static str> {
    let code = text.trim().to_ascii_uppercase();
    if !(3..=64).contains(&code.len()) {
        return Err("A code has 3 to 64 characters.");
    }
    if !code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err("A code has only letters, digits, '_' and '-'.");
    }
    Ok(code)
}

impl Discount {
    /// A code taking `value` off once, for anyone, from now on.
    pub fn new(code: &str, value: DiscountValue, now: DateTime<Utc>) -> Discount {
        Discount {
            id: uuid::Uuid::new_v4(),
            code: code.into(),
            name: code.into(),
            value,
            duration: DiscountDuration::Once,
            max_redemptions: None,
            max_redemptions_per_customer: None,
            starts_at: None,
            expires_at: None,
            products: Vec::new(),
            plans: Vec::new(),
            first_purchase_only: false,
            minimum_amount: None,
            countries: Vec::new(),
            promotion_id: None,
            times_redeemed: 0,
            created_at: now,
            modified_at: now,
        }
    }

    pub fn status(&self, now: DateTime<Utc>) -> DiscountStatus {
        let ended = self.expires_at.is_some_and(|e| now >= e);
        let used_up = self.max_redemptions.is_some_and(|m| self.times_redeemed >= i64::from(m));
        if ended || used_up {
            DiscountStatus::Expired
        } else {
            DiscountStatus::Active
        }
    }

    /// Whether the code covers a plan (of a product).
    pub fn covers(&self, product_id: uuid::Uuid, plan_identifier: &str) -> bool {
        (self.products.is_empty() && self.plans.is_empty())
            || self.products.contains(&product_id)
            || self.plans.iter().any(|p| p == plan_identifier)
    }

    /// Whether the code may be redeemed on a purchase; the first reason it may not.
    pub fn check(&self, r: &Redeeming<'_>) -> Result<(), Refusal> {
        if self.starts_at.is_some_and(|s| r.now < s) {
            return Err(Refusal::NotStarted);
        }
        if self.expires_at.is_some_and(|e| r.now >= e) {
            return Err(Refusal::Expired);
        }
        if self.max_redemptions.is_some_and(|m| r.taken >= i64::from(m)) {
            return Err(Refusal::Exhausted);
        }
        if self.max_redemptions_per_customer.is_some_and(|m| r.taken_by_customer >= i64::from(m)) {
            return Err(Refusal::CustomerLimit);
        }
        if !self.covers(r.product_id, r.plan_identifier) {
            return Err(Refusal::OutOfScope);
        }
        if let DiscountValue::Fixed { amounts } = &self.value {
            if !amounts.iter().any(|a| a.currency.eq_ignore_ascii_case(r.currency)) {
                return Err(Refusal::Currency(r.currency.to_ascii_uppercase()));
            }
        }
        if let Some(m) = &self.minimum_amount {
            if !m.currency.eq_ignore_ascii_case(r.currency) {
                return Err(Refusal::Currency(r.currency.to_ascii_uppercase()));
            }
            if r.subtotal_minor < m.minor {
                return Err(Refusal::Minimum(m.clone()));
            }
        }
        if self.first_purchase_only && r.bought_before {
            return Err(Refusal::NotFirstPurchase);
        }
        if let Some(first) = self.countries.first() {
            match r.country.map(str::to_ascii_uppercase) {
                Some(c) if self.countries.contains(&c) => {}
                None if !r.country_final => {}
                _ => return Err(Refusal::Country(first.clone())),
            }
        }
        Ok(())
    }

    /// The terms a redemption in `currency` keeps (`None`: a fixed code
    /// without an amount in that currency).
    pub fn terms(&self, currency: &str) -> Option<AppliedDiscount> {
        let value = match &self.value {
            DiscountValue::Percentage { percentage } => AppliedValue::Percentage(*percentage),
            DiscountValue::Fixed { amounts } => {
                AppliedValue::Fixed(amounts.iter().find(|a| a.currency.eq_ignore_ascii_case(currency))?.minor)
            }
        };
        Some(AppliedDiscount {
            discount_id: self.id,
            code: self.code.clone(),
            name: self.name.clone(),
            value,
            duration: self.duration,
            cycles_left: self.duration.cycles(),
        })
    }
}

/// What a redeemed code takes off, in the purchase's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedValue {
    Percentage(i64),
    Fixed(i64),
}

/// A redeemed code's terms, kept with the checkout and the subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDiscount {
    pub discount_id: uuid::Uuid,
    pub code: String,
    pub name: String,
    pub value: AppliedValue,
    pub duration: DiscountDuration,
    /// Invoices it still applies to (`None`: all).
    pub cycles_left: Option<u32>,
}

/// Lines a discount takes a share of: what is charged, not tax, credit or
/// another discount.
fn discountable(kind: LineKind) -> bool {
    matches!(kind, LineKind::Base | LineKind::Quantity | LineKind::Usage | LineKind::LateUsage | LineKind::Proration)
}

/// What a discount takes off `base` minor units: a percentage rounded half
/// up, a fixed amount; never more than `base`, never below nothing.
pub fn discount_minor(value: AppliedValue, base: i64) -> i64 {
    if base <= 0 {
        return 0;
    }
    let off = match value {
        AppliedValue::Percentage(p) => {
            let scaled = i128::from(base) * i128::from(p);
            let hundred = i128::from(100 * PERCENT_SCALE);
            i64::try_from((scaled + hundred / 2) / hundred).unwrap_or(i64::MAX)
        }
        AppliedValue::Fixed(minor) => minor,
    };
    off.clamp(0, base)
}

impl AppliedDiscount {
    /// Whether it still applies to an invoice.
    pub fn live(&self) -> bool {
        self.cycles_left != Some(0)
    }

    /// The DISCOUNT line it adds to an invoice's `lines` (`None`: nothing
    /// to take off, or its cycles are used up).
    pub fn line(&self, lines: &[Line]) -> Option<Line> {
        if !self.live() {
            return None;
        }
        let base: i64 = lines.iter().filter(|l| discountable(l.kind)).map(|l| l.amount_minor).sum();
        let off = discount_minor(self.value, base);
        (off > 0).then(|| Line::of_kind(LineKind::Discount, self.describe(), -off))
    }

    /// `Discount LAUNCH20 (20% off)`.
    pub fn describe(&self) -> String {
        match self.value {
            AppliedValue::Percentage(p) => format!("Discount {} ({}% off)", self.code, percentage_text(p)),
            AppliedValue::Fixed(_) => format!("Discount {}", self.code),
        }
    }

    /// Counts one invoice it applied to.
    pub fn use_cycle(&mut self) {
        if let Some(n) = self.cycles_left.as_mut() {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 3, day).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
    }

    fn code(value: DiscountValue) -> Discount {
        Discount { id: uuid::Uuid::nil(), name: "Launch".into(), ..Discount::new("LAUNCH", value, at(1)) }
    }

    fn buying(now: DateTime<Utc>) -> Redeeming<'static> {
        Redeeming {
            now,
            product_id: uuid::Uuid::nil(),
            plan_identifier: "pro",
            currency: "USD",
            subtotal_minor: 2_000,
            taken: 0,
            taken_by_customer: 0,
            bought_before: false,
            country: None,
            country_final: false,
        }
    }

    fn pct(p: i64) -> DiscountValue {
        DiscountValue::Percentage { percentage: p * PERCENT_SCALE }
    }

    #[test]
    fn codes() {
        assert_eq!(normalize_code(" launch-20 "), Ok("LAUNCH-20".into()));
        assert!(normalize_code("ab").is_err());
        assert!(normalize_code(&"A".repeat(65)).is_err());
        assert!(normalize_code("SPRING SALE").is_err());
        assert!(normalize_code("ÉTÉ20").is_err());
    }

    #[test]
    fn refusals_in_order() {
        let mut d = code(pct(20));
        d.starts_at = Some(at(5));
        d.expires_at = Some(at(10));
        assert_eq!(d.check(&buying(at(4))), Err(Refusal::NotStarted));
        assert_eq!(d.check(&buying(at(5))), Ok(()));
        assert_eq!(d.check(&buying(at(10))), Err(Refusal::Expired), "the end is exclusive");
        assert_eq!(d.status(at(10)), DiscountStatus::Expired);
        d.max_redemptions = Some(10);
        assert_eq!(d.check(&Redeeming { taken: 10, ..buying(at(6)) }), Err(Refusal::Exhausted));
        d.max_redemptions_per_customer = Some(1);
        assert_eq!(d.check(&Redeeming { taken_by_customer: 1, ..buying(at(6)) }), Err(Refusal::CustomerLimit));
        d.plans = vec!["team".into()];
        assert_eq!(d.check(&buying(at(6))), Err(Refusal::OutOfScope));
        d.products = vec![uuid::Uuid::nil()];
        assert_eq!(d.check(&buying(at(6))), Ok(()), "the product is in scope");
        d.minimum_amount = Some(CurrencyAmount { currency: "USD".into(), minor: 2_001 });
        assert_eq!(
            d.check(&buying(at(6))).unwrap_err().message(),
            "This discount code needs a purchase of at least 20.01 USD."
        );
        d.minimum_amount = None;
        d.first_purchase_only = true;
        assert_eq!(d.check(&Redeeming { bought_before: true, ..buying(at(6)) }), Err(Refusal::NotFirstPurchase));
        let mut local = code(pct(40));
        local.countries = vec!["IN".into()];
        assert_eq!(local.check(&buying(at(6))), Ok(()), "the country is not known yet");
        assert_eq!(local.check(&Redeeming { country: Some("in"), country_final: true, ..buying(at(6)) }), Ok(()));
        let elsewhere = Redeeming { country: Some("US"), ..buying(at(6)) };
        assert_eq!(local.check(&elsewhere).unwrap_err().message(), "This discount code is for buyers billed in India.");
        assert_eq!(
            local.check(&Redeeming { country_final: true, ..buying(at(6)) }),
            Err(Refusal::Country("IN".into()))
        );
        let fixed = code(DiscountValue::Fixed { amounts: vec![CurrencyAmount { currency: "EUR".into(), minor: 500 }] });
        assert_eq!(fixed.check(&buying(at(6))), Err(Refusal::Currency("USD".into())));
        assert_eq!(fixed.terms("usd"), None);
        assert_eq!(fixed.terms("EUR").map(|t| t.value), Some(AppliedValue::Fixed(500)));
    }

    #[test]
    fn lines_and_cycles() {
        let mut t = code(pct(20)).terms("USD").unwrap();
        t.duration = DiscountDuration::Repeating(2);
        t.cycles_left = t.duration.cycles();
        let lines = vec![
            Line::plain("Pro", 2_000),
            Line::of_kind(LineKind::Usage, "API calls", 999),
            Line::of_kind(LineKind::Credit, "Account credit", -500),
        ];
        let line = t.line(&lines).unwrap();
        assert_eq!((line.kind, line.amount_minor), (LineKind::Discount, -600), "20 % of 29.99 is 5.998");
        assert_eq!(line.description, "Discount LAUNCH (20% off)");
        t.use_cycle();
        assert!(t.line(&lines).is_some());
        t.use_cycle();
        assert_eq!(t.line(&lines), None, "two invoices, then none");
        assert_eq!(discount_minor(AppliedValue::Fixed(5_000), 2_000), 2_000, "never more than what is charged");
        assert_eq!(discount_minor(AppliedValue::Percentage(MIN_PERCENTAGE), 5_000), 1, "0.5 rounds up");
    }

    proptest! {
        #[test]
        fn never_more_than_charged(base in -10_000i64..10_000_000, p in MIN_PERCENTAGE..=100 * PERCENT_SCALE, fixed in 0i64..10_000_000) {
            for v in [AppliedValue::Percentage(p), AppliedValue::Fixed(fixed)] {
                let off = discount_minor(v, base);
                prop_assert!(off >= 0 && off <= base.max(0));
            }
            prop_assert_eq!(discount_minor(AppliedValue::Percentage(100 * PERCENT_SCALE), base), base.max(0));
        }

        #[test]
        fn covers_exactly_its_cycles(n in 1u32..40, invoices in 0u32..60) {
            let mut t = code(pct(10)).terms("USD").unwrap();
            t.duration = DiscountDuration::Repeating(n);
            t.cycles_left = t.duration.cycles();
            let mut applied = 0;
            for _ in 0..invoices {
                if t.line(&[Line::plain("Pro", 1_000)]).is_some() {
                    applied += 1;
                    t.use_cycle();
                }
            }
            prop_assert_eq!(applied, invoices.min(n));
        }
    }
}
