//! The Rust SDK's entitlements and reporting against the real server and a
//! real Redis (127.0.0.1:6379, or KELVIQ_TEST_REDIS_URL): aggregation, the
//! two-tier cache with stale answers when the server is down, the offline
//! queue kept in Redis and flushed by another client, consume and batches.

use crate::common;

use common::{Backend, TestServer};
use kelviq_core::Clock;
use kelviq_sdk::cache::{CacheStore, RedisStore};
use kelviq_sdk::reporting::{ReportEvent, ReportUsage};
use kelviq_sdk::{ErrorKind, Kelviq};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("KELVIQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    s.post_ok(path, body).await
}

async fn seed(s: &TestServer) {
    post(s, "/api/v1/catalog/products/", json!({"name": "P", "identifier": "p", "taxCode": "saas"})).await;
    let units = json!({"singular": "u", "plural": "u"});
    post(s, "/api/v1/catalog/features/", json!({"name": "Calls", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}})).await;
    post(s, "/api/v1/catalog/features/", json!({"name": "Events", "featureType": "METER", "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units},
        "meter": {"aggregation": {"function": "COUNT"}, "filters": []}})).await;
    post(s, "/api/v1/catalog/features/", json!({"name": "SSO", "featureType": "BOOLEAN"})).await;
    for (id, features) in [
        (
            "base",
            json!([{"feature": "calls", "details": {"value": 100, "reset": "NEVER", "hardLimit": true}},
                        {"feature": "events", "details": {"hasUnlimitedUsage": true, "reset": "NEVER"}},
                        {"feature": "sso", "details": {"value": true}}]),
        ),
        ("topup", json!([{"feature": "calls", "details": {"value": 50, "reset": "NEVER", "hardLimit": true}}])),
    ] {
        post(s, "/api/v1/catalog/plans/", json!({"name": id, "identifier": id, "product": "p"})).await;
        post(
            s,
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "FREE", "currency": "USD"}]}),
        )
        .await;
        post(s, &format!("/api/v1/catalog/plans/{id}/features/"), json!({ "planEntitlements": features })).await;
        post(s, &format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
        let session = post(s, "/api/v1/checkout/", json!({"planIdentifier": id, "chargePeriod": "ONE_TIME", "customerId": "ann", "successUrl": "https://x.example/"})).await;
        post(
            s,
            &format!("/api/v1/checkout/sessions/{}/complete/", session["checkoutSessionId"].as_str().unwrap()),
            json!({}),
        )
        .await;
    }
}

fn client(base: &str, key: &str, store: Option<Arc<dyn CacheStore>>, ttl: Duration) -> Kelviq {
    let mut b = Kelviq::builder()
        .access_token(key)
        .base_url(base)
        .edge_api_url(base)
        .cache_ttl(ttl)
        .timeout(Duration::from_secs(3));
    if let Some(s) = store {
        b = b.cache_store(s);
    }
    b.build().unwrap()
}

/// An address nothing listens on.
async fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

