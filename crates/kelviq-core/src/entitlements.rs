//! The entitlement rules of spec §4.1: what one granting row says, rollover
//! at a reset, and which usage alerts a change of usage crosses.

use crate::periods::{calendar_anchor, period_containing, reset_interval, Interval};
use chrono::{DateTime, Utc};

/// How a feature's row answers `hasAccess` and its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowState {
    pub has_access: bool,
    /// The period's limit (plan limit plus any rollover); `None` when unlimited or not a meter.
    pub usage_limit: Option<i64>,
    pub current_usage: Option<i64>,
    pub remaining: Option<i64>,
    pub hard_limit: Option<bool>,
}

/// A BOOLEAN feature: access is its value.
pub fn boolean_row(value: bool) -> RowState {
    RowState { has_access: value, usage_limit: None, current_usage: None, remaining: None, hard_limit: None }
}

/// A CUSTOMIZABLE feature: granted means access; its value is reported as `usageLimit`.
pub fn customizable_row(value: Option<i64>) -> RowState {
    RowState { has_access: true, usage_limit: value, current_usage: Some(0), remaining: value, hard_limit: Some(false) }
}

/// A METER: unlimited ⇒ access; hard limit ⇒ access while something remains;
/// soft limit ⇒ access, with overage (remaining goes negative).
pub fn meter_row(limit: Option<i64>, carried: i64, usage: i64, hard: bool) -> RowState {
    match limit {
        None => RowState {
            has_access: true,
            usage_limit: None,
            current_usage: Some(usage),
            remaining: None,
            hard_limit: Some(hard),
        },
        Some(limit) => {
            let usage_limit = limit.saturating_add(carried.max(0));
            let remaining = usage_limit.saturating_sub(usage);
            RowState {
                has_access: !hard || remaining > 0,
                usage_limit: Some(usage_limit),
                current_usage: Some(usage),
                remaining: Some(remaining),
                hard_limit: Some(hard),
            }
        }
    }
}

/// A feature's combined limit over its granting rows: the sum of their
/// period limits, unlimited (`None`) when any row is; saturating.
pub fn combined_limit(limits: impl IntoIterator<Item = Option<i64>>) -> Option<i64> {
    limits.into_iter().try_fold(0i64, |total, l| l.map(|l| total.saturating_add(l)))
}

/// How a feature's usage shows across its rows, in their order: each row
/// takes usage up to its limit, and the last row (or the first unlimited
/// one) takes the rest, so the rows add up to the usage.
pub fn split_usage(usage: i64, limits: &[Option<i64>]) -> Vec<i64> {
    let mut left = usage;
    let n = limits.len();
    limits
        .iter()
        .enumerate()
        .map(|(i, limit)| {
            let used = match limit {
                Some(l) if i + 1 < n => left.min(*l).max(0),
                _ => left,
            };
            left -= used;
            used
        })
        .collect()
}

/// What rolls over at a reset: `min(unused × percentage / 100, cap)`, whole
/// units rounded down (spec §4.1: 10 000 limit, 2 000 unused, 50 %, cap 750 ⇒ 750).
pub fn rollover_carry(period_limit: i64, used: i64, percentage: i64, cap: Option<i64>) -> i64 {
    let unused = (period_limit - used).max(0) as i128;
    let carried = (unused * percentage.clamp(0, 100) as i128 / 100) as i64;
    cap.map_or(carried, |c| carried.min(c.max(0)))
}

/// The alert thresholds that a change of usage from `before` to `after`
/// crosses upwards. PERCENTAGE thresholds are % of `limit` (none without a
/// limit); BALANCE thresholds are absolute usage.
pub fn crossed_alerts(kind: &str, thresholds: &[i64], limit: Option<i64>, before: i64, after: i64) -> Vec<i64> {
    if after <= before {
        return Vec::new();
    }
    let reached = |usage: i64, t: i64| -> bool {
        match kind {
            "PERCENTAGE" => limit.is_some_and(|l| usage as i128 * 100 >= l as i128 * t as i128),
            _ => usage >= t,
        }
    };
    thresholds.iter().copied().filter(|t| !reached(before, *t) && reached(after, *t)).collect()
}

