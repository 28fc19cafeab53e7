//! Regression tests for the defects found by probing the server as an
//! attacker and a careless client would (issue 23), on both backends,
//! through the real server over HTTP.

use crate::common;

use common::api::Api;
use common::{http, Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::meters::{COUNTER_MAX, MAX_USAGE_VALUE};
use kelviq_core::timefmt::report_timestamp;
use kelviq_core::{Clock, Environment};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn event(customer: &str, key: &str, at: &str, properties: Value) -> Value {
    json!({"customerId": customer, "eventName": "llm", "idempotencyKey": key, "timestamp": at, "properties": properties})
}

/// D1: usage values are bounded at the API, counters saturate instead of
/// wrapping (in memory and in SQL, through folds and a restart), a negative
/// DELTA stops at zero, and the server stays ready.
async fn usage_values_are_bounded_and_counters_saturate(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let api = Api::new(&s);
    api.seed_metered_plan().await;
    api.subscribe("base", "ann").await;
    let usage = |value: Value, behaviour: &str| json!({"customerId": "ann", "featureId": "calls", "value": value, "behaviour": behaviour});

    let (status, e) = api.post("/api/v1/report/usage/", usage(json!(i64::MAX), "SET")).await;
    assert_eq!((status, e["value"].is_array()), (400, true), "{e}");
    let (status, e) = api.post("/api/v1/report/usage/", usage(json!(-(MAX_USAGE_VALUE + 1)), "DELTA")).await;
    assert_eq!((status, e["value"].is_array()), (400, true), "{e}");
    api.ok("/api/v1/report/usage/", usage(json!(MAX_USAGE_VALUE), "SET")).await;
    api.ok("/api/v1/report/usage/", usage(json!(10), "DELTA")).await;
    let row = api.row("ann", "calls").await;
    assert_eq!((row["currentUsage"].clone(), row["hasAccess"].clone()), (json!(MAX_USAGE_VALUE + 10), json!(false)));
    // A negative DELTA lowers usage, never below zero.
    api.ok("/api/v1/report/usage/", usage(json!(30), "SET")).await;
    api.ok("/api/v1/report/usage/", usage(json!(-50), "DELTA")).await;
    assert_eq!(api.row("ann", "calls").await["currentUsage"], 0);
    let (status, e) = api
        .post(
            "/api/v1/entitlements/consume/",
            json!({"customerId": "ann", "featureId": "calls", "value": i64::MAX, "idempotencyKey": "big"}),
        )
        .await;
    assert_eq!((status, e["value"].is_array()), (400, true), "{e}");

    // Event properties beyond the bound are refused, naming the property.
    let now = report_timestamp(s.clock.now());
    let (status, e) = api.post("/api/v1/report/event/", event("ann", "huge", &now, json!({"tokens": i64::MAX}))).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["properties.tokens"].is_array(), "{e}");
    let (status, e) =
        api.post("/api/v1/report/event/", event("ann", "deep", &now, json!({"usage": {"input": 1e300}}))).await;
    assert_eq!((status, e["properties.usage.input"].is_array()), (400, true), "{e}");

    // 300 events at the bound sum past the counters' limit: they saturate.
    for b in 0..3 {
        let events: Vec<Value> =
            (0..100).map(|i| event("ann", &format!("max-{b}-{i}"), &now, json!({"tokens": MAX_USAGE_VALUE}))).collect();
        let r = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
        assert_eq!(r["accepted"], 100, "{r}");
    }
    let expected = json!(COUNTER_MAX);
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], expected);
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    // Folded into the rows and read back by a new process.
    s.restart().await;
    let api = Api::new(&s);
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], expected);
    let more = event("ann", "after-restart", &report_timestamp(s.clock.now()), json!({"tokens": MAX_USAGE_VALUE}));
    api.ok("/api/v1/report/event/", more).await;
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], expected);
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, 200);
    s.restart().await;
    let api = Api::new(&s);
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], expected);
}

