//! Overage of committed meters: an ADVANCE_COMMITMENT charge bills its
//! committed units in advance; when the meter's limit is soft, the usage
//! above it in each usage window is billed in arrears, at the charge's own
//! price: what the usage would cost beyond what the committed units cost.
//! A window is billed once, on the first invoice after it ends (or on the
//! last one, when the subscription ends inside it).

use super::{Line, LineKind};
use crate::catalog::FeatureType;
use crate::entitlements::meter_window;
use crate::money::PriceModel;
use crate::plans::{ChargePeriod, EntitlementDetails, PlanVersion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A committed meter with a soft limit and a price for its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedMeter {
    /// The feature's identifier.
    pub feature: String,
    pub model: PriceModel,
    /// The units committed to (paid in advance) per usage window.
    pub limit: u64,
    /// The meter's reset (its usage windows), as in the plan's entitlement.
    pub reset: Option<String>,
    pub reset_time: Option<String>,
}

/// How far a committed meter's overage was invoiced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledOverage {
    pub feature: String,
    pub until: DateTime<Utc>,
}

/// The committed meters of `plan`'s price in `currency` for `period` whose
/// limit is soft: each with its charge's price and its limit per window
/// (the units bought, else the plan's value). `entitlement(identifier)` is
/// what the plan grants for a feature.
pub fn committed_meters(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: &str,
    feature_identifier: &dyn Fn(&str) -> Option<String>,
    entitlement: &dyn Fn(&str) -> Option<(FeatureType, EntitlementDetails)>,
    bought: &dyn Fn(&str) -> Option<u64>,
) -> Vec<CommittedMeter> {
    let Some(price) = super::quote::paid_price(plan, currency) else { return Vec::new() };
    price
        .charge_catalog_price
        .iter()
        .filter(|g| g.payment_type.as_deref() != Some("PAY_AS_YOU_GO"))
        .filter_map(|g| {
            let charge = g.charge_for(period.as_str())?;
            let feature = feature_identifier(g.feature.as_deref()?)?;
            let (kind, details) = entitlement(&feature)?;
            if kind != FeatureType::Meter || details.hard_limit || details.has_unlimited_usage {
                return None;
            }
            let limit = bought(&feature).or_else(|| details.value.as_u64())?;
            Some(CommittedMeter {
                model: super::quote::charge_model(g.price_model.as_deref().unwrap_or("FLAT"), charge),
                limit,
                reset: details.reset.clone(),
                reset_time: details.reset_time.clone(),
                feature,
            })
        })
        .collect()
}

/// Most usage windows billed per meter and invoice (a daily reset over a
/// year of missed renewals stays bounded).
const MAX_WINDOWS: usize = 400;