/// The usage period `[start, end)` of a meter at `now`, or `None` when it never
/// resets. `SUBSCRIPTION_START` counts periods from the subscription's anchor;
/// `BEGINNING_OF_PERIOD` (the default) from calendar boundaries (midnight,
/// Monday, the 1st, the quarter, 1 January). Every 28 days always counts from
/// the subscription, as its billing does.
pub fn meter_window(
    reset: Option<&str>,
    reset_time: Option<&str>,
    subscription_anchor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let interval = reset_interval(reset?)?;
    let anchor = if reset_time == Some("SUBSCRIPTION_START") || interval == Interval::Days(28) {
        subscription_anchor
    } else {
        calendar_anchor(interval, subscription_anchor)
    };
    Some(period_containing(anchor, interval, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> impl Strategy<Value = Vec<Option<i64>>> {
        proptest::collection::vec(proptest::option::of(0i64..1_000), 0..6)
    }

    proptest! {
        /// The rows of a feature add up to its usage; each row but the last
        /// stays within its limit; after an unlimited row the others show none.
        #[test]
        fn usage_splits_across_rows(usage in -100i64..5_000, limits in limits()) {
            let split = split_usage(usage, &limits);
            prop_assert_eq!(split.len(), limits.len());
            if !limits.is_empty() {
                prop_assert_eq!(split.iter().sum::<i64>(), usage);
            }
            for (i, (used, limit)) in split.iter().zip(&limits).enumerate() {
                if i + 1 < limits.len() {
                    if let Some(l) = limit {
                        prop_assert!(*used <= *l && *used >= 0);
                    }
                }
            }
            if let Some(first_unlimited) = limits.iter().position(Option::is_none) {
                prop_assert!(split[first_unlimited + 1..].iter().all(|u| *u == 0));
            }
        }

        /// The combined limit is unlimited exactly when a row is, else the
        /// sum of the rows' limits; no order of the rows changes it.
        #[test]
        fn limits_combine(limits in limits()) {
            let combined = combined_limit(limits.iter().copied());
            if limits.iter().any(Option::is_none) {
                prop_assert_eq!(combined, None);
            } else {
                prop_assert_eq!(combined, Some(limits.iter().map(|l| l.unwrap()).sum::<i64>()));
            }
            let mut reversed = limits.clone();
            reversed.reverse();
            prop_assert_eq!(combined_limit(reversed), combined);
        }

        /// A hard-limited row grants access exactly while something remains;
        /// a soft one always, its remaining going negative past the limit.
        #[test]
        fn hard_limits_stop_at_zero(limit in 0i64..1_000, carried in 0i64..500, usage in 0i64..2_000, hard in any::<bool>()) {
            let row = meter_row(Some(limit), carried, usage, hard);
            let remaining = limit + carried - usage;
            prop_assert_eq!(row.remaining, Some(remaining));
            prop_assert_eq!(row.has_access, !hard || remaining > 0);
            prop_assert_eq!(row.usage_limit, Some(limit + carried));
        }
    }

    #[test]
    fn rows() {
        assert!(boolean_row(true).has_access && !boolean_row(false).has_access);
        assert_eq!(customizable_row(Some(5)).usage_limit, Some(5));
        let hard = meter_row(Some(100), 0, 100, true);
        assert_eq!((hard.has_access, hard.remaining), (false, Some(0)));
        let soft = meter_row(Some(100), 0, 150, false);
        assert_eq!((soft.has_access, soft.remaining), (true, Some(-50)), "soft limits allow overage");
        let carried = meter_row(Some(10_000), 750, 10_500, true);
        assert_eq!((carried.usage_limit, carried.remaining, carried.has_access), (Some(10_750), Some(250), true));
        let unlimited = meter_row(None, 0, 1_000_000, true);
        assert_eq!((unlimited.has_access, unlimited.usage_limit, unlimited.remaining), (true, None, None));
    }

    #[test]
    fn rollover_matches_the_spec() {
        assert_eq!(rollover_carry(10_000, 8_000, 50, Some(750)), 750);
        assert_eq!(rollover_carry(10_000, 9_000, 50, Some(750)), 500);
        assert_eq!(rollover_carry(10_000, 12_000, 50, None), 0, "nothing unused, nothing carried");
        assert_eq!(rollover_carry(3, 0, 50, None), 1, "rounded down");
    }

    #[test]
    fn alerts() {
        assert_eq!(crossed_alerts("PERCENTAGE", &[75, 90], Some(1000), 700, 760), [75]);
        assert_eq!(crossed_alerts("PERCENTAGE", &[75, 90], Some(1000), 700, 950), [75, 90]);
        assert!(crossed_alerts("PERCENTAGE", &[75], Some(1000), 760, 800).is_empty(), "already past");
        assert!(crossed_alerts("PERCENTAGE", &[75], None, 0, 10_000).is_empty());
        assert_eq!(crossed_alerts("BALANCE", &[500], None, 499, 500), [500]);
        assert!(crossed_alerts("BALANCE", &[500], None, 600, 100).is_empty(), "going down crosses nothing");
    }

    proptest! {
        #[test]
        fn carry_is_bounded(limit in 0i64..1_000_000, used in 0i64..2_000_000, pct in 0i64..=100, cap in proptest::option::of(0i64..100_000)) {
            let c = rollover_carry(limit, used, pct, cap);
            prop_assert!(c >= 0);
            prop_assert!(c <= (limit - used).max(0));
            if let Some(cap) = cap { prop_assert!(c <= cap); }
        }

        #[test]
        fn each_threshold_fires_once_on_the_way_up(steps in proptest::collection::vec(0i64..300, 1..30), limit in 1i64..5000) {
            let thresholds = [25, 50, 75, 90, 100];
            let mut usage = 0;
            let mut fired = Vec::new();
            for s in steps {
                fired.extend(crossed_alerts("PERCENTAGE", &thresholds, Some(limit), usage, usage + s));
                usage += s;
            }
            let expected: Vec<i64> = thresholds.iter().copied().filter(|t| usage * 100 >= limit * t).collect();
            fired.sort();
            prop_assert_eq!(fired, expected);
        }

        #[test]
        fn hard_limits_never_grant_past_the_limit(limit in 0i64..10_000, carried in 0i64..1000, usage in 0i64..20_000) {
            let row = meter_row(Some(limit), carried, usage, true);
            prop_assert_eq!(row.has_access, usage < limit + carried);
        }
    }

    #[test]
    fn meter_windows() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let start = at("2026-01-31T10:00:00Z");
        let now = at("2026-03-15T08:00:00Z");
        assert_eq!(meter_window(Some("NEVER"), None, start, now), None);
        assert_eq!(meter_window(None, None, start, now), None);
        assert_eq!(
            meter_window(Some("EVERY_MONTH"), None, start, now),
            Some((at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z")))
        );
        assert_eq!(
            meter_window(Some("EVERY_MONTH"), Some("SUBSCRIPTION_START"), start, now),
            Some((at("2026-02-28T10:00:00Z"), at("2026-03-31T10:00:00Z")))
        );
        assert_eq!(
            meter_window(Some("EVERY_DAY"), None, start, now),
            Some((at("2026-03-15T00:00:00Z"), at("2026-03-16T00:00:00Z")))
        );
        assert_eq!(
            meter_window(Some("EVERY_WEEK"), None, start, now),
            Some((at("2026-03-09T00:00:00Z"), at("2026-03-16T00:00:00Z")))
        );
        assert_eq!(
            meter_window(Some("EVERY_28_DAYS"), None, start, now),
            Some((at("2026-02-28T10:00:00Z"), at("2026-03-28T10:00:00Z")))
        );
        assert_eq!(
            meter_window(Some("EVERY_QUARTER"), None, start, now),
            Some((at("2026-01-01T00:00:00Z"), at("2026-04-01T00:00:00Z")))
        );
    }
}
