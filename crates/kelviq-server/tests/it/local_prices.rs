//! Location-based prices through the real server, on SQLite and PostgreSQL:
//! stored and shown with the plan's prices, checked against the price's
//! charges; a buyer from a TIER_4 country (through the range file and
//! through the trusted header) sees the local price in the offering and
//! pays it at checkout and on renewal; strict country matching falls back
//! to the standard price; a non-strict price does not.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use serde_json::{json, Value};

fn tiers(a: f64, b: f64) -> Value {
    json!([{"upTo": 1000, "unitAmount": a, "flatAmount": 0}, {"upTo": "inf", "unitAmount": b, "flatAmount": 0}])
}

fn price(local: Value) -> Value {
    json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
        {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}, {"chargePeriod": "YEARLY", "priceData": {"amount": 200}}]},
        {"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO",
         "charges": [{"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"}, "tiers": tiers(0.01, 0.005)}]}],
        "localPrices": local}]})
}

fn india() -> Value {
    json!({"group": "TIER_4", "currency": "INR", "charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 499}},
        {"chargePeriod": "YEARLY", "priceData": {"amount": 4990}},
        {"feature": "api-calls", "chargePeriod": "MONTHLY", "tiers": tiers(0.2, 0.1)}]})
}

/// TIER_2 (Poland among them) pays in EUR.
fn tier_two() -> Value {
    json!({"group": "TIER_2", "currency": "EUR", "charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 14}},
        {"chargePeriod": "YEARLY", "priceData": {"amount": 140}},
        {"feature": "api-calls", "chargePeriod": "MONTHLY", "tiers": tiers(0.008, 0.004)}]})
}

fn brazil() -> Value {
    json!({"countries": ["br"], "currency": "USD", "strictCountry": false, "charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 10}},
        {"chargePeriod": "YEARLY", "priceData": {"amount": 100}},
        {"feature": "api-calls", "chargePeriod": "MONTHLY", "tiers": tiers(0.005, 0.0025)}]})
}

async fn start(backend: Backend, dir: &std::path::Path) -> TestServer {
    // 198.51.100.0/24 is India, 203.0.113.0/24 Brazil (Tor's format).
    std::fs::write(dir.join("geoip"), "3325256704,3325256959,IN\n3405803776,3405804031,BR\n").unwrap();
    let file = dir.join("geoip");
    TestServer::start_with(backend, move |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.geo_country_header = Some("CF-IPCountry".into());
        c.geoip_file = Some(file);
    })
    .await
}

async fn seed(api: &Api<'_>) -> String {
    let product =
        api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "API Calls", "featureType": "METER",
            "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "call", "plural": "calls"}}}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Pro", "identifier": "pro", "product": "app"})).await;
    api.ok(
        "/api/v1/catalog/plans/pro/features/",
        json!({"planEntitlements": [{"feature": "api-calls", "details": {"value": null, "hasUnlimitedUsage": true, "hardLimit": false}}]}),
    )
    .await;
    product["id"].as_str().unwrap().to_string()
}

async fn complete(api: &Api<'_>, session: &Value, country: &str) -> (u16, Value) {
    let id = session["checkoutSessionId"].as_str().unwrap();
    api.post(
        &format!("/api/v1/checkout/sessions/{id}/complete/"),
        json!({"card": "4242424242424242", "email": "b@example.com", "billingCountry": country}),
    )
    .await
}