/// The overage lines of an invoice at `at`: per meter, every usage window
/// (counted from `anchor`, the subscription's start) that ended since the
/// meter's overage was last invoiced (at first since `since`), and with
/// `close` the window running now. `usage(feature, start)` is the usage
/// counted in the window starting at `start`. `billed` is updated.
pub fn overage_lines(
    billed: &mut Vec<BilledOverage>,
    meters: &[CommittedMeter],
    anchor: DateTime<Utc>,
    usage: &dyn Fn(&str, DateTime<Utc>) -> u64,
    (since, at): (DateTime<Utc>, DateTime<Utc>),
    close: bool,
) -> Vec<Line> {
    let mut lines = Vec::new();
    for m in meters {
        let from = billed.iter().find(|b| b.feature == m.feature).map_or(since, |b| b.until.max(since));
        let (mut t, mut until) = (from, from);
        for _ in 0..MAX_WINDOWS {
            if t >= at {
                break;
            }
            let Some((start, end)) = meter_window(m.reset.as_deref(), m.reset_time.as_deref(), anchor, t) else {
                break;
            };
            if end > at && !close {
                break;
            }
            let used = usage(&m.feature, start);
            if used > m.limit {
                let over = used - m.limit;
                let amount = m.model.charge(used) - m.model.charge(m.limit);
                let text = format!("{} overage: {over} above the {} committed", m.feature, m.limit);
                lines.push(Line {
                    feature: Some(m.feature.clone()),
                    quantity: Some(over),
                    unit_micro: m.model.unit_micro(),
                    ..Line::of_kind(LineKind::Usage, text, amount).for_period(start.max(since), end.min(at))
                });
            }
            until = end.min(at);
            t = end;
        }
        if until > from {
            match billed.iter_mut().find(|b| b.feature == m.feature) {
                Some(b) => b.until = until,
                None => billed.push(BilledOverage { feature: m.feature.clone(), until }),
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn meter(limit: u64) -> CommittedMeter {
        CommittedMeter {
            feature: "exports".into(),
            model: PriceModel::Flat { unit_micro: 10_000_000 },
            limit,
            reset: Some("EVERY_MONTH".into()),
            reset_time: Some("SUBSCRIPTION_START".into()),
        }
    }

    #[test]
    fn each_window_is_billed_once() {
        let start = at("2026-01-31T10:00:00Z");
        let usage = |_: &str, s: DateTime<Utc>| if s == start { 250 } else { 90 };
        let mut billed = Vec::new();
        let m = [meter(100)];
        // Inside the first window: nothing has ended yet.
        assert!(overage_lines(&mut billed, &m, start, &usage, (start, at("2026-02-10T00:00:00Z")), false).is_empty());
        let lines = overage_lines(&mut billed, &m, start, &usage, (start, at("2026-02-28T10:00:00Z")), false);
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].quantity, lines[0].amount_minor), (Some(150), 1_500));
        assert_eq!(lines[0].period_end, Some(at("2026-02-28T10:00:00Z")));
        // Again at the same time: nothing more; the next window stayed within its limit.
        assert!(overage_lines(&mut billed, &m, start, &usage, (start, at("2026-02-28T10:00:00Z")), false).is_empty());
        assert!(overage_lines(&mut billed, &m, start, &usage, (start, at("2026-03-31T10:00:00Z")), false).is_empty());
        // Closing inside a window bills it so far.
        let over = |_: &str, _: DateTime<Utc>| 130;
        let lines = overage_lines(&mut billed, &m, start, &over, (start, at("2026-04-10T00:00:00Z")), true);
        assert_eq!((lines.len(), lines[0].quantity), (1, Some(30)));
    }

    proptest! {
        /// However often invoices come, each window's overage is billed
        /// exactly once: the lines add up to the sum over the windows.
        #[test]
        fn invoices_split_no_window(usages in proptest::collection::vec(0u64..300, 6), cuts in proptest::collection::vec(1i64..200, 1..8)) {
            let start = at("2026-01-31T10:00:00Z");
            let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = (0..6)
                .map(|i| meter_window(Some("EVERY_MONTH"), Some("SUBSCRIPTION_START"), start, start + chrono::Duration::days(31 * i + 1)).unwrap())
                .collect();
            let usage = |_: &str, s: DateTime<Utc>| windows.iter().position(|w| w.0 == s).map_or(0, |i| usages[i]);
            let end = windows[5].1;
            let mut billed = Vec::new();
            let mut total = 0;
            let mut t = start;
            for c in cuts {
                t = (t + chrono::Duration::days(c)).min(end);
                total += overage_lines(&mut billed, &[meter(100)], start, &usage, (start, t), false).iter().map(|l| l.amount_minor).sum::<i64>();
            }
            total += overage_lines(&mut billed, &[meter(100)], start, &usage, (start, end), false).iter().map(|l| l.amount_minor).sum::<i64>();
            let expected: i64 = usages.iter().map(|u| u.saturating_sub(100) as i64 * 10).sum();
            prop_assert_eq!(total, expected);
        }
    }
}
