//! Calendar arithmetic for billing periods and meter resets, and proration.
//!
//! Periods are counted from an anchor, never stepped from the previous
//! boundary, so a subscription that starts on 31 January renews on the last
//! day of February and again on 31 March (not on 28 March).

use crate::plans::ChargePeriod;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// A length of time in calendar units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Days(u32),
    Weeks(u32),
    Months(u32),
    Years(u32),
}

impl ChargePeriod {
    /// How long one billing period is; `None` for one-time charges.
    pub fn interval(self) -> Option<Interval> {
        Some(match self {
            ChargePeriod::OneTime => return None,
            ChargePeriod::Daily => Interval::Days(1),
            ChargePeriod::Weekly => Interval::Weeks(1),
            ChargePeriod::TwentyEightDays => Interval::Days(28),
            ChargePeriod::Monthly => Interval::Months(1),
            ChargePeriod::ThreeMonths => Interval::Months(3),
            ChargePeriod::SixMonths => Interval::Months(6),
            ChargePeriod::Yearly => Interval::Years(1),
        })
    }

    /// The API's `recurrence` string (spec §4.8): `"1 month"`, `"3 month"`,
    /// `"28 day"`, …; empty for one-time.
    pub fn recurrence(self) -> &'static str {
        match self {
            ChargePeriod::OneTime => "",
            ChargePeriod::Daily => "1 day",
            ChargePeriod::Weekly => "1 week",
            ChargePeriod::TwentyEightDays => "28 day",
            ChargePeriod::Monthly => "1 month",
            ChargePeriod::ThreeMonths => "3 month",
            ChargePeriod::SixMonths => "6 month",
            ChargePeriod::Yearly => "1 year",
        }
    }
}

/// `billingType`, `recurrenceUnit` and `recurrenceType` derived from a recurrence string.
pub fn recurrence_fields(recurrence: &str) -> (&'static str, Option<i64>, Option<String>) {
    let mut parts = recurrence.split_whitespace();
    match (parts.next().and_then(|n| n.parse::<i64>().ok()), parts.next()) {
        (Some(n), Some(unit)) => ("SUBSCRIPTION", Some(n), Some(unit.to_ascii_uppercase())),
        _ if recurrence.trim().is_empty() => ("ONE_TIME", None, None),
        _ => ("SUBSCRIPTION", None, Some(recurrence.trim().to_ascii_uppercase())),
    }
}

/// Meter reset periods (`reset` on a plan entitlement) as intervals; `None` never resets.
pub fn reset_interval(reset: &str) -> Option<Interval> {
    Some(match reset {
        "EVERY_DAY" => Interval::Days(1),
        "EVERY_WEEK" => Interval::Weeks(1),
        "EVERY_28_DAYS" => Interval::Days(28),
        "EVERY_MONTH" => Interval::Months(1),
        "EVERY_QUARTER" => Interval::Months(3),
        "EVERY_YEAR" => Interval::Years(1),
        _ => return None,
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).expect("valid").pred_opt().expect("valid").day()
}

fn add_months(anchor: DateTime<Utc>, months: i64) -> DateTime<Utc> {
    let total = anchor.year() as i64 * 12 + anchor.month0() as i64 + months;
    let (year, month) = (total.div_euclid(12) as i32, total.rem_euclid(12) as u32 + 1);
    let day = anchor.day().min(days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("clamped day is valid");
    Utc.from_utc_datetime(&date.and_time(anchor.time()))
}

/// The `n`th period boundary after `anchor` (`n = 0` is the anchor itself).
pub fn boundary(anchor: DateTime<Utc>, interval: Interval, n: i64) -> DateTime<Utc> {
    match interval {
        Interval::Days(d) => anchor + Duration::days(d as i64 * n),
        Interval::Weeks(w) => anchor + Duration::weeks(w as i64 * n),
        Interval::Months(m) => add_months(anchor, m as i64 * n),
        Interval::Years(y) => add_months(anchor, 12 * y as i64 * n),
    }
}

/// The period `[start, end)` that contains `at`, counting from `anchor`
/// (periods before the anchor count backwards).
pub fn period_containing(
    anchor: DateTime<Utc>,
    interval: Interval,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    // A first guess from the average length, then step to the right period.
    let approx_days = match interval {
        Interval::Days(d) => d as f64,
        Interval::Weeks(w) => 7.0 * w as f64,
        Interval::Months(m) => 30.436875 * m as f64,
        Interval::Years(y) => 365.2425 * y as f64,
    };
    let mut n = ((at - anchor).num_seconds() as f64 / (approx_days * 86_400.0)).floor() as i64;
    while boundary(anchor, interval, n) > at {
        n -= 1;
    }
    while boundary(anchor, interval, n + 1) <= at {
        n += 1;
    }
    (boundary(anchor, interval, n), boundary(anchor, interval, n + 1))
}

/// The start of the calendar unit containing `at` (midnight UTC, Monday,
/// the 1st, the quarter's first day, 1 January): where calendar-anchored
/// meters (`resetTime: BEGINNING_OF_PERIOD`) count from.
pub fn calendar_anchor(interval: Interval, at: DateTime<Utc>) -> DateTime<Utc> {
    let d = at.date_naive();
    let start = match interval {
        Interval::Days(_) => d,
        Interval::Weeks(_) => d - Duration::days(d.weekday().num_days_from_monday() as i64),
        Interval::Months(m) if m % 3 == 0 => {
            NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1).expect("valid")
        }
        Interval::Months(_) => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid"),
        Interval::Years(_) => NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("valid"),
    };
    Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).expect("midnight"))
}

