//! The product offering through the real server, on SQLite and PostgreSQL:
//! the visible published plans in display order with their prices and
//! features, the billing periods, the customer's subscription, and the
//! buyer's country from `ip_address` (server key) or the request.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use serde_json::{json, Value};

async fn offering(s: &TestServer, key: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = crate::common::http().get(s.url(path)).bearer_auth(key);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn the_offering_is_what_a_pricing_page_renders(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // 198.51.100.0/24 is India in a one-line Tor-format range file.
    std::fs::write(dir.path().join("geoip"), "3325256704,3325256959,IN\n").unwrap();
    let file = dir.path().join("geoip");
    let s = TestServer::start_with(backend, move |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.geoip_file = Some(file);
    })
    .await;
    let api = Api::new(&s);
    let product =
        api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    api.ok("/api/v1/catalog/features/", json!({"name": "SSO", "featureType": "BOOLEAN"})).await;
    for (id, name, ordering, parent, visible, monthly) in [
        ("basic", "Basic", 2, None, true, 20),
        ("pro", "Pro", 1, Some("basic"), true, 50),
        ("legacy", "Legacy", 3, None, false, 10),
    ] {
        api.ok(
            "/api/v1/catalog/plans/",
            json!({"name": name, "identifier": id, "product": "app", "ordering": ordering, "parent": parent,
                "isVisible": visible, "description": format!("{name} plan"), "metadata": {"highlight": id == "pro"}}),
        )
        .await;
        api.ok(
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": monthly}},
                {"chargePeriod": "YEARLY", "priceData": {"amount": monthly * 10}}]}]}]}),
        )
        .await;
        if id == "pro" {
            api.ok(
                "/api/v1/catalog/plans/pro/features/",
                json!({"planEntitlements": [{"feature": "sso", "details": {"value": true}}]}),
            )
            .await;
        }
        api.ok(&format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
    let pid = product["id"].as_str().unwrap();
    let path = format!("/api/v1/monetization/product-offering/{pid}/");

    let (status, o) = offering(&s, &s.server_key, &format!("{path}?ip_address=198.51.100.7"), &[]).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(
        (
            o["countryCode"].clone(),
            o["currencyCode"].clone(),
            o["currencySymbol"].clone(),
            o["currencyConversionRate"].clone()
        ),
        (json!("IN"), json!("USD"), json!("$"), json!(1.0))
    );
    let plans: Vec<&str> = o["plans"].as_array().unwrap().iter().map(|p| p["identifier"].as_str().unwrap()).collect();
    assert_eq!(plans, ["pro", "basic"], "visible plans in display order");
    let pro = &o["plans"][0];
    assert_eq!(pro["originalPrice"], json!({"MONTHLY": 50.0, "YEARLY": 500.0}));
    assert_eq!(
        (pro["basePlan"].clone(), pro["includes"].clone()),
        (json!("basic"), json!("Everything in Basic, plus"))
    );
    assert_eq!((pro["shouldHighlight"].clone(), pro["displayDescription"].clone()), (json!(true), json!("Pro plan")));
    assert_eq!(pro["features"][0]["feature"]["identifier"], "sso");
    let charges = pro["price"]["charges"].as_array().unwrap();
    assert_eq!(
        (charges.len(), charges[0]["chargePeriod"].clone(), charges[0]["priceData"]["amount"].clone()),
        (2, json!("MONTHLY"), json!(50.0))
    );
    let periods: Vec<&str> =
        o["billingPeriods"].as_array().unwrap().iter().map(|p| p["chargePeriod"].as_str().unwrap()).collect();
    assert_eq!(periods, ["MONTHLY", "YEARLY"]);
    assert_eq!(o["billingPeriods"][1]["displayName"], "Yearly");
    assert_eq!(o["isCustomerExists"], false);

    // A client key: the request's (forwarded) address, never ip_address.
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;
    let (_, o) = offering(&s, &client, &path, &[("x-forwarded-for", "198.51.100.9")]).await;
    assert_eq!(o["countryCode"], "IN");
    let (_, o) = offering(&s, &client, &format!("{path}?ip_address=198.51.100.7"), &[]).await;
    assert_eq!(o["countryCode"], Value::Null, "ip_address is honoured only with a server key");
    // plans_enabled picks plans (a hidden one too).
    let (_, o) = offering(&s, &client, &format!("{path}?plans_enabled=legacy,basic"), &[]).await;
    let plans: Vec<&str> = o["plans"].as_array().unwrap().iter().map(|p| p["identifier"].as_str().unwrap()).collect();
    assert_eq!(plans, ["basic", "legacy"]);

    // The customer's subscription.
    let sub = api.buy("basic", "YEARLY", "cust-1", "4242424242424242", json!({})).await;
    let (_, o) = offering(&s, &client, &format!("{path}?customer_id=cust-1"), &[]).await;
    assert_eq!(o["isCustomerExists"], true);
    assert_eq!(
        o["subscription"],
        json!({"hasPreviousSubscription": false, "planIdentifier": "basic", "subscriptionId": sub, "chargePeriod": "YEARLY"})
    );
    let (_, o) = offering(&s, &client, &format!("{path}?customer_id=nobody"), &[]).await;
    assert_eq!(
        (o["isCustomerExists"].clone(), o["subscription"]["planIdentifier"].clone()),
        (json!(false), Value::Null)
    );

    // A browser on another origin may call it (and the entitlement check) with a client key.
    for path in [path.as_str(), "/api/v1/entitlements?customer_id=cust-1"] {
        let preflight = crate::common::http()
            .request(reqwest::Method::OPTIONS, s.url(path))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status().as_u16(), 200, "{path}");
        assert_eq!(preflight.headers()["access-control-allow-origin"], "https://shop.example");
        assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        let get = crate::common::http().get(s.url(path)).bearer_auth(&client).header("origin", "https://shop.example");
        let res = get.send().await.unwrap();
        let allowed = res.headers()["access-control-allow-origin"].to_str().unwrap().to_string();
        assert_eq!((res.status().as_u16(), allowed.as_str()), (200, "https://shop.example"));
    }
    // Everything else stays same-origin.
    let other = crate::common::http()
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/customers/"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // An unknown product, exactly as published.
    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let (status, e) =
            offering(&s, &client, &format!("/api/v1/monetization/product-offering/{missing}/"), &[]).await;
        assert_eq!((status, e), (404, json!({"status": "Not found", "message": "Product does not exist"})));
    }
}

on_both_backends!(the_offering_is_what_a_pricing_page_renders);
