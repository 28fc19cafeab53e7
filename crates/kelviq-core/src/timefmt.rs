//! The Kelviq API mixes several timestamp formats (spec §2.3); these functions
//! reproduce each exactly. Storage keeps instants as microseconds since the epoch.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Microseconds since the Unix epoch: how instants are stored.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `2025-06-04T06:03:30.195790Z`: customer and payment-method `createdOn`/`modifiedOn`.
pub fn iso_micros(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `2025-07-28T10:46:34Z`: subscription periods, orders, sessions, webhook `created_at`.
pub fn iso_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2025-05-22 08:27:45.430732`: usage and event report timestamps (UTC, no zone).
pub fn report_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Parses the report timestamp format, the exact one the Python SDK validates.
pub fn parse_report_timestamp(s: &str) -> Option<DateTime<Utc>> {
    // Python's `%f` needs one to six digits after the dot; chrono would accept none.
    let (_, fraction) = s.split_once('.')?;
    if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.6f").ok().map(|n| Utc.from_utc_datetime(&n))
}

/// `2025-05-22 08:27:45`: entitlement `resetAt`.
pub fn reset_at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `2026-07-29`: start/end dates and date filters.
pub fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn formats_match_the_spec_examples() {
        let t = at("2025-06-04T06:03:30.195790Z");
        assert_eq!(iso_micros(t), "2025-06-04T06:03:30.195790Z");
        assert_eq!(iso_seconds(t), "2025-06-04T06:03:30Z");
        assert_eq!(report_timestamp(t), "2025-06-04 06:03:30.195790");
        assert_eq!(reset_at(t), "2025-06-04 06:03:30");
        assert_eq!(date(t.date_naive()), "2025-06-04");
        // Whole seconds still carry six fractional digits where the format asks for them.
        assert_eq!(iso_micros(at("2025-06-04T06:03:30Z")), "2025-06-04T06:03:30.000000Z");
    }

    #[test]
    fn report_timestamp_parses_only_the_exact_format() {
        assert!(parse_report_timestamp("2025-05-22 08:27:45.430732").is_some());
        assert!(parse_report_timestamp("2025-05-22T08:27:45.430732").is_none());
        assert!(parse_report_timestamp("2025-05-22 08:27:45").is_none());
    }

    proptest! {
        #[test]
        fn micros_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_000_000i64) {
            prop_assert_eq!(to_micros(from_micros(us)), us);
        }

        #[test]
        fn report_timestamp_round_trips(us in 0i64..4_102_444_800_000_000i64) {
            let t = from_micros(us);
            prop_assert_eq!(parse_report_timestamp(&report_timestamp(t)), Some(t));
        }
    }
}