/// What a mid-period plan change costs (spec §4.7), in minor units.
///
/// With `r` the seconds left in the period and `T` its length:
/// `credit = round(old × r / T)` for the unused part of the old price,
/// `charge = round(new × r / T)` for the rest of the period at the new price,
/// `net = charge − credit` (negative: the customer is owed the difference).
/// Rounding is half up, once per amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proration {
    pub credit_minor: i64,
    pub charge_minor: i64,
    pub net_minor: i64,
}

fn share(amount: i64, remaining: i64, total: i64) -> i64 {
    if total <= 0 {
        return 0;
    }
    let (a, r, t) = (amount as i128, remaining.clamp(0, total) as i128, total as i128);
    ((a * r * 2 + t) / (2 * t)) as i64
}

pub fn prorate(
    old_minor: i64,
    new_minor: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Proration {
    let total = (end - start).num_seconds();
    let remaining = (end - at).num_seconds();
    let credit = share(old_minor, remaining, total);
    let charge = share(new_minor, remaining, total);
    Proration { credit_minor: credit, charge_minor: charge, net_minor: charge - credit }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn month_ends_are_kept() {
        let start = at("2026-01-31T09:30:00Z");
        let monthly = ChargePeriod::Monthly.interval().unwrap();
        let renewals: Vec<String> = (1..=4).map(|n| boundary(start, monthly, n).to_rfc3339()).collect();
        assert_eq!(
            renewals,
            [
                "2026-02-28T09:30:00+00:00",
                "2026-03-31T09:30:00+00:00",
                "2026-04-30T09:30:00+00:00",
                "2026-05-31T09:30:00+00:00"
            ]
        );
        assert_eq!(boundary(at("2028-01-31T00:00:00Z"), monthly, 1), at("2028-02-29T00:00:00Z"), "leap year");
        assert_eq!(boundary(at("2028-02-29T00:00:00Z"), Interval::Years(1), 1), at("2029-02-28T00:00:00Z"));
        assert_eq!(boundary(at("2028-02-29T00:00:00Z"), Interval::Years(1), 4), at("2032-02-29T00:00:00Z"));
        assert_eq!(boundary(start, Interval::Days(28), 1), at("2026-02-28T09:30:00Z"));
        assert_eq!(boundary(start, ChargePeriod::ThreeMonths.interval().unwrap(), 1), at("2026-04-30T09:30:00Z"));
    }

    #[test]
    fn periods_and_calendar_anchors() {
        let start = at("2026-01-31T00:00:00Z");
        let (s, e) = period_containing(start, Interval::Months(1), at("2026-03-15T12:00:00Z"));
        assert_eq!((s, e), (at("2026-02-28T00:00:00Z"), at("2026-03-31T00:00:00Z")));
        let (s, e) = period_containing(start, Interval::Months(1), at("2026-03-31T00:00:00Z"));
        assert_eq!(
            (s, e),
            (at("2026-03-31T00:00:00Z"), at("2026-04-30T00:00:00Z")),
            "a boundary starts the next period"
        );
        assert_eq!(calendar_anchor(Interval::Weeks(1), at("2026-11-21T15:00:00Z")), at("2026-11-16T00:00:00Z"));
        assert_eq!(calendar_anchor(Interval::Months(3), at("2026-11-21T15:00:00Z")), at("2026-10-01T00:00:00Z"));
        assert_eq!(calendar_anchor(Interval::Months(1), at("2026-11-21T15:00:00Z")), at("2026-11-01T00:00:00Z"));
        assert_eq!(calendar_anchor(Interval::Years(1), at("2026-11-21T15:00:00Z")), at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn recurrence() {
        assert_eq!(
            recurrence_fields(ChargePeriod::Monthly.recurrence()),
            ("SUBSCRIPTION", Some(1), Some("MONTH".into()))
        );
        assert_eq!(
            recurrence_fields(ChargePeriod::TwentyEightDays.recurrence()),
            ("SUBSCRIPTION", Some(28), Some("DAY".into()))
        );
        assert_eq!(recurrence_fields(""), ("ONE_TIME", None, None));
        assert_eq!(reset_interval("EVERY_QUARTER"), Some(Interval::Months(3)));
        assert_eq!(reset_interval("NEVER"), None);
    }

    #[test]
    fn proration_matches_the_spec_example() {
        // $100 → $200 at half the period: credit $50, charge $100, collect $50.
        let (s, e) = (at("2026-04-01T00:00:00Z"), at("2026-05-01T00:00:00Z"));
        let p = prorate(10_000, 20_000, s, e, at("2026-04-16T00:00:00Z"));
        assert_eq!(p, Proration { credit_minor: 5_000, charge_minor: 10_000, net_minor: 5_000 });
        let down = prorate(20_000, 10_000, s, e, at("2026-04-16T00:00:00Z"));
        assert_eq!(down.net_minor, -5_000);
        assert_eq!(prorate(999, 1999, s, e, s), Proration { credit_minor: 999, charge_minor: 1999, net_minor: 1000 });
        assert_eq!(prorate(999, 1999, s, e, e).net_minor, 0);
    }

    proptest! {
        #[test]
        fn monthly_boundaries_keep_the_anchor_day(
            y in 1990i32..2100, m in 1u32..=12, d in 1u32..=31, n in 0i64..600, months in 1u32..=12
        ) {
            let d = d.min(days_in_month(y, m));
            let anchor = Utc.with_ymd_and_hms(y, m, d, 8, 15, 0).unwrap();
            let b = boundary(anchor, Interval::Months(months), n);
            let total = y as i64 * 12 + m as i64 - 1 + months as i64 * n;
            prop_assert_eq!(b.year() as i64 * 12 + b.month0() as i64, total);
            prop_assert_eq!(b.day(), d.min(days_in_month(b.year(), b.month())));
            prop_assert_eq!(b.time(), anchor.time());
            prop_assert!(boundary(anchor, Interval::Months(months), n + 1) > b);
        }

        #[test]
        fn the_containing_period_contains(
            anchor_s in 0i64..2_000_000_000, offset in -100_000_000i64..400_000_000, kind in 0usize..4, k in 1u32..4
        ) {
            let interval = [Interval::Days(k), Interval::Weeks(k), Interval::Months(k), Interval::Years(k)][kind];
            let anchor = Utc.timestamp_opt(anchor_s, 0).unwrap();
            let t = anchor + Duration::seconds(offset);
            let (s, e) = period_containing(anchor, interval, t);
            prop_assert!(s <= t && t < e);
        }

        #[test]
        fn proration_is_bounded(old in 0i64..10_000_000, new in 0i64..10_000_000, frac in 0u32..=1000) {
            let (s, e) = (Utc.timestamp_opt(1_700_000_000, 0).unwrap(), Utc.timestamp_opt(1_702_592_000, 0).unwrap());
            let at = s + Duration::seconds((e - s).num_seconds() * frac as i64 / 1000);
            let p = prorate(old, new, s, e, at);
            prop_assert!(p.credit_minor >= 0 && p.credit_minor <= old);
            prop_assert!(p.charge_minor >= 0 && p.charge_minor <= new);
            prop_assert_eq!(p.net_minor, p.charge_minor - p.credit_minor);
        }
    }
}
