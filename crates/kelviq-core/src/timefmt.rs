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
    let (whole, fraction) = s.split_once('.')?;
    if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The usual shape, read by hand (events arrive by the hundred thousand).
    let b = whole.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone())?.iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    if b.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[16] == b':' {
        let micros = fraction.parse::<u32>().ok()? * 10u32.pow(6 - fraction.len() as u32);
        // (chrono reads no year 0 from %Y)
        let year = digits(0..4).filter(|y| *y > 0)?;
        let date = NaiveDate::from_ymd_opt(year as i32, digits(5..7)?, digits(8..10)?)?;
        let time = date.and_hms_micro_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?, micros)?;
        return Some(Utc.from_utc_datetime(&time));
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
        assert_eq!(parse_report_timestamp("2025-05-22 08:27:45.4"), Some(at("2025-05-22T08:27:45.4Z")));
        for bad in
            ["2025-02-30 08:27:45.1", "2025-05-22 24:00:00.0", "2025-05-22 08:27:45.1234567", "2025-5-22 08:27:45.1"]
        {
            assert!(parse_report_timestamp(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn micros_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_000_000i64) {
            prop_assert_eq!(to_micros(from_micros(us)), us);
        }

        /// The hand-read shape agrees with chrono's reading of the format
        /// (which wants all six fractional digits; Python's `%f`, and we,
        /// take one to six; like Python, we refuse a 60th second).
        #[test]
        fn report_timestamp_reads_as_chrono_does(
            y in 1u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62, sec in 0u32..60,
            frac in "[0-9]{1,6}", sep in prop::sample::select(vec![" ", "T", "  "]),
        ) {
            let s = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{sec:02}.{frac:0<6}");
            let chrono = NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.6f").ok().map(|n| Utc.from_utc_datetime(&n));
            prop_assert_eq!(parse_report_timestamp(&s), chrono, "{}", s);
            if sep == " " {
                let short = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{frac}");
                prop_assert_eq!(parse_report_timestamp(&short), chrono, "{}", short);
            }
        }

        #[test]
        fn report_timestamp_round_trips(us in 0i64..4_102_444_800_000_000i64) {
            let t = from_micros(us);
            prop_assert_eq!(parse_report_timestamp(&report_timestamp(t)), Some(t));
        }
    }
}