/// D1: a fold the database refuses (here: one customer's counter past a
/// cap put on the table) fails no request; other customers' events are
/// answered and counted, readiness reports the stalled fold, and once the
/// row is accepted the fold completes, counting everything once.
async fn a_refused_fold_blocks_no_one(backend: Backend) {
    let mut s = TestServer::start_with(backend, |c| c.usage_fold_interval_ms = 100).await;
    let api = Api::new(&s);
    api.seed_metered_plan().await;
    api.subscribe("base", "ann").await;
    api.subscribe("base", "bob").await;
    let db = sqlx::AnyPool::connect(&s.db.url).await.unwrap();
    let (cap, uncap): (&[&str], &[&str]) = match backend {
        Backend::Postgres => (
            &["ALTER TABLE usage_counters ADD CONSTRAINT test_cap CHECK (value < 1000)"],
            &["ALTER TABLE usage_counters DROP CONSTRAINT test_cap"],
        ),
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER test_cap_i BEFORE INSERT ON usage_counters WHEN NEW.value >= 1000 \
                 BEGIN SELECT RAISE(ABORT, 'test cap'); END",
                "CREATE TRIGGER test_cap_u BEFORE UPDATE ON usage_counters WHEN NEW.value >= 1000 \
                 BEGIN SELECT RAISE(ABORT, 'test cap'); END",
            ],
            &["DROP TRIGGER test_cap_i", "DROP TRIGGER test_cap_u"],
        ),
    };
    for sql in cap {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    let now = report_timestamp(s.clock.now());
    api.ok("/api/v1/report/event/", event("ann", "big", &now, json!({"tokens": 2000}))).await;
    let started = Instant::now();
    let mut sent = 0;
    loop {
        api.ok("/api/v1/report/event/", event("bob", &format!("b{sent}"), &now, json!({"tokens": 5}))).await;
        sent += 1;
        let (status, ready) = api.get("/readyz").await;
        if status == 503 {
            assert!(ready["detail"].as_str().unwrap().contains("fold"), "{ready}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "readiness never reported the refused fold");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], 2000);
    assert_eq!(api.row("bob", "tokens").await["currentUsage"], 5 * sent);
    for sql in uncap {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    db.close().await;
    let started = Instant::now();
    loop {
        // A request gives the writer a turn to fold.
        api.ok("/api/v1/report/event/", event("bob", &format!("b{sent}"), &now, json!({"tokens": 5}))).await;
        sent += 1;
        if api.get("/readyz").await.0 == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "readiness never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.restart().await;
    let api = Api::new(&s);
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], 2000);
    assert_eq!(api.row("bob", "tokens").await["currentUsage"], 5 * sent);
}

/// D2: many more concurrent purchases, plan changes, cancellations and
/// refunds than the pool has connections all succeed (no request holds a
/// transaction while it waits for another connection; debug builds panic
/// if one does), and a pool that stays full answers 503 with Retry-After
/// within about a second.
async fn work_beyond_the_pool_size_succeeds(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.db_max_connections = 4).await;
    let api = Api::new(&s);
    api.seed_metered_plan().await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Plus", "identifier": "plus", "product": "app"})).await;
    api.ok(
        "/api/v1/catalog/plans/plus/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 9}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/plus/publish/", json!({})).await;
    let n = 16; // 4 × the pool
    let mut sessions = Vec::new();
    for i in 0..n {
        let cs = api
            .ok("/api/v1/checkout/", json!({"planIdentifier": "base", "chargePeriod": "MONTHLY", "customerId": format!("c{i}"), "successUrl": "https://x.example/"}))
            .await;
        sessions.push(cs["checkoutSessionId"].as_str().unwrap().to_string());
    }
    let completions = sessions.iter().map(|id| {
        let api = Api::new(&s);
        async move {
            api.post(&format!("/api/v1/checkout/sessions/{id}/complete/"), json!({"card": "4242424242424242"})).await
        }
    });
    let done = futures::future::join_all(completions).await;
    let mut subs = Vec::new();
    for (status, v) in &done {
        assert_eq!(*status, 200, "{v}");
        subs.push(v["subscription"]["id"].as_str().unwrap().to_string());
    }
    let (_, orders) = api.get("/api/v1/orders/?page_size=100").await;
    let orders: std::collections::HashMap<String, String> = orders["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["subscription"]["id"].as_str().unwrap().to_string(), o["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(orders.len(), n);
    // Plan changes, cancellations and refunds, all at once.
    let mut work = Vec::new();
    for (i, sub) in subs.iter().enumerate() {
        let (path, body) = match i % 3 {
            0 => (
                format!("/api/v1/subscriptions/{sub}/update/"),
                json!({"planIdentifier": "plus", "chargePeriod": "MONTHLY"}),
            ),
            1 => (format!("/api/v1/subscriptions/{sub}/cancel/"), json!({"cancellationType": "IMMEDIATE"})),
            _ => ("/api/v1/refunds/".to_string(), json!({"orderId": orders[sub]})),
        };
        let api = Api::new(&s);
        work.push(async move { (path.clone(), api.post(&path, body).await) });
    }
    for (path, (status, v)) in futures::future::join_all(work).await {
        assert!((200..300).contains(&status), "{path}: {status} {v}");
    }

    if backend == Backend::Postgres {
        // Every connection held elsewhere: a request is refused promptly.
        let (release, released) = tokio::sync::watch::channel(false);
        let mut holders = Vec::new();
        for _ in 0..4 {
            let store = s.store.clone();
            let tenant = s.tenant.clone();
            let mut released = released.clone();
            let (held_tx, held_rx) = tokio::sync::oneshot::channel();
            holders.push(tokio::spawn(async move {
                let w = store.begin(&tenant).await.expect("a connection");
                let _ = held_tx.send(());
                let _ = released.changed().await;
                drop(w);
            }));
            held_rx.await.unwrap();
        }
        let started = Instant::now();
        let (status, headers, body) = api.raw(Method::GET, "/api/v1/customers/", None).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(headers["retry-after"], "1");
        assert!(body["detail"].is_string(), "{body}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        release.send(true).unwrap();
        for h in holders {
            h.await.unwrap();
        }
        let (status, _) = api.get("/api/v1/customers/").await;
        assert_eq!(status, 200);
    }
}

/// D3: upload form fields are capped before they are buffered, and the whole
/// form by the largest file plus a margin.
async fn upload_forms_are_bounded(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.media_max_bytes = 4096).await;
    let api = Api::new(&s);
    let form = api.ok("/api/v1/media/", json!({"fileName": "a.pdf", "fileType": "application/pdf"})).await;
    let url = form["url"].as_str().unwrap().to_string();
    let big = reqwest::multipart::Form::new().text("key", "k".repeat(64 * 1024));
    let r = http().post(&url).multipart(big).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["key"].is_array(), "{e}");
    // A body larger than any policy allows is refused before it is read.
    let huge = reqwest::multipart::Form::new()
        .text("other", "x".repeat(8000))
        .part("file", reqwest::multipart::Part::bytes(vec![0u8; 200 * 1024]).file_name("a.pdf"));
    let r = http().post(&url).multipart(huge).send().await.unwrap();
    assert_eq!(r.status(), 413, "{}", r.text().await.unwrap());
    // A proper upload still works.
    let mut ok = reqwest::multipart::Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        ok = ok.text(k.clone(), v.as_str().unwrap().to_string());
    }
    ok = ok.part("file", reqwest::multipart::Part::bytes(b"%PDF-1.4".to_vec()).file_name("a.pdf"));
    let r = http().post(&url).multipart(ok).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

/// D4: the test clock refuses moves that overflow or run for years of due work.
async fn test_clock_moves_are_bounded(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    for body in [json!({"seconds": i64::MAX}), json!({"seconds": 1i64 << 43}), json!({"to": "9999-12-31T00:00:00Z"})] {
        let (status, e) = api.post("/api/v1/test-clock/advance/", body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
    }
    let r = api.ok("/api/v1/test-clock/advance/", json!({"seconds": 86_400})).await;
    assert_eq!((r["ran"].clone(), r["complete"].clone()), (json!(0), json!(true)));
}

/// D5 and D9: control characters and bytes that are not UTF-8 in paths
/// and query parameters are refused before the store, in the JSON shape.
async fn control_characters_are_refused_before_the_store(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    api.ok("/api/v1/customers/", json!({"customerId": "ann", "name": "Ann"})).await;
    for path in ["/api/v1/customers/%00/", "/api/v1/customers/a%0Ab/", "/api/v1/customers/%ff/", "/checkout/%00/"] {
        let (status, headers, body) = api.raw(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{path}");
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    let (status, e) = api.get("/api/v1/customers/?search=%00").await;
    assert_eq!((status, e["search"].is_array()), (400, true), "{e}");
    let client = Api::with_key(&s, &s.client_key);
    let (status, e) = client.get("/api/v1/entitlements/?customer_id=%00").await;
    assert_eq!((status, e["customerId"].is_array()), (400, true), "{e}");
    // Plain searches still work.
    let (status, list) = api.get("/api/v1/customers/?search=an").await;
    assert_eq!((status, list["count"].clone()), (200, json!(1)), "{list}");
    // A form sent as JSON to the hosted page is refused in the JSON shape.
    let r = http().post(s.url("/checkout/nothing/")).json(&json!({"card": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 415);
    let e: Value = r.json().await.unwrap();
    assert!(e["detail"].is_string(), "{e}");
}

pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

pub(crate) async fn upload(api: &Api<'_>, name: &str, mime: &str, bytes: &[u8]) -> String {
    let form = api.ok("/api/v1/media/", json!({"fileName": name, "fileType": mime})).await;
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(k.clone(), v.as_str().unwrap().to_string());
    }
    multipart = multipart.part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("f"));
    let r = http().post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap();
    assert_eq!(r.status(), 204);
    form["fileKey"].as_str().unwrap().to_string()
}

/// D6 and D8: product images must be images by their bytes; user files are
/// served so they never run as pages; hosted pages cannot be framed; names
/// with control characters are refused and links carry names encoded.
async fn user_files_are_never_active_content(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    let html = upload(&api, "x.png", "image/png", b"<html><script>alert(1)</script></html>").await;
    let (status, e) = api
        .post(
            "/api/v1/catalog/products/",
            json!({"name": "Gallery", "identifier": "gallery", "taxCode": "saas", "imageKeys": [html]}),
        )
        .await;
    assert_eq!((status, e["imageKeys"].is_array()), (400, true), "{e}");
    let png = upload(&api, "logo.png", "text/html", PNG).await;
    let product = api
        .ok(
            "/api/v1/catalog/products/",
            json!({"name": "Gallery", "identifier": "gallery", "taxCode": "saas", "imageKeys": [png]}),
        )
        .await;
    let image = &product["images"][0];
    let r = http().get(image["image"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "image/png", "the sniffed type, not the declared one");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert!(h["content-disposition"].to_str().unwrap().starts_with("inline"));
    let image_path = format!("/api/v1/catalog/products/gallery/image/{}/", image["id"].as_str().unwrap());
    for bad in ["a\r\nb.png", "a\u{0}.png"] {
        let (status, e) = api.send(Method::PATCH, &image_path, Some(json!({"name": bad}))).await;
        assert_eq!((status, e["name"].is_array()), (400, true), "{e}");
    }
    let (status, renamed) = api.send(Method::PATCH, &image_path, Some(json!({"name": "my logo é.png"}))).await;
    assert_eq!(status, 200, "{renamed}");
    let url = renamed["image"].as_str().unwrap();
    assert!(url.ends_with("/my%20logo%20%C3%A9.png"), "{url}");
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.contains("filename*=UTF-8''my%20logo%20%C3%A9.png"), "{disposition}");

    // Hosted pages: never framed, a strict policy, no referrer; the
    // sandbox's test-card hint only in the sandbox.
    api.seed_metered_plan().await;
    let cs = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "base", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
        )
        .await;
    let r = http().get(cs["checkoutUrl"].as_str().unwrap()).send().await.unwrap();
    let h = r.headers().clone();
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(r.text().await.unwrap().contains("4242 4242 4242 4242"));
    let production = s.key_for(KeyKind::Server, Environment::Production).await;
    let prod = Api::with_key(&s, &production);
    prod.seed_metered_plan().await;
    let cs = prod
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "base", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
        )
        .await;
    let page = http().get(cs["checkoutUrl"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<form") && !page.contains("4242"), "{page}");
}

/// D7: an idempotency key is bound to its first request.
async fn idempotency_keys_are_bound_to_their_request(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    api.seed_metered_plan().await;
    api.subscribe("base", "ann").await;
    api.subscribe("base", "bob").await;
    let consume = |customer: &str, value: i64| json!({"customerId": customer, "featureId": "calls", "value": value, "idempotencyKey": "k1"});
    let first = api.ok("/api/v1/entitlements/consume/", consume("ann", 5)).await;
    assert_eq!(first["allowed"], true);
    let again = api.ok("/api/v1/entitlements/consume/", consume("ann", 5)).await;
    assert_eq!(again, first, "the same request answers as the first time");
    api.ok(
        "/api/v1/report/usage/",
        json!({"customerId": "bob", "featureId": "calls", "value": 100, "behaviour": "SET"}),
    )
    .await;
    for other in [consume("bob", 5), consume("ann", 6)] {
        let (status, e) = api.post("/api/v1/entitlements/consume/", other).await;
        assert_eq!((status, e["idempotencyKey"].is_array()), (409, true), "{e}");
    }
    assert_eq!(api.row("bob", "calls").await["currentUsage"], 100);
    assert_eq!(api.row("ann", "calls").await["currentUsage"], 5);

    let report = |value: i64| json!({"customerId": "ann", "featureId": "calls", "value": value, "behaviour": "DELTA", "idempotencyKey": "r1"});
    api.ok("/api/v1/report/usage/", report(1)).await;
    api.ok("/api/v1/report/usage/", report(1)).await;
    let (status, e) = api.post("/api/v1/report/usage/", report(2)).await;
    assert_eq!((status, e["idempotencyKey"].is_array()), (409, true), "{e}");
    assert_eq!(api.row("ann", "calls").await["currentUsage"], 6);

    let now = report_timestamp(s.clock.now());
    api.ok("/api/v1/report/event/", event("ann", "e1", &now, json!({"tokens": 7, "model": "a"}))).await;
    let same = api.ok("/api/v1/report/event/", event("ann", "e1", &now, json!({"model": "a", "tokens": 7}))).await;
    assert_eq!(same["properties"]["tokens"], 7);
    for other in
        [event("ann", "e1", &now, json!({"tokens": 8})), event("bob", "e1", &now, json!({"tokens": 7, "model": "a"}))]
    {
        let (status, e) = api.post("/api/v1/report/event/", other).await;
        assert_eq!((status, e["idempotencyKey"].is_array()), (409, true), "{e}");
    }
    let batch = api
        .ok("/api/v1/report/events/batch/", json!({"events": [event("ann", "e1", &now, json!({"tokens": 9})), event("ann", "e2", &now, json!({"tokens": 1}))]}))
        .await;
    assert_eq!((batch["rejected"].clone(), batch["accepted"].clone()), (json!(1), json!(1)), "{batch}");
    assert!(batch["results"][0]["errors"]["idempotencyKey"].is_array(), "{batch}");
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], 8);
    assert_eq!(api.row("bob", "tokens").await["currentUsage"], 0);
}

/// D10 and D11, and the smaller ones: a field given twice, events from the
/// future, a feature used the moment it is made.
async fn bodies_and_events_are_taken_literally(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    for body in [r#"{"customerId": "A", "customer_id": "B"}"#, r#"{"customerId": "A", "customerId": "B"}"#] {
        let r = http()
            .post(s.url("/api/v1/customers/"))
            .bearer_auth(&s.server_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(e["customerId"].is_array(), "{body}: {e}");
    }
    let (status, _) = api.get("/api/v1/customers/B/").await;
    assert_eq!(status, 404, "nothing was created");

    api.seed_metered_plan().await;
    api.subscribe("base", "ann").await;
    let far = event("ann", "future", "9999-12-31 23:59:59.999999", json!({"tokens": 5}));
    let (status, e) = api.post("/api/v1/report/event/", far).await;
    assert_eq!((status, e["timestamp"].is_array()), (400, true), "{e}");
    let soon = report_timestamp(s.clock.now() + chrono::Duration::minutes(2));
    api.ok("/api/v1/report/event/", event("ann", "soon", &soon, json!({"tokens": 5}))).await;
    assert_eq!(api.row("ann", "tokens").await["currentUsage"], 5);

    // A feature made a moment ago counts at once in the process that made it.
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "Pings", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE",
            "units": {"singular": "ping", "plural": "pings"}}}),
    )
    .await;
    let (status, e) = api
        .post(
            "/api/v1/report/usage/",
            json!({"customerId": "ann", "featureId": "pings", "value": 1, "behaviour": "DELTA"}),
        )
        .await;
    assert_eq!(status, 200, "{e}");
}

