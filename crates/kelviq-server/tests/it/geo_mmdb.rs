//! The geo resolver reading a MaxMind DB file, on SQLite and PostgreSQL:
//! the test writes a tiny IPv4 database itself (no test depends on a real
//! one): a network with `country`, one with only `registered_country`, one
//! with neither; the file rewritten is read again without a restart.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use serde_json::json;
use std::net::Ipv4Addr;

/// MaxMind DB data-section encoding of the few types a test needs.
enum Item<'a> {
    Str(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Item<'a>)>),
    Array(Vec<Item<'a>>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29, "small items only");
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes: Vec<u8> = v.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    control(out, kind, bytes.len());
    out.extend(bytes);
}

fn encode(out: &mut Vec<u8>, item: &Item<'_>) {
    match item {
        Item::Str(s) => {
            control(out, 2, s.len());
            out.extend(s.as_bytes());
        }
        Item::U16(v) => uint(out, 5, u64::from(*v)),
        Item::U32(v) => uint(out, 6, u64::from(*v)),
        Item::U64(v) => uint(out, 9, *v),
        Item::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &Item::Str(k));
                encode(out, v);
            }
        }
        Item::Array(items) => {
            control(out, 11, items.len());
            for i in items {
                encode(out, i);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// An IPv4 database (24-bit records) of `(network, prefix, record)`.
fn mmdb(networks: &[(Ipv4Addr, u32, Item<'_>)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
    for (net, prefix, record) in networks {
        let offset = data.len();
        encode(&mut data, record);
        let bits = u32::from(*net);
        let mut node = 0;
        for depth in 0..*prefix {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *prefix {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n,
                    _ => {
                        nodes.push([Rec::Empty; 2]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for n in &nodes {
        for r in n {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend(&(v as u32).to_be_bytes()[1..]);
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(b"\xab\xcd\xefMaxMind.com");
    let meta = Item::Map(vec![
        ("binary_format_major_version", Item::U16(2)),
        ("binary_format_minor_version", Item::U16(0)),
        ("build_epoch", Item::U64(1_800_000_000)),
        ("database_type", Item::Str("Kelviq-Test-Country")),
        ("description", Item::Map(vec![("en", Item::Str("test"))])),
        ("ip_version", Item::U16(4)),
        ("languages", Item::Array(vec![Item::Str("en")])),
        ("node_count", Item::U32(count as u32)),
        ("record_size", Item::U16(24)),
    ]);
    encode(&mut out, &meta);
    out
}

fn country(code: &str) -> Item<'_> {
    Item::Map(vec![("country", Item::Map(vec![("iso_code", Item::Str(code))]))])
}

fn write(path: &std::path::Path, india_or: &str) {
    let db = mmdb(&[
        (Ipv4Addr::new(198, 51, 100, 0), 24, country(india_or)),
        (
            Ipv4Addr::new(203, 0, 113, 0),
            25,
            Item::Map(vec![("registered_country", Item::Map(vec![("iso_code", Item::Str("BR"))]))]),
        ),
        (Ipv4Addr::new(192, 0, 2, 0), 24, Item::Map(vec![("continent", Item::Map(vec![("code", Item::Str("EU"))]))])),
    ]);
    // Written whole, then renamed: a reload never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, db).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

async fn a_maxmind_database_resolves_countries(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("countries.mmdb");
    write(&file, "IN");
    let path = file.clone();
    let s = TestServer::start_with(backend, move |c| {
        c.geoip_file = Some(path);
        c.geo_reload_interval_ms = 50;
    })
    .await;
    let api = Api::new(&s);
    let product =
        api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    let offering = format!("/api/v1/monetization/product-offering/{}/", product["id"].as_str().unwrap());
    let country_of = |ip: &'static str| {
        let path = format!("{offering}?ip_address={ip}");
        let api = &api;
        async move { api.get(&path).await.1["countryCode"].clone() }
    };
    assert_eq!(country_of("198.51.100.200").await, json!("IN"));
    assert_eq!(country_of("203.0.113.5").await, json!("BR"), "registered_country when country is absent");
    assert_eq!(country_of("203.0.113.200").await, json!(null), "outside the /25");
    assert_eq!(country_of("192.0.2.1").await, json!(null), "a record without a country");
    assert_eq!(country_of("8.8.8.8").await, json!(null));
    // Rewritten: read again without a restart.
    write(&file, "PK");
    let mut now = json!(null);
    for _ in 0..100 {
        now = country_of("198.51.100.200").await;
        if now == json!("PK") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(now, json!("PK"));
}

on_both_backends!(a_maxmind_database_resolves_countries);
