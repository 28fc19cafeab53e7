//! License keys through the real server, on SQLite and PostgreSQL: issued by
//! a purchase and shown in the subscription and the order; activated,
//! validated and deactivated in Kelviq's shapes; the activation limit exact
//! under 64 racing activations (two processes on PostgreSQL); fingerprints
//! reused; floating seats freed after a missed heartbeat; expiry with its
//! grace period, cancellation and refunds; the merchant's changes; and the
//! hourly and per-address limits.

use crate::common::api::Api;
use crate::common::{second_process, Backend, TestServer};
use serde_json::{json, Value};

/// Product `app` with plan `desk` (20 USD a month) selling a license with `license`.
async fn seed(api: &Api<'_>, license: Value) {
    api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "software"})).await;
    api.ok(
        "/api/v1/catalog/plans/",
        json!({"name": "Desk", "identifier": "desk", "product": "app", "license": license}),
    )
    .await;
    api.ok(
        "/api/v1/catalog/plans/desk/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/desk/publish/", json!({})).await;
}

/// Buys `desk` for `customer`: the subscription id and the license key.
async fn buy(api: &Api<'_>, customer: &str) -> (String, String) {
    let sub = api.buy("desk", "MONTHLY", customer, "4242424242424242", json!({})).await;
    let s = api.sub(&sub).await;
    let licenses = s["license"].as_array().unwrap();
    assert_eq!(licenses.len(), 1, "one key per purchase: {s}");
    (sub, licenses[0]["licenseKey"].as_str().unwrap().to_string())
}

async fn activate(api: &Api<'_>, key: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"license_key": key});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.post("/api/v1/license/activate/", body).await
}

async fn validate(api: &Api<'_>, key: &str, instance: Option<&str>) -> (u16, Value) {
    let mut body = json!({"license_key": key});
    if let Some(i) = instance {
        body["instance_id"] = json!(i);
    }
    api.post("/api/v1/license/validate/", body).await
}