/// The published API's `search` of refunds and transactions covers the
/// customer's id, name and email.
async fn refunds_and_transactions_are_found_by_customer(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    api.seed_metered_plan().await;
    api.ok("/api/v1/customers/", json!({"customerId": "cust-ann", "name": "Ann Lee", "email": "ann@example.com"}))
        .await;
    api.ok("/api/v1/customers/", json!({"customerId": "cust-bob", "name": "Bob", "email": "bob@example.com"})).await;
    api.subscribe("base", "cust-ann").await;
    api.subscribe("base", "cust-bob").await;
    let (_, orders) = api.get("/api/v1/orders/?page_size=100").await;
    for o in orders["results"].as_array().unwrap() {
        api.ok("/api/v1/refunds/", json!({"orderId": o["id"]})).await;
    }
    for list in ["/api/v1/refunds/", "/api/v1/transaction/"] {
        // A refund per order; a transaction for each charge and each refund.
        let per_customer = if list == "/api/v1/refunds/" { 1 } else { 2 };
        for term in ["cust-ann", "ANN LEE", "ann@example"] {
            let (status, page) = api.get(&format!("{list}?search={}", term.replace(' ', "%20"))).await;
            assert_eq!((status, page["count"].clone()), (200, json!(per_customer)), "{list} {term}: {page}");
            for row in page["results"].as_array().unwrap() {
                let order = &row["order"];
                let customer =
                    if order["customerId"].is_null() { &order["customer"]["customerId"] } else { &order["customerId"] };
                assert_eq!(customer, "cust-ann", "{row}");
            }
        }
        let (_, all) = api.get(&format!("{list}?search=example.com")).await;
        assert_eq!(all["count"], 2 * per_customer, "{list}: {all}");
        let (_, none) = api.get(&format!("{list}?search=nobody")).await;
        assert_eq!(none["count"], 0, "{list}: {none}");
    }
}

on_both_backends!(
    a_refused_fold_blocks_no_one,
    refunds_and_transactions_are_found_by_customer,
    usage_values_are_bounded_and_counters_saturate,
    work_beyond_the_pool_size_succeeds,
    upload_forms_are_bounded,
    test_clock_moves_are_bounded,
    control_characters_are_refused_before_the_store,
    user_files_are_never_active_content,
    idempotency_keys_are_bound_to_their_request,
    bodies_and_events_are_taken_literally,
);
