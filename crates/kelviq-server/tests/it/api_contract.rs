//! The API contract of the foundation: authentication, error shapes for bad
//! input (never a 500, never a partial write), casing, trailing slashes,
//! operability endpoints and the committed OpenAPI document.

use crate::common;

use common::{http, Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Clock;
use kelviq_core::Environment;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn send(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = http().request(method, srv.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, value)
}

async fn authentication(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let get = reqwest::Method::GET;
    let (s, b) = send(&srv, get.clone(), "/api/v1/customers/", None, None).await;
    assert_eq!((s, b), (StatusCode::UNAUTHORIZED, json!({"detail": "Authentication credentials were not provided."})));
    let (s, b) = send(&srv, get.clone(), "/api/v1/customers/", Some("sk_test_unknown"), None).await;
    assert_eq!((s, b), (StatusCode::UNAUTHORIZED, json!({"detail": "Invalid API key."})));
    let basic = http().get(srv.url("/api/v1/customers/")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(basic.headers().get("www-authenticate").is_some());

    // Client keys may read entitlements only.
    let (s, b) = send(&srv, get.clone(), "/api/v1/customers/", Some(&srv.client_key), None).await;
    assert_eq!(
        (s, b),
        (StatusCode::FORBIDDEN, json!({"detail": "You do not have permission to perform this action."}))
    );
    let (s, _) =
        send(&srv, reqwest::Method::POST, "/api/v1/customers/", Some(&srv.client_key), Some(r#"{"customerId":"x"}"#))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(srv.store.count_customers(&srv.tenant, None).await.unwrap(), 0);

    // A revoked key stops working (this server trusts a resolved key for 0 s).
    let key = srv.key_for(KeyKind::Server, Environment::Sandbox).await;
    assert_eq!(send(&srv, get.clone(), "/api/v1/customers/", Some(&key), None).await.0, StatusCode::OK);
    let prefix = &key[..kelviq_core::keys::DISPLAY_PREFIX_LEN];
    srv.store.revoke_api_key(prefix, common::start_time()).await.unwrap();
    assert_eq!(send(&srv, get.clone(), "/api/v1/customers/", Some(&key), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&srv, get, "/api/v1/customers/", Some(&srv.server_key), None).await.0,
        StatusCode::OK,
        "other keys unaffected"
    );
    srv.stop().await;
}

async fn bad_input_is_a_clear_400_and_writes_nothing(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.body_limit_bytes = 4096).await;
    let key = Some(srv.server_key.as_str());
    let long = "x".repeat(300);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{".into(), StatusCode::BAD_REQUEST, "detail"),
        ("[]".into(), StatusCode::BAD_REQUEST, "nonFieldErrors"),
        ("\"text\"".into(), StatusCode::BAD_REQUEST, "nonFieldErrors"),
        ("{}".into(), StatusCode::BAD_REQUEST, "customerId"),
        (r#"{"customerId": null}"#.into(), StatusCode::BAD_REQUEST, "customerId"),
        (r#"{"customerId": 5}"#.into(), StatusCode::BAD_REQUEST, "customerId"),
        (r#"{"customerId": ""}"#.into(), StatusCode::BAD_REQUEST, "customerId"),
        (r#"{"customerId": "a/b"}"#.into(), StatusCode::BAD_REQUEST, "customerId"),
        (r#"{"customerId": "a", "email": "x"}"#.into(), StatusCode::BAD_REQUEST, "email"),
        (r#"{"customerId": "a", "email": ["a@b.co"]}"#.into(), StatusCode::BAD_REQUEST, "email"),
        (r#"{"customerId": "a", "metadata": [1]}"#.into(), StatusCode::BAD_REQUEST, "metadata"),
        (r#"{"customerId": "a", "metadata": "x"}"#.into(), StatusCode::BAD_REQUEST, "metadata"),
        (r#"{"customerId": "a", "billingAddress": "x"}"#.into(), StatusCode::BAD_REQUEST, "billingAddress"),
        (
            r#"{"customerId": "a", "billingAddress": {"country": "USA"}}"#.into(),
            StatusCode::BAD_REQUEST,
            "billingAddress",
        ),
        (
            r#"{"customer_id": "a", "billing_address": {"postal_code": 12}}"#.into(),
            StatusCode::BAD_REQUEST,
            "billingAddress",
        ),
        (format!(r#"{{"customerId": "a", "name": "{long}"}}"#), StatusCode::BAD_REQUEST, "name"),
        (
            format!(r#"{{"customerId": "a", "metadata": {{"pad": "{}"}}}}"#, "y".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "detail",
        ),
    ];
    for (body, status, field) in &cases {
        let (s, b) = send(&srv, reqwest::Method::POST, "/api/v1/customers/", key, Some(body)).await;
        assert_eq!(s, *status, "{body} → {b}");
        let messages = &b[*field];
        assert!(
            messages.is_string()
                || messages.as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)),
            "{body} → {b}: expected an error under {field}"
        );
    }
    let (s, b) = send(&srv, reqwest::Method::POST, "/api/v1/customers/", key, Some("{")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["detail"].as_str().unwrap().starts_with("JSON parse error"), "{b}");

    let form = http()
        .post(srv.url("/api/v1/customers/"))
        .bearer_auth(&srv.server_key)
        .header("content-type", "text/plain")
        .body("customerId=a")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Several problems at once are all named.
    let (_, b) = send(
        &srv,
        reqwest::Method::POST,
        "/api/v1/customers/",
        key,
        Some(r#"{"customerId": "", "email": "x", "metadata": 1}"#),
    )
    .await;
    assert_eq!(b.as_object().unwrap().keys().collect::<Vec<_>>(), ["customerId", "email", "metadata"]);

    assert_eq!(srv.store.count_customers(&srv.tenant, None).await.unwrap(), 0, "no bad request wrote anything");
    assert!(srv.store.list_events(&srv.tenant, 0, 10).await.unwrap().is_empty());

    // PATCH: bad values are named and change nothing.
    let (s, _) = send(
        &srv,
        reqwest::Method::POST,
        "/api/v1/customers/",
        key,
        Some(r#"{"customerId": "p", "email": "p@example.com"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    for (body, field) in [
        (r#"{"email": 5}"#, "email"),
        (r#"{"metadata": "x"}"#, "metadata"),
        (r#"{"name": "ok", "email": "bad"}"#, "email"),
    ] {
        let (s, b) = send(&srv, reqwest::Method::PATCH, "/api/v1/customers/p/", key, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(b.get(field).is_some(), "{body} → {b}");
    }
    let (_, b) = send(&srv, reqwest::Method::GET, "/api/v1/customers/p/", key, None).await;
    assert_eq!((b["name"].clone(), b["email"].clone()), (Value::Null, json!("p@example.com")));
    srv.stop().await;
}

async fn casing_slashes_and_verbs(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let key = Some(srv.server_key.as_str());
    let (s, camel) = send(&srv, reqwest::Method::POST, "/api/v1/customers", key, Some(r#"{"customerId": "camel", "billingAddress": {"postalCode": "1"}, "metadata": {"snake_key": 1, "camelKey": 2}}"#)).await;
    assert_eq!(s, StatusCode::CREATED, "{camel}");
    let (s, snake) = send(
        &srv,
        reqwest::Method::POST,
        "/api/v1/customers/",
        key,
        Some(r#"{"customer_id": "snake", "billing_address": {"postal_code": "1"}}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{snake}");
    for body in [&camel, &snake] {
        assert_eq!(body["billingAddress"]["postalCode"], "1");
        for k in
            ["id", "customerId", "name", "email", "details", "metadata", "billingAddress", "createdOn", "modifiedOn"]
        {
            assert!(body.get(k).is_some(), "response lacks {k}: {body}");
        }
        let created = body["createdOn"].as_str().unwrap();
        assert_eq!(created, "2026-01-31T10:00:00.000000Z");
    }
    assert_eq!(camel["metadata"], json!({"snake_key": 1, "camelKey": 2}));
    for path in ["/api/v1/customers", "/api/v1/customers/", "/api/v1/customers/camel", "/api/v1/customers/camel/"] {
        assert_eq!(send(&srv, reqwest::Method::GET, path, key, None).await.0, StatusCode::OK, "{path}");
    }
    let (s, b) = send(&srv, reqwest::Method::PUT, "/api/v1/customers/", key, None).await;
    assert_eq!((s, b), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"PUT\" not allowed."})));
    let (s, b) = send(&srv, reqwest::Method::GET, "/api/v1/no-such-thing/", key, None).await;
    assert_eq!((s, b), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
    let del = http().delete(srv.url("/api/v1/customers/snake/")).bearer_auth(&srv.server_key).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert!(del.bytes().await.unwrap().is_empty());
    srv.stop().await;
}

async fn health_readiness_and_metrics(backend: Backend) {
    let srv = TestServer::start(backend).await;
    for path in ["/healthz", "/healthz/", "/readyz"] {
        let (s, b) = send(&srv, reqwest::Method::GET, path, None, None).await;
        assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("ok")), "{path}");
    }
    let (_, ready) = send(&srv, reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready["database"], if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
    send(&srv, reqwest::Method::POST, "/api/v1/customers/", Some(&srv.server_key), Some(r#"{"customerId": "m"}"#))
        .await;
    let metrics = http().get(srv.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/api/v1/customers",status="201"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/customers""#),
        "{metrics}"
    );
    assert!(!metrics.contains(&srv.server_key));
    // On SQLite an acknowledged event was synced to disk by the journal's own sync.
    let synced = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("ingest_sync_seconds_count "))
            .map(|n| n.trim().parse::<u64>().unwrap())
    };
    let before = synced(&metrics).unwrap_or(0);
    let at = srv.clock.now().format("%Y-%m-%d %H:%M:%S%.6f");
    let event =
        format!(r#"{{"customerId": "m", "eventName": "ping", "idempotencyKey": "synced-1", "timestamp": "{at}"}}"#);
    let (s, b) = send(&srv, reqwest::Method::POST, "/api/v1/report/event/", Some(&srv.server_key), Some(&event)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let metrics = http().get(srv.url("/metrics")).send().await.unwrap().text().await.unwrap();
    if backend == Backend::Sqlite {
        assert!(synced(&metrics).unwrap_or(0) > before, "{metrics}");
    }

    // Readiness reports a database that stopped answering.
    srv.store.close().await;
    let (s, b) = send(&srv, reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!((s, b), (StatusCode::SERVICE_UNAVAILABLE, json!({"detail": "Database unavailable."})));
    assert_eq!(send(&srv, reqwest::Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    srv.stop().await;
}

on_both_backends!(
    authentication,
    bad_input_is_a_clear_400_and_writes_nothing,
    casing_slashes_and_verbs,
    health_readiness_and_metrics
);

/// The committed `openapi.json` is what the code generates, and what the server serves.
#[tokio::test]
async fn openapi_document_matches_the_committed_copy() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json"))
        .expect("openapi.json at the repo root");
    let generated = kelviq_server::openapi::document();
    assert!(
        committed == generated,
        "openapi.json is stale: regenerate it with `cargo run -q -p kelviq-server -- openapi > openapi.json`"
    );
    let srv = TestServer::start(Backend::Sqlite).await;
    let served: Value = http().get(srv.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(&committed).unwrap());
    assert!(served["paths"]["/api/v1/customers/"]["post"].is_object());
    srv.stop().await;
}
