//! The integration guide's five calls (seed 003), exactly as written, against
//! our server on both backends; then what the entitlement check says as the
//! subscription changes.

use crate::common;

use common::{http, Backend, TestServer};
use serde_json::{json, Value};

async fn call(s: &TestServer, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, s.url(path)).header("Authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn setup(s: &TestServer, path: &str, body: Value) {
    let (status, v) = call(s, &s.server_key, reqwest::Method::POST, path, Some(body)).await;
    assert!(status < 300, "{path}: {status} {v}");
}

/// Pro and Enterprise plans with the guide's features.
async fn catalog(s: &TestServer) {
    setup(s, "/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    for (name, ty, details) in [
        ("Export data", "BOOLEAN", Value::Null),
        (
            "Max projects",
            "METER",
            json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "project", "plural": "projects"}}),
        ),
        ("Team size", "CUSTOMIZABLE", Value::Null),
        ("SSO", "BOOLEAN", Value::Null),
    ] {
        setup(s, "/api/v1/catalog/features/", json!({"name": name, "featureType": ty, "featureDetails": details}))
            .await;
    }
    for (id, name, amount, features) in [
        (
            "pro",
            "Pro Plan",
            49,
            json!([
            {"feature": "export-data", "details": {"value": true}},
            {"feature": "max-projects", "details": {"value": 100, "reset": "NEVER", "hardLimit": true}},
            {"feature": "team-size", "details": {"value": 5}}]),
        ),
        (
            "enterprise",
            "Enterprise Plan",
            199,
            json!([
            {"feature": "export-data", "details": {"value": true}},
            {"feature": "max-projects", "details": {"hasUnlimitedUsage": true}},
            {"feature": "team-size", "details": {"value": 50}},
            {"feature": "sso", "details": {"value": true}}]),
        ),
    ] {
        setup(s, "/api/v1/catalog/plans/", json!({"name": name, "identifier": id, "product": "app"})).await;
        setup(
            s,
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": amount}}]}]}]}),
        )
        .await;
        setup(s, &format!("/api/v1/catalog/plans/{id}/features/"), json!({ "planEntitlements": features })).await;
        setup(s, &format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
}

async fn five_calls(backend: Backend) {
    let s = TestServer::start(backend).await;
    catalog(&s).await;
    let (sk, ck) = (s.server_key.clone(), s.client_key.clone());

    // Step 1: create the customer.
    let (status, customer) = call(
        &s,
        &sk,
        reqwest::Method::POST,
        "/api/v1/customers/",
        Some(json!({"customerId": "user-123", "name": "John Doe", "email": "john@example.com"})),
    )
    .await;
    assert_eq!((status, customer["customerId"].clone()), (201, json!("user-123")));

    // Step 2: a checkout session; the user pays on the page.
    let (status, checkout) = call(&s, &sk, reqwest::Method::POST, "/api/v1/checkout/",
        Some(json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "user-123", "successUrl": "https://yourapp.com/success"}))).await;
    assert_eq!(status, 201, "{checkout}");
    let url = checkout["checkoutUrl"].as_str().unwrap();
    let page = http().get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let paid = browser
        .post(url)
        .form(&[
            ("email", "john@example.com"),
            ("card_number", "4242424242424242"),
            ("expiry", "12/30"),
            ("cvc", "123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (paid.status().as_u16(), paid.headers()["location"].to_str().unwrap()),
        (303, "https://yourapp.com/success")
    );

    // Step 3: the active subscription.
    let (status, page) = call(&s, &sk, reqwest::Method::GET, "/api/v1/subscriptions/?customer_id=user-123", None).await;
    assert_eq!(status, 200);
    let results = page["results"].as_array().unwrap();
    let active = results.iter().find(|s| s["status"] == "active").expect("an active subscription");
    assert_eq!(
        (active["plan"]["name"].clone(), active["plan"]["identifier"].clone()),
        (json!("Pro Plan"), json!("pro"))
    );
    assert_eq!(
        (active["amount"].clone(), active["currency"].clone(), active["customerId"].clone()),
        (json!("49.00"), json!("usd"), json!("user-123"))
    );
    assert_eq!(active["startDate"], "2026-01-31");
    let id = active["id"].as_str().unwrap().to_string();

    // Step 5 before the change: the Pro plan's features, with the client key.
    let (status, ents) = call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements/?customerId=user-123", None).await;
    assert_eq!(status, 200, "{ents}");
    assert_eq!(ents["customerId"], "user-123");
    assert_eq!(
        ents["entitlements"][0],
        json!({"featureId": "export-data", "featureType": "BOOLEAN", "hasAccess": true})
    );
    assert_eq!(
        ents["entitlements"][1],
        json!({"featureId": "max-projects", "featureType": "METER", "hasAccess": true, "usageLimit": 100, "currentUsage": 0,
            "remaining": 100, "hardLimit": true, "resetAt": null})
    );
    assert_eq!(ents["entitlements"][2]["usageLimit"], 5);
    assert_eq!(ents["entitlements"].as_array().unwrap().len(), 3);

    // Step 4: upgrade.
    let (status, updated) = call(
        &s,
        &sk,
        reqwest::Method::POST,
        &format!("/api/v1/subscriptions/{id}/update/"),
        Some(json!({"planIdentifier": "enterprise", "chargePeriod": "MONTHLY"})),
    )
    .await;
    assert_eq!((status, updated), (200, json!({"subscriptionId": id})));

    // Step 5: the check sees the upgrade at once.
    let (_, ents) = call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements/?customerId=user-123", None).await;
    let ids: Vec<&str> =
        ents["entitlements"].as_array().unwrap().iter().map(|e| e["featureId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["export-data", "max-projects", "team-size", "sso"]);
    assert_eq!(ents["entitlements"][1]["usageLimit"], Value::Null, "unlimited");
    assert_eq!(ents["entitlements"][1]["hasAccess"], true);
    let (_, one) =
        call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements?customer_id=user-123&feature_id=sso", None).await;
    assert_eq!(one["entitlements"], json!([{"featureId": "sso", "featureType": "BOOLEAN", "hasAccess": true}]));

    // Unknown customer, missing customer, client key elsewhere.
    let (status, e) = call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements/?customer_id=nobody", None).await;
    assert_eq!((status, e), (404, json!({"detail": "Customer not found."})));
    let (status, e) = call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements/", None).await;
    assert_eq!((status, e), (400, json!({"customerId": ["This field is required."]})));
    let (status, _) = call(&s, &ck, reqwest::Method::GET, "/api/v1/subscriptions/", None).await;
    assert_eq!(status, 403);

    // An immediate cancellation revokes everything at once.
    let (status, _) = call(
        &s,
        &sk,
        reqwest::Method::POST,
        &format!("/api/v1/subscriptions/{id}/cancel/"),
        Some(json!({"cancellationType": "IMMEDIATE"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, ents) = call(&s, &ck, reqwest::Method::GET, "/api/v1/entitlements/?customerId=user-123", None).await;
    assert_eq!(ents["entitlements"], json!([]));
}

on_both_backends!(five_calls);
