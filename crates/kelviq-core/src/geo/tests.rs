use super::*;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn tor_and_csv_files() {
    let mut db = IpCountries::default();
    // Tor's geoip: decimal IPv4 numbers. 1.0.0.0–1.0.0.255 is AU; 2.0.0.0–2.0.0.255 is ??.
    db.parse("# Last updated\n16777216,16777471,AU\n33554432,33554687,??\n50331648,50331903,in\n").unwrap();
    // Tor's geoip6 and a CSV with a header: addresses.
    db.parse("2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP\n").unwrap();
    db.parse("\"start\",\"end\",\"country\"\n\"203.0.113.0\",\"203.0.113.255\",\"BR\"\n").unwrap();
    db.finish();
    assert_eq!(db.len(), 4);
    assert_eq!(db.country(ip("1.0.0.7")), Some("AU"));
    assert_eq!(db.country(ip("1.0.1.0")), None);
    assert_eq!(db.country(ip("2.0.0.1")), None, "?? is unknown");
    assert_eq!(db.country(ip("3.0.0.255")), Some("IN"));
    assert_eq!(db.country(ip("::ffff:203.0.113.9")), Some("BR"), "IPv4-mapped");
    assert_eq!(db.country(ip("2001:200::1")), Some("JP"));
    assert_eq!(db.country(ip("2001:300::1")), None);
    let err = IpCountries::default().parse("1,2,US\nnope,3,US\n").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(IpCountries::default().parse("1,2,USA\n").is_err());
    assert!(IpCountries::default().parse("5,2,US\n").is_err());
}

#[test]
fn sets_and_crawlers() {
    let set = IpSet::parse("# vpn\n203.0.113.0/24\n198.51.100.7\n2001:db8::/32 # docs\n203.0.113.128/25\n").unwrap();
    assert_eq!(set.len(), 3, "the /25 is inside the /24");
    assert!(set.contains(ip("203.0.113.200")) && set.contains(ip("198.51.100.7")) && set.contains(ip("2001:db8::5")));
    assert!(!set.contains(ip("198.51.100.8")) && !set.contains(ip("2001:db9::1")));
    assert!(IpSet::parse("10.0.0.0/33").is_err());
    assert!(IpSet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    assert!(is_crawler(Some("Mozilla/5.0 (compatible; Googlebot/2.1)")));
    assert!(is_crawler(None) && is_crawler(Some("curl/8.5.0")));
    assert!(!is_crawler(Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126 Safari/537.36")));
}

#[test]
fn forwarded_for() {
    let trusted = IpSet::parse("10.0.0.0/8").unwrap();
    let xff = Some("198.51.100.1, 203.0.113.9, 10.0.0.2");
    assert_eq!(client_address(ip("10.0.0.1"), xff, &trusted), ip("203.0.113.9"), "the rightmost untrusted hop");
    assert_eq!(client_address(ip("192.0.2.1"), xff, &trusted), ip("192.0.2.1"), "an untrusted peer is the client");
    assert_eq!(client_address(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
    assert_eq!(client_address(ip("10.0.0.1"), Some("garbage"), &trusted), ip("10.0.0.1"));
}

#[test]
fn names_flags_and_groups() {
    assert_eq!(country_name("in"), Some("India"));
    assert_eq!(country_name("BO"), Some("Bolivia"));
    assert_eq!(country_name("QQ"), None);
    assert_eq!(flag("de"), "\u{1F1E9}\u{1F1EA}");
    let mut seen = std::collections::HashSet::new();
    for (_, members) in countries::DEFAULT_GROUPS {
        for c in *members {
            assert!(country_name(c).is_some(), "{c}");
            assert!(seen.insert(c), "{c} in two groups");
        }
    }
}

proptest! {
    #[test]
    fn lookups_agree_with_a_scan(mut starts in proptest::collection::vec(0u32..1_000_000, 1..60), probe in 0u32..1_100_000) {
        starts.sort_unstable();
        starts.dedup();
        let text: String = starts.iter().map(|s| format!("{},{},US\n", s, s + 500)).collect();
        let mut db = IpCountries::default();
        db.parse(&text).unwrap();
        db.finish();
        let scan = starts.iter().any(|s| (*s..=s + 500).contains(&probe));
        prop_assert_eq!(db.country(IpAddr::V4(probe.into())).is_some(), scan);
    }
}
