//! The geo resolver and the promotions edge answer: a generated range file
//! of 400,000 ranges (Tor's format), its lookups timed one by one, then
//! `GET /promotions?promotion_id=` with a client key under load beside the
//! `/healthz` floor, from the forwarded addresses of many visitors.

use crate::bench::{report, seed_post};
use crate::loadgen::{load, Request};
use kelviq_core::geo::IpCountries;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Ranges in the generated file.
pub const RANGES: u32 = 400_000;
const COUNTRIES: &[&str] = &["IN", "BR", "US", "DE", "MX", "ID", "NG", "FR", "VN", "EG"];
/// Each range is 256 addresses, one range every 512, from 1.0.0.0.
const FIRST: u32 = 1 << 24;

/// An address inside range `i`.
fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(FIRST + (i % RANGES) * 512 + 7)
}

/// Writes the range file into `dir`.
pub fn write_ranges(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::fmt::Write;
    let mut text = String::with_capacity(RANGES as usize * 26);
    for i in 0..RANGES {
        let start = FIRST + i * 512;
        let _ = writeln!(text, "{start},{},{}", start + 255, COUNTRIES[i as usize % COUNTRIES.len()]);
    }
    let path = dir.join("geoip");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Times lookups one by one: reading the file, then p50/p99/max.
pub fn time_lookups(path: &Path) -> anyhow::Result<()> {
    let read = Instant::now();
    let text = std::fs::read_to_string(path)?;
    let mut db = IpCountries::default();
    db.parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    db.finish();
    let loaded = read.elapsed();
    let mut ns = Vec::with_capacity(1_000_000);
    let mut found = 0u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..1_000_000 {
        // A xorshift walk over the whole IPv4 space: hits and misses.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = IpAddr::V4(Ipv4Addr::from((x >> 32) as u32 % (FIRST + RANGES * 512 + 1024)));
        let t = Instant::now();
        found += u64::from(std::hint::black_box(db.country(ip)).is_some());
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)];
    println!(
        "geo lookup: {} ranges read in {:.0} ms; 1,000,000 lookups ({found} found): p50 {} ns, p99 {} ns, max {} ns",
        db.len(),
        loaded.as_secs_f64() * 1000.0,
        at(0.5),
        at(0.99),
        ns[ns.len() - 1]
    );
    Ok(())
}

/// The edge answer under load, beside the floor measured in the same run.
pub async fn run(
    addr: SocketAddr,
    client: &reqwest::Client,
    base: &str,
    server_key: &str,
    client_key: &str,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    seed_post(
        client,
        base,
        server_key,
        "/promotions/",
        serde_json::json!({"name": "PPP", "groupPercentages": [{"group": "TIER_4", "percentage": 40}, {"group": "TIER_3", "percentage": 20}]}),
    )
    .await?;
    let listed: serde_json::Value =
        client.get(format!("{base}/api/v1/promotions/")).bearer_auth(server_key).send().await?.json().await?;
    let id = listed["results"][0]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no promotion: {listed}"))?.to_string();
    let floor = load(addr, None, connections, seconds, |_, _| Request {
        path: "/healthz".into(),
        body: None,
        items: 1,
        headers: String::new(),
    })
    .await;
    let path: std::borrow::Cow<'static, str> = format!("/api/v1/promotions?promotion_id={id}").into();
    let edge = load(addr, Some(client_key), connections, seconds, move |worker, i| Request {
        path: path.clone(),
        body: None,
        items: 1,
        headers: format!(
            "X-Forwarded-For: {}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36\r\n",
            address((worker as u32).wrapping_mul(7919).wrapping_add(i as u32))
        ),
    })
    .await;
    report("healthz (HTTP floor)", &floor);
    report("promotion (edge answer)", &edge);
    println!("  promotion throughput = {:.0} % of the floor", 100.0 * edge.rate() / floor.rate().max(1.0));
    Ok(())
}
