//! Nothing acknowledged is lost: the server is killed with SIGKILL in the
//! middle of a stream of events and keyed usage reports; after a restart
//! every acknowledged one is counted exactly once, and retrying the
//! unacknowledged ones with the same keys counts each once. A webhook
//! attempt in flight at a SIGKILL is made again by the next process.

use crate::common;

use common::process::serve;
use common::receiver::{Receiver, Reply};
use common::{http, Backend, TestDatabase};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn env_for(db: &TestDatabase, backend: Backend) -> Vec<(&'static str, String)> {
    match backend {
        Backend::Sqlite => vec![("KELVIQ_DATA_DIR", db.dir().join("data").display().to_string())],
        Backend::Postgres => vec![("DATABASE_URL", db.url.clone())],
    }
}

async fn post(url: &str, key: &str, path: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
    let res =
        http().post(format!("{url}{path}")).bearer_auth(key).json(body).timeout(Duration::from_secs(10)).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

async fn must(url: &str, key: &str, path: &str, body: Value) -> Value {
    let (status, v) = post(url, key, path, &body).await.unwrap();
    assert!(status < 300, "{path}: {status} {v}");
    v
}

/// What one stream sent and what the server acknowledged.
#[derive(Default)]
struct Sent {
    tried: BTreeSet<String>,
    acked: BTreeSet<String>,
}

async fn stream(url: String, key: String, prefix: String, sent: Arc<Mutex<Sent>>) {
    for i in 0.. {
        let k = format!("{prefix}-{i}");
        let (path, body) = if i % 3 == 0 {
            (
                "/api/v1/report/usage/",
                json!({"customerId": "dur", "featureId": "reports", "value": 1, "behaviour": "DELTA", "idempotencyKey": k}),
            )
        } else {
            let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            (
                "/api/v1/report/event/",
                json!({"customerId": "dur", "eventName": "hit", "idempotencyKey": k, "timestamp": ts}),
            )
        };
        sent.lock().unwrap().tried.insert(k.clone());
        match post(&url, &key, path, &body).await {
            Ok((200, _)) => {
                sent.lock().unwrap().acked.insert(k);
            }
            _ => return, // the server is gone
        }
    }
}

async fn killed_mid_stream(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db, backend);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = serve(&env_refs);
    let key = server.server_key.clone().expect("first start prints the keys");
    let url = server.url.clone();
    must(&url, &key, "/api/v1/catalog/products/", json!({"name": "P", "identifier": "p", "taxCode": "saas"})).await;
    let units = json!({"singular": "u", "plural": "u"});
    must(
        &url,
        &key,
        "/api/v1/catalog/features/",
        json!({"name": "Reports", "featureType": "METER",
        "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
    )
    .await;
    must(&url, &key, "/api/v1/catalog/features/", json!({"name": "Hits", "featureType": "METER",
        "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units}, "meter": {"aggregation": {"function": "COUNT"}, "filters": []}})).await;
    must(&url, &key, "/api/v1/catalog/plans/", json!({"name": "P", "identifier": "p", "product": "p"})).await;
    must(
        &url,
        &key,
        "/api/v1/catalog/plans/p/prices/bulk/",
        json!({"prices": [{"priceType": "FREE", "currency": "USD"}]}),
    )
    .await;
    must(
        &url,
        &key,
        "/api/v1/catalog/plans/p/features/",
        json!({"planEntitlements": [
        {"feature": "reports", "details": {"hasUnlimitedUsage": true, "reset": "NEVER"}},
        {"feature": "hits", "details": {"hasUnlimitedUsage": true, "reset": "NEVER"}}]}),
    )
    .await;
    must(&url, &key, "/api/v1/catalog/plans/p/publish/", json!({})).await;
    let s = must(&url, &key, "/api/v1/checkout/", json!({"planIdentifier": "p", "chargePeriod": "ONE_TIME", "customerId": "dur", "successUrl": "https://x.example/"})).await;
    must(
        &url,
        &key,
        &format!("/api/v1/checkout/sessions/{}/complete/", s["checkoutSessionId"].as_str().unwrap()),
        json!({}),
    )
    .await;

    // Eight streams, then SIGKILL while they run.
    let sent: Vec<Arc<Mutex<Sent>>> = (0..8).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(stream(url.clone(), key.clone(), format!("s{i}"), s.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    for t in tasks {
        t.await.unwrap();
    }
    let (mut tried, mut acked) = (BTreeSet::new(), BTreeSet::new());
    for s in &sent {
        let s = s.lock().unwrap();
        tried.extend(s.tried.iter().cloned());
        acked.extend(s.acked.iter().cloned());
    }
    assert!(acked.len() > 50, "the stream ran before the kill: {} acknowledged", acked.len());

    // Restart on the same database: every acknowledged one is there.
    let server = serve(&env_refs);
    let url = server.url.clone();
    let usage = |rows: &Value, feature: &str| -> i64 {
        rows["entitlements"].as_array().unwrap().iter().find(|r| r["featureId"] == feature).unwrap()["currentUsage"]
            .as_i64()
            .unwrap()
    };
    let rows: Value = http()
        .get(format!("{url}/api/v1/entitlements/?customer_id=dur"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acked_reports = acked.iter().filter(|k| is_report(k)).count() as i64;
    let acked_events = acked.len() as i64 - acked_reports;
    let (reports, hits) = (usage(&rows, "reports"), usage(&rows, "hits"));
    let tried_reports = tried.iter().filter(|k| is_report(k)).count() as i64;
    // Acknowledged ⇒ counted; what was in flight at the kill may or may not have committed.
    assert!(reports >= acked_reports && reports <= tried_reports, "{reports} reports for {acked_reports} acknowledged");
    assert!(
        hits >= acked_events && hits <= tried.len() as i64 - tried_reports,
        "{hits} hits for {acked_events} acknowledged"
    );

    // Retrying everything that was sent (same keys) counts each exactly once.
    for k in &tried {
        let (path, body) = if is_report(k) {
            (
                "/api/v1/report/usage/",
                json!({"customerId": "dur", "featureId": "reports", "value": 1, "behaviour": "DELTA", "idempotencyKey": k}),
            )
        } else {
            (
                "/api/v1/report/event/",
                json!({"customerId": "dur", "eventName": "hit", "idempotencyKey": k, "timestamp": "2026-01-01 00:00:00.000000"}),
            )
        };
        let (status, v) = post(&url, &key, path, &body).await.unwrap();
        assert_eq!(status, 200, "{v}");
    }
    let rows: Value = http()
        .get(format!("{url}/api/v1/entitlements/?customer_id=dur"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage(&rows, "reports"), tried_reports);
    assert_eq!(usage(&rows, "hits"), tried.len() as i64 - tried_reports);
}

/// Every third key of a stream is a usage report.
fn is_report(key: &str) -> bool {
    key.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n % 3 == 0)
}

/// A webhook attempt in flight when the process is killed is made again,
/// with the same webhook-id, by the next process once the dead one's lease
/// has ended (an attempt's timeout and a few seconds).
async fn killed_mid_webhook_attempt(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let rx = Receiver::start().await;
    rx.script(|n, _| if n == 1 { Reply::Hang(Duration::from_secs(60)) } else { Reply::Status(200) });
    let mut env = env_for(&db, backend);
    env.push(("KELVIQ_WEBHOOK_ALLOW_SUBNETS", "127.0.0.0/8".into()));
    env.push(("KELVIQ_WEBHOOK_TIMEOUT_MS", "3000".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = serve(&env_refs);
    let key = server.server_key.clone().expect("first start prints the keys");
    let url = server.url.clone();
    must(&url, &key, "/api/v1/webhooks/endpoints/", json!({"url": format!("{}/hook", rx.url)})).await;
    must(&url, &key, "/api/v1/customers/", json!({"customerId": "cus_killed"})).await;
    let first = rx.wait_for("/hook", 1, Duration::from_secs(20)).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let killed_at = std::time::Instant::now();

    let server = serve(&env_refs);
    let got = rx.wait_for("/hook", 2, Duration::from_secs(30)).await;
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert!(killed_at.elapsed() < Duration::from_secs(20), "taken again after {:?}", killed_at.elapsed());
    let event = first[0].header("webhook-id").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let res = http()
            .get(format!("{}/api/v1/webhooks/events/{event}/attempts/", server.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let attempts: Value = res.json().await.unwrap();
        // The killed attempt left no record; the one after the restart succeeded.
        if attempts["results"].as_array().is_some_and(|a| a.iter().any(|a| a["statusCode"] == 200)) {
            assert_eq!(attempts["count"], 1, "{attempts}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{attempts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.got_on("/hook").len(), 2, "attempted again once");
}

/// A billing run killed (SIGKILL) half way and run again renews every
/// subscription exactly once: one renewal invoice each, numbers in
/// sequence without a gap or a repeat.
async fn killed_mid_billing_run(backend: Backend) {
    const SUBSCRIPTIONS: usize = 600;
    let db = TestDatabase::new(backend).await;
    let env = env_for(&db, backend);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = serve(&env_refs);
    let key = server.server_key.clone().expect("first start prints the keys");
    let url = server.url.clone();
    must(&url, &key, "/api/v1/catalog/products/", json!({"name": "Run", "identifier": "run", "taxCode": "saas"})).await;
    must(&url, &key, "/api/v1/catalog/plans/", json!({"name": "Basic", "identifier": "basic", "product": "run"})).await;
    let prices = json!({"prices": [{"priceType": "PAID", "currency": "USD",
        "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]}]}]});
    must(&url, &key, "/api/v1/catalog/plans/basic/prices/bulk/", prices).await;
    must(&url, &key, "/api/v1/catalog/plans/basic/publish/", json!({})).await;
    let buys: Vec<_> = (0..SUBSCRIPTIONS)
        .map(|i| {
            let (url, key) = (url.clone(), key.clone());
            async move {
                let session = must(
                    &url,
                    &key,
                    "/api/v1/checkout/",
                    json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY",
                    "customerId": format!("run{i}"), "successUrl": "https://x.example/"}),
                )
                .await;
                let id = session["checkoutSessionId"].as_str().unwrap().to_string();
                must(
                    &url,
                    &key,
                    &format!("/api/v1/checkout/sessions/{id}/complete/"),
                    json!({"card": "4242424242424242"}),
                )
                .await;
            }
        })
        .collect();
    futures::stream::iter(buys).buffer_unordered(8).collect::<Vec<_>>().await;
    let count = |url: String| {
        let key = key.clone();
        async move {
            let res = http().get(format!("{url}/api/v1/invoices/?page_size=1")).bearer_auth(&key).send().await;
            match res {
                Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["count"].as_u64()),
                Err(_) => None,
            }
        }
    };
    assert_eq!(count(url.clone()).await, Some(SUBSCRIPTIONS as u64));
    // The month ends for all of them at once; killed while renewing.
    let advance = {
        let (url, key) = (url.clone(), key.clone());
        tokio::spawn(
            async move { post(&url, &key, "/api/v1/test-clock/advance/", &json!({"seconds": 32 * 86_400})).await },
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(url.clone()).await.unwrap_or(0) as usize;
        if n > SUBSCRIPTIONS + 50 {
            assert!(n < 2 * SUBSCRIPTIONS, "the run ended before the kill: use more subscriptions");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no renewal started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let _ = advance.await;

    let server = serve(&env_refs);
    must(&server.url, &key, "/api/v1/test-clock/advance/", json!({"seconds": 32 * 86_400})).await;
    let mut numbers = Vec::new();
    let mut per_subscription = std::collections::HashMap::<String, usize>::new();
    for page in 1.. {
        let res = http()
            .get(format!("{}/api/v1/invoices/?page_size=100&page={page}", server.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        for i in body["results"].as_array().unwrap() {
            numbers.push(i["number"].as_str().unwrap().to_string());
            *per_subscription.entry(i["subscriptionId"].as_str().unwrap().to_string()).or_default() += 1;
        }
        if body["next"].is_null() {
            break;
        }
    }
    numbers.sort();
    let expected: Vec<String> = (1..=2 * SUBSCRIPTIONS).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected, "every number once, none skipped");
    assert_eq!(per_subscription.len(), SUBSCRIPTIONS);
    assert!(per_subscription.values().all(|n| *n == 2), "a purchase and one renewal each");
}

on_both_backends!(killed_mid_stream, killed_mid_webhook_attempt, killed_mid_billing_run);
