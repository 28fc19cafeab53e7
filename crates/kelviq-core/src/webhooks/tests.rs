use super::*;
use proptest::prelude::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn kelviq_signature_is_the_sdks() {
    // The same computation as the official SDKs' validate_event (spec §5.4).
    let secret = "kq_whsec_test";
    let header = signature_header(SignatureFormat::Kelviq, &[secret, "kq_whsec_old"], "id1", 1_717_243_200, b"{}");
    let expected = crate::signing::sign(secret.as_bytes(), b"id1.1717243200.{}");
    assert_eq!(header, format!("v1,{expected}"));
}

#[test]
fn standard_signature_signs_with_each_secret() {
    let (a, b) = (new_secret(), new_secret());
    let header = signature_header(SignatureFormat::Standard, &[&a, &b], "msg_1", 1_700_000_000, b"{\"a\":1}");
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 2);
    for (part, secret) in parts.iter().zip([&a, &b]) {
        let sig = BASE64.decode(part.strip_prefix("v1,").unwrap()).unwrap();
        assert_eq!(sig, mac(&standard_key(secret), "msg_1", 1_700_000_000, b"{\"a\":1}").to_vec());
    }
    assert_eq!(standard_key(&a).len(), 32);
}

#[test]
fn schedule_is_svix_with_jitter() {
    let s = RetrySchedule::default();
    assert_eq!(s.attempts(), 8);
    assert_eq!(s.next_delay(0, 0.0), None, "nothing to wait for before the first attempt");
    assert_eq!(s.next_delay(1, 0.0), Some(Duration::seconds(5)));
    assert_eq!(s.next_delay(1, 1.0), Some(Duration::seconds(6)));
    assert_eq!(s.next_delay(1, -1.0), Some(Duration::seconds(4)));
    assert_eq!(s.next_delay(7, 0.0), Some(Duration::hours(10)));
    assert_eq!(s.next_delay(8, 0.0), None, "eight attempts in all");
    let total: i64 = s.delays.iter().map(|d| d.num_seconds()).sum();
    assert_eq!(total, 99_305, "~27.6 h from the first attempt to the last");
    assert_eq!(RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h", 20).unwrap(), s);
    assert!(RetrySchedule::parse("5x", 20).is_err());
    assert!(RetrySchedule::parse("0s", 20).is_err());
}

#[test]
fn verdicts() {
    let now = at("2026-01-01T00:00:00Z");
    assert_eq!(verdict(Some(204), None, now), Verdict::Delivered);
    assert_eq!(verdict(Some(301), None, now), Verdict::Failed { not_before: None }, "redirects are failures");
    assert_eq!(verdict(None, None, now), Verdict::Failed { not_before: None });
    assert_eq!(verdict(Some(410), None, now), Verdict::Gone);
    assert_eq!(verdict(Some(429), Some("120"), now), Verdict::Failed { not_before: Some(Duration::seconds(120)) });
    assert_eq!(
        verdict(Some(503), Some("Thu, 01 Jan 2026 01:00:00 GMT"), now),
        Verdict::Failed { not_before: Some(Duration::hours(1)) }
    );
    assert_eq!(verdict(Some(503), Some("999999"), now), Verdict::Failed { not_before: Some(MAX_RETRY_AFTER) });
    assert_eq!(verdict(Some(500), Some("120"), now), Verdict::Failed { not_before: None }, "only 429 and 503");
    let s = RetrySchedule::default();
    assert_eq!(next_attempt(&s, 1, Some(Duration::minutes(2)), now, 0.0), Some(now + Duration::minutes(2)));
    assert_eq!(next_attempt(&s, 2, Some(Duration::minutes(2)), now, 0.0), Some(now + Duration::minutes(5)));
    assert_eq!(next_attempt(&s, 8, Some(Duration::minutes(2)), now, 0.0), None);
}

#[test]
fn disabling() {
    let p = DisablePolicy::default();
    let first = at("2026-01-01T00:00:00Z");
    assert!(!p.disables(first, first + Duration::days(5) - Duration::seconds(1)));
    assert!(p.disables(first, first + Duration::days(5)));
    let quick = DisablePolicy { after: Duration::minutes(1), min_span: Duration::hours(12) };
    assert!(!quick.disables(first, first + Duration::hours(1)), "a short burst of failures disables nothing");
}

#[test]
fn private_addresses() {
    for ip in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",
        "2002:a00:1::",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "::127.0.0.1",
    ] {
        assert!(is_private(ip.parse().unwrap()), "{ip} is private");
    }
    for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::", "64:ff9b::808:808"] {
        assert!(!is_private(ip.parse().unwrap()), "{ip} is public");
    }
    let allowed = [Subnet::parse("127.0.0.0/8").unwrap(), Subnet::parse("::1/128").unwrap()];
    assert!(may_reach("127.0.0.1".parse().unwrap(), &allowed));
    assert!(may_reach("::ffff:127.0.0.1".parse().unwrap(), &allowed));
    assert!(may_reach("::1".parse().unwrap(), &allowed));
    assert!(!may_reach("10.0.0.1".parse().unwrap(), &allowed));
    assert!(Subnet::parse("10.0.0.0/33").is_err());
    assert!(Subnet::parse("nope").is_err());
}

#[test]
fn filters() {
    assert!(wants(&[], "order.created"));
    assert!(wants(&["order.created".into()], "order.created"));
    assert!(!wants(&["order.created".into()], "order.updated"));
}

proptest! {
    #[test]
    fn jitter_stays_within_its_percent(failed in 1u32..8, unit in -1.0f64..=1.0) {
        let s = RetrySchedule::default();
        let base = s.delays[failed as usize - 1].num_milliseconds();
        let d = s.next_delay(failed, unit).unwrap().num_milliseconds();
        prop_assert!(d >= base * 80 / 100 && d <= base * 120 / 100);
    }

    #[test]
    fn retry_after_is_capped(seconds in 0i64..10_000_000) {
        let now = at("2026-01-01T00:00:00Z");
        let wait = parse_retry_after(&seconds.to_string(), now).unwrap();
        prop_assert!(wait <= MAX_RETRY_AFTER && wait >= Duration::zero());
    }

    #[test]
    fn subnets_hold_their_own_addresses(a in any::<u32>(), prefix in 0u8..=32, b in any::<u32>()) {
        let net = Subnet { addr: IpAddr::V4(Ipv4Addr::from(a)), prefix };
        prop_assert!(net.contains(IpAddr::V4(Ipv4Addr::from(a))));
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        prop_assert_eq!(net.contains(IpAddr::V4(Ipv4Addr::from(b))), a & mask == b & mask);
    }

    #[test]
    fn mapped_addresses_are_judged_as_their_ipv4(a in any::<u32>()) {
        let v4 = Ipv4Addr::from(a);
        prop_assert_eq!(is_private(IpAddr::V6(v4.to_ipv6_mapped())), is_private(IpAddr::V4(v4)));
    }
}
