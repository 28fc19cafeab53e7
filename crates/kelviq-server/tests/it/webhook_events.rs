//! Every event type the product emits reaches a subscribed endpoint, signed
//! so that the SDK verifies it, on SQLite and PostgreSQL: a customer's
//! life, a checkout, usage crossing an alert, an upgrade, a failed renewal,
//! a retried renewal, a refund, a cancellation, a test event and an endpoint disabled by 410.

use crate::common::api::Api;
use crate::common::receiver::{Receiver, Reply};
use crate::common::{Backend, TestServer};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// What the product emits today (the Stripe provider will add
/// `order.payment_failed`, `refund.updated` and `payment_method.updated/deleted`).
const EMITTED: &[&str] = &[
    "customer.created",
    "customer.updated",
    "checkout.completed",
    "payment_method.created",
    "order.created",
    "order.updated",
    "invoice.created",
    "invoice.paid",
    "invoice.payment_failed",
    "subscription.created",
    "subscription.updated",
    "subscription.plan_changed",
    "subscription.cancelled",
    "refund.created",
    "order.refunded",
    "feature.usage_alert",
    "webhook.test",
    "endpoint.disabled",
];

/// `calls` (a meter, alerts at 50 % and 100 % of 10); `basic` ($10/month)
/// and `pro` ($30/month), both granting it.
async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "Suite", "identifier": "suite", "taxCode": "saas"})).await;
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "Calls", "featureType": "METER",
            "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "call", "plural": "calls"}}}),
    )
    .await;
    for (plan, amount) in [("basic", 10), ("pro", 30)] {
        api.ok("/api/v1/catalog/plans/", json!({"name": plan, "identifier": plan, "product": "suite"})).await;
        api.ok(
            &format!("/api/v1/catalog/plans/{plan}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD",
                "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": amount}}]}]}]}),
        )
        .await;
        api.ok(
            &format!("/api/v1/catalog/plans/{plan}/features/"),
            json!({"planEntitlements": [{"feature": "calls", "details": {"value": 10, "reset": "EVERY_MONTH",
                "resetTime": "SUBSCRIPTION_START", "hardLimit": true,
                "usageAlerts": {"enabled": true, "thresholdType": "PERCENTAGE", "thresholds": [50, 100]}}}]}),
        )
        .await;
        api.ok(&format!("/api/v1/catalog/plans/{plan}/publish/"), json!({})).await;
    }
}