async fn sdk_entitlements_and_reporting(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed(&s).await;
    let prefix = format!("kq-test-{}", uuid::Uuid::new_v4().simple());
    let redis: Arc<dyn CacheStore> =
        Arc::new(RedisStore::connect_with_prefix(&redis_url(), &prefix).await.expect("Redis must answer"));

    // Aggregation across the two granting subscriptions.
    let sdk = client(&s.base_url, &s.client_key, Some(redis.clone()), Duration::from_secs(60));
    let calls = sdk.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap();
    assert_eq!(
        (calls.usage_limit, calls.current_usage, calls.remaining, calls.items.len()),
        (Some(150), Some(0), Some(150), 2)
    );
    assert!(sdk.entitlements().has_access("ann", "sso").await.unwrap());
    assert!(!sdk.entitlements().has_access("ann", "missing").await.unwrap());
    let all = sdk.entitlements().get_entitlements("ann").await.unwrap();
    assert_eq!(all.iter().map(|e| e.feature_id.as_str()).collect::<Vec<_>>(), ["calls", "events", "sso"]);
    let e = sdk.entitlements().get_entitlements("nobody").await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::NotFound, Some(404)), "4xx always propagate");

    // Reports with the server key; the optimistic update shows at once in this client's cache.
    let reporter = client(&s.base_url, &s.server_key, Some(redis.clone()), Duration::from_secs(60));
    reporter.entitlements().get_entitlement("ann", "calls").await.unwrap();
    let r = reporter
        .reporting()
        .report_usage(ReportUsage {
            value: 30,
            customer_id: "ann".into(),
            feature_id: "calls".into(),
            behaviour: "delta".into(),
            resource_id: None,
        })
        .await
        .unwrap();
    assert_eq!((r.behaviour.as_str(), r.org_id.is_empty()), ("DELTA", false));
    let cached = reporter.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap();
    // The Python SDK's optimistic update adds to every cached row of the
    // feature; with two rows the aggregate reads 60 until the cache refreshes.
    assert_eq!(cached.current_usage, Some(60), "optimistic update of each cached row");
    // The first client's cache is fresh for 60 s: it still says 0 …
    assert_eq!(sdk.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap().current_usage, Some(0));
    // … and a client without a fresh cache sees the server's 30.
    let fresh = client(&s.base_url, &s.client_key, None, Duration::ZERO);
    assert_eq!(fresh.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap().current_usage, Some(30));

    // Consume and a batch of events.
    let c = reporter.entitlements().consume("ann", "calls", 5, "once").await.unwrap();
    assert!(c.allowed);
    assert_eq!(c.current_usage, Some(35));
    let again = reporter.entitlements().consume("ann", "calls", 5, "once").await.unwrap();
    assert_eq!(again.current_usage, Some(35), "a retried key deducts nothing");
    let ts = s.clock.now().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let ev = |k: &str| ReportEvent {
        customer_id: "ann".into(),
        event_name: "hit".into(),
        idempotency_key: k.into(),
        timestamp: ts.clone(),
        ..Default::default()
    };
    let batch = reporter.reporting().report_events_batch(vec![ev("e1"), ev("e2"), ev("e1")]).await.unwrap();
    assert_eq!((batch.accepted, batch.duplicates), (2, 1));
    let bad = reporter
        .reporting()
        .report_event(ReportEvent { timestamp: "2026-01-01T00:00:00".into(), ..ev("e3") })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), None, "refused before sending");

    // The server goes away: cached answers (any age) keep coming, from L1 …
    let dead = dead_url().await;
    let mut s = s;
    let shared_a = client(&s.base_url, &s.client_key, Some(redis.clone()), Duration::from_millis(1));
    shared_a.entitlements().get_entitlement("ann", "calls").await.unwrap();
    s.begin_shutdown();
    s.wait_stopped().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let stale = shared_a.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap();
    assert_eq!(stale.current_usage, Some(35), "stale from L1 when the server cannot be reached");
    // … and from L2 (Redis) for a client that never saw the server.
    let other_process = client(&dead, &s.client_key, Some(redis.clone()), Duration::from_secs(60));
    let from_redis = other_process.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap();
    assert_eq!(from_redis.current_usage, Some(35));
    let nothing = client(&dead, &s.client_key, None, Duration::from_secs(60));
    assert_eq!(
        nothing.entitlements().get_entitlement("ann", "calls").await.unwrap_err().status(),
        None,
        "no cache: the error"
    );

    // Reports while offline are answered synthetically and queued in Redis.
    let offline = client(&dead, &s.server_key, Some(redis.clone()), Duration::from_secs(60));
    let queued = offline
        .reporting()
        .report_usage(ReportUsage {
            value: 7,
            customer_id: "ann".into(),
            feature_id: "calls".into(),
            behaviour: "DELTA".into(),
            resource_id: None,
        })
        .await
        .unwrap();
    assert_eq!((queued.org_id.as_str(), queued.event_name.as_str()), ("", "$usage.reported"));
    offline.reporting().report_event(ev("e4")).await.unwrap();
    assert_eq!(offline.reporting().flush().await, 2, "still offline: both wait");
    let memory_only = client(&dead, &s.server_key, None, Duration::from_secs(60));
    memory_only.reporting().report_event(ev("e5")).await.unwrap();
    assert_eq!(memory_only.reporting().flush().await, 1);

    // The server comes back (a new process on the same database); another
    // client sharing the Redis queue sends what waited, in order.
    s.restart().await;
    let online = client(&s.base_url, &s.server_key, Some(redis.clone()), Duration::ZERO);
    assert_eq!(online.reporting().flush().await, 0);
    let now = online.entitlements().get_entitlement("ann", "calls").await.unwrap().unwrap();
    assert_eq!(now.current_usage, Some(42), "30 + 5 + the queued 7");
    let events = online.entitlements().get_entitlement("ann", "events").await.unwrap().unwrap();
    assert_eq!(events.current_usage, Some(3), "e1, e2 and the queued e4");
    assert!(redis.list_pop_all("kelviq:report_queue").await.unwrap().is_empty());
}

on_both_backends!(sdk_entitlements_and_reporting);