async fn admin(api: &Api<'_>, customer: &str) -> Value {
    let (status, page) = api.get(&format!("/api/v1/licenses/?customer_id={customer}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 1, "{page}");
    page["results"][0].clone()
}

const LIMITED: fn() -> Value = || {
    json!({"enabled": true, "activationLimitEnabled": true, "activationLimit": 2, "hasExpiry": true,
        "durationUnit": "YEAR", "durationValue": 1, "reuseInstanceByFingerprint": true, "graceDays": 3})
};

async fn keys_activate_validate_and_deactivate(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api, LIMITED()).await;
    let (sub, key) = buy(&api, "cus_lic").await;
    assert!(key.starts_with("LIC-") && key.len() == 40, "{key}");
    let order = &api.orders("cus_lic").await[0];
    assert_eq!(order["license"][0]["licenseKey"], key.as_str(), "the order shows the key it issued");

    // Before any activation.
    let (status, v) = validate(&api, &key, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["valid"].clone(), v["code"].clone()), (json!(true), json!("VALID")));
    assert_eq!(v["detail"], "License key is valid.");
    let l = &v["license"];
    assert_eq!((l["activationUsage"].clone(), l["activationLimit"].clone()), (json!(0), json!(2)), "{l}");
    assert_eq!(l["activatedOn"], Value::Null);
    assert_eq!(l["expiresOn"], "2027-01-31T10:00:00Z");
    assert_eq!(l["customer"]["customerId"], "cus_lic");
    assert_eq!(l["customer"]["email"], "cus_lic@example.com");
    assert_eq!((l["plan"]["identifier"].clone(), l["plan"]["isLatest"].clone()), (json!("desk"), json!(true)));
    assert_eq!(l["plan"]["product"]["identifier"], "app");
    assert_eq!(l["plan"]["product"]["taxCode"], "software");
    assert_eq!(l["subscription"]["id"], sub.as_str());
    assert_eq!(l["subscription"]["billingType"], "SUBSCRIPTION");

    // Refusals in Kelviq's shapes, with nothing written.
    let (status, body) = api.post("/api/v1/license/activate/", json!({})).await;
    assert_eq!((status, body), (400, json!({"licenseKey": ["This field is required."]})));
    let (status, body) = activate(&api, &key, json!({"customer_id": "someone_else"})).await;
    assert_eq!((status, body), (404, json!({"error": "Invalid license key or customer ID."})));
    let (status, body) = activate(&api, "LIC-00000000-0000-0000-0000-000000000000", json!({})).await;
    assert_eq!((status, body), (404, json!({"error": "Invalid license key or customer ID."})));
    let (status, body) = activate(&api, &key, json!({"metadata": "not an object"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["metadata"].is_array(), "{body}");

    // Two machines; the first again by its fingerprint uses no slot.
    let (status, a) = activate(
        &api,
        &key,
        json!({"customer_id": "cus_lic", "instance_name": "laptop", "metadata": {"fingerprint": "fp-a"}}),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["license"]["activationUsage"], 1);
    assert_eq!(a["activatedAt"], "2026-01-31T10:00:00Z");
    assert_eq!(a["license"]["activatedOn"], "2026-01-31T10:00:00Z");
    assert_eq!(a["expiresOn"], "2027-01-31T10:00:00Z");
    let ia = a["instanceId"].as_str().unwrap().to_string();
    let (status, again) = activate(&api, &key, json!({"metadata": {"fingerprint": "fp-a"}})).await;
    assert_eq!((status, again["instanceId"].clone()), (201, json!(ia)), "{again}");
    assert_eq!(again["license"]["activationUsage"], 1);
    let (_, b) = activate(&api, &key, json!({"metadata": {"fingerprint": "fp-b"}})).await;
    let ib = b["instanceId"].as_str().unwrap().to_string();
    assert_eq!(b["license"]["activationUsage"], 2);
    let (status, body) = activate(&api, &key, json!({"metadata": {"fingerprint": "fp-c"}})).await;
    assert_eq!((status, body), (403, json!({"error": "Activation limit reached (2/2)."})));

    // Validation of instances.
    let (status, v) = validate(&api, &key, Some(&ia)).await;
    assert_eq!((status, v["code"].clone()), (200, json!("VALID")), "{v}");
    assert_eq!(v["detail"], "Instance ID valid for this license.");
    assert_eq!(v["metadata"], json!({"fingerprint": "fp-a"}));
    assert_eq!(v["license"]["activationUsage"], 2);
    let (status, v) = validate(&api, &key, Some("7d8b4b4e-7c55-4d8c-9a43-3a1f5a5d2b11")).await;
    assert_eq!(
        (status, v),
        (
            404,
            json!({"valid": false, "code": "INSTANCE_NOT_FOUND", "detail": "Instance ID invalid for this license.", "metadata": {}})
        )
    );
    let (status, v) = validate(&api, "LIC-NOPE", None).await;
    assert_eq!(
        (status, v),
        (404, json!({"valid": false, "code": "INVALID_KEY", "detail": "License key not found.", "metadata": {}}))
    );
    let client = Api::with_key(&s, &s.client_key);
    let (status, v) = validate(&client, &key, Some(&ia)).await;
    assert_eq!((status, v["code"].clone()), (200, json!("VALID")), "a desktop app validates with a client key");
    let (status, _) = activate(&client, &key, json!({})).await;
    assert_eq!(status, 403, "but activates only with a server key");

    // Deactivation frees the slot.
    let body = json!({"license_key": key, "instance_id": ib});
    let (status, d) = api.post("/api/v1/license/deactivate/", body.clone()).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["message"], "License instance deactivated successfully.");
    let (status, again) = api.post("/api/v1/license/deactivate/", body).await;
    assert_eq!((status, again), (404, json!({"error": "Invalid license key or instance ID."})));
    assert_eq!(validate(&api, &key, Some(&ib)).await.0, 404);
    let (status, c) = activate(&api, &key, json!({"metadata": {"fingerprint": "fp-c"}})).await;
    assert_eq!(status, 201, "{c}");
    let ic = c["instanceId"].as_str().unwrap().to_string();

    // The merchant's view; validation is recorded as last seen (within a
    // second or so), several instances in one write.
    assert_eq!(validate(&api, &key, Some(&ia)).await.0, 200);
    assert_eq!(validate(&api, &key, Some(&ic)).await.0, 200);
    let mut seen = Vec::new();
    for _ in 0..40 {
        let l = admin(&api, "cus_lic").await;
        let instances = l["instances"].as_array().unwrap();
        seen = [&ia, &ic]
            .iter()
            .map(|id| instances.iter().find(|i| i["id"] == id.as_str()).unwrap()["lastSeenAt"].clone())
            .collect();
        if seen.iter().all(|s| !s.is_null()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["2026-01-31T10:00:00Z", "2026-01-31T10:00:00Z"]);
    let l = admin(&api, "cus_lic").await;
    let by: Vec<(Value, Value)> =
        l["instances"].as_array().unwrap().iter().map(|i| (i["deactivatedBy"].clone(), i["active"].clone())).collect();
    assert_eq!(by, [(Value::Null, json!(true)), (json!("CUSTOMER"), json!(false)), (Value::Null, json!(true))]);
    let id = l["id"].as_str().unwrap().to_string();

    // Disabled by the merchant: validates as DISABLED, activates no more.
    let (status, off) =
        api.send(reqwest::Method::PATCH, &format!("/api/v1/licenses/{id}/"), Some(json!({"enabled": false}))).await;
    assert_eq!((status, off["enabled"].clone(), off["disabledReason"].clone()), (200, json!(false), json!("MERCHANT")));
    let (status, v) = validate(&api, &key, Some(&ia)).await;
    assert_eq!((status, v["valid"].clone(), v["code"].clone()), (200, json!(false), json!("DISABLED")), "{v}");
    assert_eq!(activate(&api, &key, json!({})).await, (403, json!({"error": "This license has been disabled."})));
    api.send(reqwest::Method::PATCH, &format!("/api/v1/licenses/{id}/"), Some(json!({"enabled": true}))).await;
    assert_eq!(validate(&api, &key, Some(&ia)).await.1["code"], "VALID");

    // A new key: the old one stops at once, the instances stay.
    let fresh = api.ok(&format!("/api/v1/licenses/{id}/regenerate/"), json!({})).await;
    let new_key = fresh["licenseKey"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(validate(&api, &key, None).await.0, 404);
    assert_eq!(validate(&api, &new_key, Some(&ia)).await.1["code"], "VALID");
    assert_eq!(api.sub(&sub).await["license"][0]["licenseKey"], new_key.as_str());

    // Revoke one instance.
    let (status, _) = api.send(reqwest::Method::DELETE, &format!("/api/v1/licenses/{id}/instances/{ic}/"), None).await;
    assert_eq!(status, 200);
    assert_eq!(validate(&api, &new_key, Some(&ic)).await.0, 404);
    assert_eq!(validate(&api, &new_key, None).await.1["license"]["activationUsage"], 1);

    // Expiry a year on, with three days of grace.
    api.advance_to("2027-02-01T10:00:00Z").await;
    let (status, v) = validate(&api, &new_key, Some(&ia)).await;
    assert_eq!((status, v["valid"].clone(), v["code"].clone()), (200, json!(true), json!("EXPIRED")), "{v}");
    assert_eq!(activate(&api, &new_key, json!({})).await, (403, json!({"error": "This license has expired."})));
    api.advance_to("2027-02-03T10:00:01Z").await;
    let (_, v) = validate(&api, &new_key, Some(&ia)).await;
    assert_eq!((v["valid"].clone(), v["code"].clone()), (json!(false), json!("EXPIRED")), "{v}");

    let types = api.event_types().await;
    for t in ["license.created", "license.activated", "license.deactivated", "license.disabled"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
}

async fn cancellation_and_refunds_end_licenses(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api, json!({"enabled": true})).await;
    let (sub, key) = buy(&api, "cus_cancel").await;
    let (_, a) = activate(&api, &key, json!({})).await;
    assert_eq!(a["license"]["activationLimit"], 0, "unlimited shows 0");
    assert_eq!(validate(&api, &key, None).await.1["code"], "VALID");
    api.ok(&format!("/api/v1/subscriptions/{sub}/cancel/"), json!({"cancellationType": "IMMEDIATE"})).await;
    let (status, v) = validate(&api, &key, None).await;
    assert_eq!((status, v["valid"].clone(), v["code"].clone()), (200, json!(false), json!("SUBSCRIPTION_INACTIVE")));

    let (_, key) = buy(&api, "cus_refund").await;
    let order = api.orders("cus_refund").await[0]["id"].as_str().unwrap().to_string();
    api.ok("/api/v1/refunds/", json!({"orderId": order})).await;
    let (_, v) = validate(&api, &key, None).await;
    assert_eq!((v["valid"].clone(), v["code"].clone()), (json!(false), json!("DISABLED")), "{v}");
    assert_eq!(admin(&api, "cus_refund").await["disabledReason"], "REFUND");
}

/// 64 activations of a limit-5 key at once: exactly 5 succeed (on
/// PostgreSQL, half of them sent to a second server process).
async fn sixty_four_racing_activations_take_five_slots(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api, json!({"enabled": true, "activationLimitEnabled": true, "activationLimit": 5})).await;
    let (_, key) = buy(&api, "cus_race").await;
    let second = match backend {
        Backend::Postgres => Some(second_process(&s).await),
        Backend::Sqlite => None,
    };
    let bases = [s.base_url.clone(), second.as_ref().map_or(s.base_url.clone(), |(url, _, _)| url.clone())];
    let http = crate::common::http();
    let tries = (0..64).map(|i| {
        let (http, key, token) = (http.clone(), key.clone(), s.server_key.clone());
        let url = format!("{}/api/v1/license/activate/", bases[i % 2]);
        async move {
            let res =
                http.post(url).bearer_auth(token).json(&json!({"licenseKey": key, "instanceName": format!("m{i}")}));
            let res = res.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(tries).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 403).map(|(_, b)| b).collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!((created, refused.len()), (5, 59), "{statuses:?}");
    assert!(refused.iter().all(|b| **b == json!({"error": "Activation limit reached (5/5)."})));
    let l = admin(&api, "cus_race").await;
    assert_eq!(l["instances"].as_array().unwrap().len(), 5);
    assert_eq!(validate(&api, &key, None).await.1["license"]["activationUsage"], 5);
    if let Some((_, stop, task)) = second {
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}

/// A floating seat that misses its heartbeat is dead at once and frees
/// its slot a minute later.
async fn floating_seats_need_heartbeats(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(
        &api,
        json!({"enabled": true, "activationLimitEnabled": true, "activationLimit": 1, "heartbeatTtlSeconds": 60}),
    )
    .await;
    let (_, key) = buy(&api, "cus_float").await;
    let (_, a) = activate(&api, &key, json!({})).await;
    let ia = a["instanceId"].as_str().unwrap().to_string();
    api.advance_to("2026-01-31T10:00:50Z").await;
    let beat = json!({"license_key": key, "instance_id": ia});
    let client = Api::with_key(&s, &s.client_key);
    let (status, b) = client.post("/api/v1/license/heartbeat/", beat.clone()).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["nextHeartbeatDueAt"], "2026-01-31T10:01:50Z");
    assert_eq!(b["heartbeatTtlSeconds"], 60);
    // Silent for 61 s: dead, but its slot is held another minute.
    api.advance_to("2026-01-31T10:01:51Z").await;
    let (status, v) = validate(&api, &key, Some(&ia)).await;
    assert_eq!((status, v["valid"].clone(), v["code"].clone()), (200, json!(false), json!("HEARTBEAT_DEAD")), "{v}");
    assert_eq!(activate(&api, &key, json!({})).await.0, 403);
    api.advance_to("2026-01-31T10:02:51Z").await;
    let (status, b) = activate(&api, &key, json!({})).await;
    assert_eq!(status, 201, "the slot is free after TTL + 60 s: {b}");
    assert_eq!(validate(&api, &key, Some(&ia)).await.1["code"], "HEARTBEAT_DEAD");
    let (status, _) = client.post("/api/v1/license/heartbeat/", beat).await;
    assert_eq!(status, 404, "a released instance must activate again");
}

async fn abuse_is_limited(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.license_activation_attempts_per_hour = 3;
        c.license_client_requests_per_minute = 2;
    })
    .await;
    let api = Api::new(&s);
    seed(&api, json!({"enabled": true, "activationLimitEnabled": true, "activationLimit": 1})).await;
    let (_, key) = buy(&api, "cus_abuse").await;
    let (_, a) = activate(&api, &key, json!({})).await;
    assert_eq!(activate(&api, &key, json!({})).await.0, 403, "at the limit: does not count");
    let body = json!({"license_key": key, "instance_id": a["instanceId"]});
    assert_eq!(api.post("/api/v1/license/deactivate/", body).await.0, 200);
    assert_eq!(activate(&api, &key, json!({})).await.0, 201);
    let (status, body) = activate(&api, &key, json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"].as_str().unwrap().contains("3 times in the last hour"), "{body}");
    api.advance_to("2026-01-31T11:00:01Z").await;
    assert_eq!(activate(&api, &key, json!({})).await.0, 403, "an hour later: counted again, at the limit");

    let client = Api::with_key(&s, &s.client_key);
    assert_eq!(validate(&client, &key, None).await.0, 200);
    assert_eq!(validate(&client, &key, None).await.0, 200);
    let (status, body) = validate(&client, &key, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(validate(&api, &key, None).await.0, 200, "server keys are not limited per address");
}

on_both_backends!(
    keys_activate_validate_and_deactivate,
    cancellation_and_refunds_end_licenses,
    sixty_four_racing_activations_take_five_slots,
    floating_seats_need_heartbeats,
    abuse_is_limited,
);