async fn every_event_type_is_delivered_and_verifies(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.webhook_allow_subnets = vec!["127.0.0.0/8".into()];
        c.webhook_poll_interval_ms = 25;
    })
    .await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    rx.script(|_, path| Reply::Status(if path == "/gone" { 410 } else { 200 }));
    let (status, hook) = api.post("/api/v1/webhooks/endpoints/", json!({"url": format!("{}/hook", rx.url)})).await;
    assert_eq!(status, 201, "{hook}");
    let (hook_id, secret) = (hook["id"].as_str().unwrap(), hook["secret"].as_str().unwrap().to_string());
    seed(&api).await;

    api.ok("/api/v1/customers/", json!({"customerId": "ann", "email": "ann@example.com", "name": "Ann"})).await;
    let (status, v) = api.send(reqwest::Method::PATCH, "/api/v1/customers/ann/", Some(json!({"name": "Ann B."}))).await;
    assert_eq!(status, 200, "{v}");
    let ann = api.buy("basic", "MONTHLY", "ann", "4242424242424242", json!({})).await;
    api.usage("ann", "calls", 6, "DELTA").await;
    api.ok(
        &format!("/api/v1/subscriptions/{ann}/update/"),
        json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"}),
    )
    .await;
    // A card that pays once, then fails at the renewal.
    let bob = api.buy("basic", "MONTHLY", "bob", "4000000000000341", json!({})).await;
    let renewal = api.sub(&bob).await["billingPeriodEndTime"].as_str().unwrap().to_string();
    api.advance_to(&renewal).await;
    assert_eq!(api.sub(&bob).await["status"], "past_due");
    // A working card saved by another purchase: the retry pays the renewal's order.
    api.buy("pro", "MONTHLY", "bob", "4242424242424242", json!({})).await;
    let retried = chrono::DateTime::parse_from_rfc3339(&renewal).unwrap() + chrono::Duration::days(4);
    api.advance_to(&retried.to_rfc3339()).await;
    let order = api.orders("ann").await[0]["id"].as_str().unwrap().to_string();
    assert_eq!(api.sub(&bob).await["status"], "active");
    api.ok("/api/v1/refunds/", json!({"orderId": order, "amountUnits": 100, "reason": "OTHER"})).await;
    api.ok(&format!("/api/v1/subscriptions/{bob}/cancel/"), json!({"cancellationType": "IMMEDIATE"})).await;
    let (status, v) = api.post(&format!("/api/v1/webhooks/endpoints/{hook_id}/test/"), json!({})).await;
    assert_eq!(status, 202, "{v}");
    // An endpoint answering 410 is disabled at once; the notice goes to the other.
    let (status, gone) = api
        .post(
            "/api/v1/webhooks/endpoints/",
            json!({"url": format!("{}/gone", rx.url), "eventTypes": ["customer.created"]}),
        )
        .await;
    assert_eq!(status, 201, "{gone}");
    api.ok("/api/v1/customers/", json!({"customerId": "cy", "email": "cy@example.com"})).await;
    rx.wait_for("/gone", 1, Duration::from_secs(20)).await;

    // Every event the store holds arrives at /hook, once verified by the SDK.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (stored, delivered) = loop {
        let stored: Vec<(String, String)> = s
            .store
            .list_events(&s.tenant, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| (e.id.to_string(), e.event_type))
            .collect();
        let mut delivered: HashMap<String, Value> = HashMap::new();
        for r in rx.got_on("/hook") {
            let event = kelviq_sdk::webhooks::validate_event(&r.body, r.header_pairs(), &secret)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)));
            assert_eq!(r.header("webhook-id"), event["id"].as_str());
            delivered.insert(event["id"].as_str().unwrap().to_string(), event);
        }
        let types: BTreeSet<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
        let done = stored.iter().all(|(id, _)| delivered.contains_key(id)) && types.contains("endpoint.disabled");
        if done || std::time::Instant::now() > deadline {
            break (stored, delivered);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (id, event_type) in &stored {
        let event = delivered.get(id).unwrap_or_else(|| panic!("{event_type} {id} was not delivered"));
        assert_eq!(event["type"], event_type.as_str());
        assert!(event["data"]["object"].is_object(), "{event}");
    }
    let types: BTreeSet<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
    for t in EMITTED {
        assert!(types.contains(t), "{t} was never emitted: {types:?}");
    }
    // An invoice's events carry its lines, adding up to its total.
    let invoices: Vec<&Value> =
        delivered.values().filter(|e| e["type"].as_str().unwrap().starts_with("invoice.")).collect();
    assert!(!invoices.is_empty());
    for e in invoices {
        let invoice = &e["data"]["object"];
        let lines = invoice["lines"].as_array().unwrap_or_else(|| panic!("no lines: {e}"));
        assert!(!lines.is_empty() && lines.iter().all(|l| l["kind"].is_string()), "{e}");
        let sum: i64 = lines.iter().map(|l| l["amount_units"].as_i64().unwrap()).sum();
        assert_eq!(sum, invoice["amount_total_units"].as_i64().unwrap(), "{e}");
    }
    let disabled = delivered.values().find(|e| e["type"] == "endpoint.disabled").unwrap();
    assert_eq!(disabled["data"]["object"]["id"], gone["id"]);
}

on_both_backends!(every_event_type_is_delivered_and_verifies);
