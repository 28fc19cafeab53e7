//! The Rust SDK's selling modules against the real server, on both backends:
//! checkout, subscriptions (with activate_on_payment), charges, refunds,
//! transactions and payment methods, async and blocking.

use crate::common;

use common::{http, Backend, TestServer};
use kelviq_sdk::selling::{
    CancellationType, ChargePeriod, CreateCharge, CreateCheckoutSession, CreateRefund, CreateSubscription,
    FeatureQuantity, ListMoney, ListSubscriptions, ProrationBehavior, UpdateSubscription,
};
use kelviq_sdk::ErrorKind;
use serde_json::{json, Value};

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    s.post_ok(path, body).await
}

async fn seed(s: &TestServer) {
    post(s, "/api/v1/catalog/products/", json!({"name": "Suite", "identifier": "suite", "taxCode": "saas"})).await;
    post(s, "/api/v1/catalog/features/", json!({"name": "Seats", "featureType": "METER",
        "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "seat", "plural": "seats"}}})).await;
    for (id, amount, seat) in [("team", 20, 4), ("business", 50, 8)] {
        post(s, "/api/v1/catalog/plans/", json!({"name": id, "identifier": id, "product": "suite"})).await;
        post(s, &format!("/api/v1/catalog/plans/{id}/prices/bulk/"), json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [
                {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": amount}}, {"chargePeriod": "YEARLY", "priceData": {"amount": amount * 10}}]},
                {"feature": "seats", "priceModel": "FLAT", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": seat}}, {"chargePeriod": "YEARLY", "priceData": {"amount": seat * 10}}]}]}]})).await;
        post(s, &format!("/api/v1/catalog/plans/{id}/features/"), json!({"planEntitlements": [{"feature": "seats", "details": {"value": 1, "reset": "NEVER", "hardLimit": true}}]})).await;
        post(s, &format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
    post(s, "/api/v1/catalog/plans/", json!({"name": "Setup", "identifier": "setup", "product": "suite"})).await;
    post(
        s,
        "/api/v1/catalog/plans/setup/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD",
        "chargeCatalogPrice": [{"charges": [{"chargePeriod": "ONE_TIME", "priceData": {"amount": 150}}]}]}]}),
    )
    .await;
    post(s, "/api/v1/catalog/plans/setup/publish/", json!({})).await;
}

async fn sdk_sells(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed(&s).await;
    let sdk = s.sdk();

    let mut meta = serde_json::Map::new();
    meta.insert("utm".into(), json!({"Source": "rust"}));
    let session = sdk
        .checkout()
        .create_session(
            CreateCheckoutSession::new("team", ChargePeriod::Monthly, "https://app.example.com/ok")
                .customer_id("acme")
                .features(vec![FeatureQuantity::new("seats", 5)])
                .metadata(meta),
        )
        .await
        .unwrap();
    assert!(session.checkout_url.ends_with(&format!("/checkout/{}/", session.checkout_session_id)));
    let bad = sdk
        .checkout()
        .create_session(CreateCheckoutSession::new("team", ChargePeriod::Monthly, "https://x.example/").trial_period(0))
        .await;
    assert_eq!(bad.unwrap_err().status(), None, "refused before sending");
    post(
        &s,
        &format!("/api/v1/checkout/sessions/{}/complete/", session.checkout_session_id),
        json!({"card": "4242424242424242", "email": "ops@acme.example"}),
    )
    .await;

    let subs = sdk
        .subscriptions()
        .list(ListSubscriptions { customer_id: Some("acme".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(subs.count, 1);
    let sub = &subs.results[0];
    assert_eq!(
        (sub.amount.as_deref(), sub.billing_type.as_str(), sub.status.as_deref()),
        (Some("40.00"), "SUBSCRIPTION", Some("active"))
    );

    // Seats are the meter's limit.
    let ents =
        http().get(s.url("/api/v1/entitlements/?customer_id=acme")).bearer_auth(&s.client_key).send().await.unwrap();
    let ents: Value = ents.json().await.unwrap();
    assert_eq!(ents["entitlements"][0]["usageLimit"], 5);

    // More seats now, prorated (nothing has elapsed: the whole difference).
    let mut more = UpdateSubscription::new("team", ChargePeriod::Monthly);
    more.features = Some(vec![FeatureQuantity::new("seats", 8)]);
    let preview = sdk.subscriptions().preview_update(&sub.id, more.clone()).await.unwrap();
    assert_eq!((preview.amount_charged_immediately_units, preview.recurring_amount_units), (Some(1200), Some(5200)));
    sdk.subscriptions().update(&sub.id, more).await.unwrap();
    let ents: Value = http()
        .get(s.url("/api/v1/entitlements/?customer_id=acme"))
        .bearer_auth(&s.client_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ents["entitlements"][0]["usageLimit"], 8);

    // Monthly → yearly restarts the cycle and bills the year now, less the unused month.
    let mut yearly = UpdateSubscription::new("team", ChargePeriod::Yearly);
    yearly.proration_behavior = Some(ProrationBehavior::ImmediateCharge);
    let p = sdk.subscriptions().preview_update(&sub.id, yearly.clone()).await.unwrap();
    assert_eq!(p.amount_charged_immediately_units, Some(20 * 10 * 100 + 8 * 4 * 10 * 100 - 5200));
    // A client-side trialEnd check.
    let mut past = yearly.clone();
    past.trial_end = Some("2001-01-01 00:00:00".into());
    assert_eq!(sdk.subscriptions().update(&sub.id, past).await.unwrap_err().status(), None);

    // activate_on_payment: a new record that replaces the old one only when paid.
    let mut business = UpdateSubscription::new("business", ChargePeriod::Monthly);
    business.payment_behavior = Some("activate_on_payment".into());
    let next = sdk.subscriptions().update(&sub.id, business).await.unwrap();
    assert_ne!(next.subscription_id, sub.id);
    let old = sdk.subscriptions().retrieve(&sub.id).await.unwrap();
    let new = sdk.subscriptions().retrieve(&next.subscription_id).await.unwrap();
    assert_eq!((old.status.as_deref(), new.status.as_deref()), (Some("superseded"), Some("active")));
    assert_eq!(new.plan.as_ref().unwrap().identifier.as_deref(), Some("business"));

    // A card that fails after its first charge: the new record expires, the old stays.
    let session = sdk
        .checkout()
        .create_session(
            CreateCheckoutSession::new("team", ChargePeriod::Monthly, "https://x.example/").customer_id("flaky"),
        )
        .await
        .unwrap();
    post(
        &s,
        &format!("/api/v1/checkout/sessions/{}/complete/", session.checkout_session_id),
        json!({"card": "4000000000000341"}),
    )
    .await;
    let flaky = sdk
        .subscriptions()
        .list(ListSubscriptions { customer_id: Some("flaky".into()), ..Default::default() })
        .await
        .unwrap()
        .results[0]
        .id
        .clone();
    let mut up = UpdateSubscription::new("business", ChargePeriod::Monthly);
    up.payment_behavior = Some("activate_on_payment".into());
    let attempt = sdk.subscriptions().update(&flaky, up).await.unwrap();
    let failed = sdk.subscriptions().retrieve(&attempt.subscription_id).await.unwrap();
    assert_eq!(failed.status.as_deref(), Some("incomplete_expired"));
    let kept = sdk.subscriptions().retrieve(&flaky).await.unwrap();
    assert_eq!((kept.status.as_deref(), kept.plan.unwrap().identifier.as_deref()), (Some("active"), Some("team")));

    // A one-time charge, refunds, transactions, payment methods.
    let charge = sdk
        .charges()
        .create(CreateCharge { plan_identifier: "setup".into(), customer_id: "acme".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((charge.amount.as_deref(), charge.billing_type.as_str()), (Some("150.00"), "ONE_TIME"));
    let orders: Value = http()
        .get(s.url("/api/v1/orders/?billing_type=ONE_TIME"))
        .bearer_auth(&s.server_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = orders["results"][0]["id"].as_str().unwrap().to_string();
    let refund = sdk
        .refunds()
        .create(CreateRefund { order_id: order_id.clone(), amount: Some(50.0), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(refund.amount_units, 5000);
    let too_much = sdk
        .refunds()
        .create(CreateRefund { order_id: order_id.clone(), amount_units: Some(10_001), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(
        (too_much.kind(), too_much.details()),
        (ErrorKind::InvalidRequest, Some(&json!({"error": "Amount exceeds order total."})))
    );
    assert_eq!(
        sdk.refunds()
            .create(CreateRefund { order_id: String::new(), ..Default::default() })
            .await
            .unwrap_err()
            .status(),
        None
    );
    assert_eq!(sdk.refunds().retrieve(&refund.id).await.unwrap().id, refund.id);
    let txs =
        sdk.transactions().list(ListMoney { search: Some(order_id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(txs.count, 2);
    let pms = sdk.payment_methods().list(Some("acme"), None, None, None).await.unwrap();
    assert_eq!((pms.count, pms.results[0].is_default), (1, true));
    let by_email = sdk.payment_methods().list(None, Some("ops@acme.example"), None, None).await.unwrap();
    assert_eq!(by_email.count, 1);

    // The blocking client does the same.
    let blocking =
        kelviq_sdk::Kelviq::builder().access_token(&s.server_key).base_url(&s.base_url).build_blocking().unwrap();
    let new_id = next.subscription_id.clone();
    let message = tokio::task::spawn_blocking(move || {
        let sub = blocking.subscriptions().retrieve(&new_id).unwrap();
        assert_eq!(sub.status.as_deref(), Some("active"));
        blocking.subscriptions().cancel(&new_id, CancellationType::SpecificDate, None).unwrap_err();
        blocking.subscriptions().cancel(&new_id, CancellationType::Immediate, None).unwrap().message
    })
    .await
    .unwrap();
    assert_eq!(message, "Subscription cancellation processed successfully.");
    let created = sdk
        .subscriptions()
        .create(CreateSubscription {
            plan_identifier: "team".into(),
            charge_period: ChargePeriod::Yearly,
            customer_id: "acme".into(),
            success_url: None,
            features: Some(vec![FeatureQuantity::new("seats", 2)]),
            ip_address: None,
        })
        .await
        .unwrap();
    assert_eq!((created.amount.as_deref(), created.recurrence.as_deref()), (Some("280.00"), Some("1 year")));
}

on_both_backends!(sdk_sells);