async fn header_get(s: &TestServer, key: &str, path: &str, country: &str) -> (u16, Value) {
    let res =
        crate::common::http().get(s.url(path)).bearer_auth(key).header("cf-ipcountry", country).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn a_buyer_pays_the_price_of_their_country(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(backend, dir.path()).await;
    let api = Api::new(&s);
    let product = seed(&api).await;

    // Checked against the price's charges; nothing written on a refusal.
    let mut missing = india();
    missing["charges"].as_array_mut().unwrap().remove(1);
    let mut bounds = india();
    bounds["charges"][2]["tiers"][0]["upTo"] = json!(500);
    for (bad, says) in [
        (missing, "no local price for the plan's charge YEARLY"),
        (bounds, "the tiers must end where the price's tiers end"),
        (json!({"group": "TIER_9", "currency": "INR", "charges": []}), "TIER_9"),
        (json!({"countries": ["XX"], "currency": "INR", "charges": []}), "XX"),
        (json!({"countries": ["IN"], "currency": "ZZZ", "charges": []}), "ZZZ"),
    ] {
        let (status, e) = api.post("/api/v1/catalog/plans/pro/prices/bulk/", price(json!([bad]))).await;
        assert_eq!(status, 400, "{e}");
        assert!(e["prices"][0].as_str().unwrap().contains(says), "{says} in {e}");
    }
    let (status, e) = api.post("/api/v1/catalog/plans/pro/prices/bulk/", price(json!([brazil(), brazil()]))).await;
    assert_eq!(status, 400);
    assert!(e["prices"][0].as_str().unwrap().contains("BR has two local prices"), "{e}");
    let stored = api.ok("/api/v1/catalog/plans/pro/prices/bulk/", price(json!([india(), tier_two(), brazil()]))).await;
    let local = &stored["prices"][0]["localPrices"];
    assert_eq!(
        (local[0]["group"].clone(), local[0]["currency"].clone(), local[0]["strictCountry"].clone()),
        (json!("TIER_4"), json!("INR"), json!(true))
    );
    assert_eq!(local[0]["charges"][0]["priceData"]["amount"], json!(499.0));
    assert_eq!(local[2]["countries"], json!(["BR"]));
    api.ok("/api/v1/catalog/plans/pro/publish/", json!({})).await;

    // The offering: through the range file (server key's ip_address), through the trusted header.
    let path = format!("/api/v1/monetization/product-offering/{product}/");
    let (_, o) = api.get(&format!("{path}?ip_address=198.51.100.7")).await;
    assert_eq!(
        (
            o["countryCode"].clone(),
            o["currencyCode"].clone(),
            o["currencySymbol"].clone(),
            o["baseCurrencyCode"].clone()
        ),
        (json!("IN"), json!("INR"), json!("₹"), json!("USD"))
    );
    let pro = &o["plans"][0];
    assert_eq!(
        (pro["price"]["currency"].clone(), pro["price"]["charges"][0]["priceData"]["amount"].clone()),
        (json!("INR"), json!(499.0))
    );
    assert_eq!(pro["originalPrice"], json!({"MONTHLY": 20.0, "YEARLY": 200.0}), "the plan's own price");
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;
    let by_header = crate::common::http()
        .get(s.url(&path))
        .bearer_auth(&client)
        .header("cf-ipcountry", "IN")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!((by_header["countryCode"].clone(), by_header["currencyCode"].clone()), (json!("IN"), json!("INR")));
    // A TIER_2 buyer through the trusted header: the offering, then checkout (no ipAddress) and payment.
    let (status, poland) = header_get(&s, &client, &path, "PL").await;
    assert_eq!(status, 200);
    assert_eq!((poland["countryCode"].clone(), poland["currencyCode"].clone()), (json!("PL"), json!("EUR")));
    assert_eq!(poland["plans"][0]["price"]["charges"][0]["priceData"]["amount"], json!(14.0));
    let res = crate::common::http()
        .post(s.url("/api/v1/checkout/"))
        .bearer_auth(&s.server_key)
        .header("cf-ipcountry", "PL")
        .json(&json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "piotr", "successUrl": "https://x.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let session: Value = res.json().await.unwrap();
    let (status, done) = complete(&api, &session, "PL").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["order"]["amountTotal"].clone(), done["order"]["saleCurrency"].clone()),
        (json!("14.00"), json!("EUR"))
    );
    let (_, us) = api.get(&format!("{path}?ip_address=192.0.2.1")).await;
    assert_eq!((us["countryCode"].clone(), us["currencyCode"].clone()), (Value::Null, json!("USD")));

    // Checkout from India pays the local price, and so does the renewal.
    let open = |customer: &'static str, extra: Value| {
        let mut body = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": customer,
            "successUrl": "https://x.example/"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        api.ok("/api/v1/checkout/", body)
    };
    let session = open("priya", json!({"ipAddress": "198.51.100.7"})).await;
    let (status, done) = complete(&api, &session, "IN").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["order"]["amountTotal"].clone(), done["order"]["saleCurrency"].clone()),
        (json!("499.00"), json!("INR"))
    );
    api.advance_to("2026-02-28T10:00:00Z").await;
    let orders = api.orders("priya").await;
    assert_eq!((orders[1]["amountTotal"].clone(), orders[1]["saleCurrency"].clone()), (json!("499.00"), json!("INR")));

    // Strict: shown India's price, billed in the US: the standard price, said clearly, then paid.
    let session = open("roamer", json!({"ipAddress": "198.51.100.9"})).await;
    let (status, e) = complete(&api, &session, "US").await;
    assert_eq!(status, 400);
    let message = e["billingCountry"][0].as_str().unwrap();
    assert!(message.contains("billed in India") && message.contains("standard price"), "{message}");
    let (status, done) = complete(&api, &session, "US").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["order"]["amountTotal"].clone(), done["order"]["saleCurrency"].clone()),
        (json!("20.00"), json!("USD"))
    );

    // Not strict: Brazil's price holds for a buyer billed elsewhere.
    let session = open("bruna", json!({"defaultBillingCountry": "BR"})).await;
    let (status, done) = complete(&api, &session, "AR").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["order"]["amountTotal"], "10.00");
    let (status, e) = api
        .post("/api/v1/checkout/", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "ipAddress": "nope"}))
        .await;
    assert_eq!((status, e["ipAddress"].is_array()), (400, true));
}

on_both_backends!(a_buyer_pays_the_price_of_their_country);
