//! Selling end to end, on both backends: checkout and its sandbox
//! completion, subscriptions through a year of the test clock (renewals,
//! upgrade with exact proration, scheduled downgrade, failed renewals that
//! recover or cancel, trials, every cancellation type), charges, refunds,
//! money records, validation and concurrency.

use crate::common;

use common::api::Api;
use common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use serde_json::{json, Value};

/// A catalog to sell: `basic` ($10/month, $100/year), `pro` ($30/month plus
/// $5 per seat, 1–50 seats), `trial` ($20/month, 14-day trial), `lifetime`
/// ($99 once), `free`.
pub(crate) async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "Suite", "identifier": "suite", "taxCode": "saas"})).await;
    for (name, ty, details) in [
        ("SSO", "BOOLEAN", json!(null)),
        (
            "API Calls",
            "METER",
            json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "call", "plural": "calls"}}),
        ),
        (
            "Seats",
            "METER",
            json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "seat", "plural": "seats"}}),
        ),
    ] {
        api.ok("/api/v1/catalog/features/", json!({"name": name, "featureType": ty, "featureDetails": details})).await;
    }
    let plans = [
        (
            "basic",
            json!([{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}, {"chargePeriod": "YEARLY", "priceData": {"amount": 100}}]}]}]),
            json!([{"feature": "api-calls", "details": {"value": 1000, "reset": "EVERY_MONTH", "hardLimit": true}}]),
        ),
        (
            "pro",
            json!([{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 30}}]},
            {"feature": "seats", "priceModel": "FLAT", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 5},
                "advanced": {"minQuantity": 1, "maxQuantity": 50}}]}]}]),
            json!([{"feature": "sso", "details": {"value": true}}, {"feature": "api-calls", "details": {"value": 10000, "reset": "EVERY_MONTH", "hardLimit": true}}]),
        ),
        (
            "trial",
            json!([{"priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 14, "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]}]}]),
            json!([{"feature": "sso", "details": {"value": true}}]),
        ),
        (
            "lifetime",
            json!([{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "ONE_TIME", "priceData": {"amount": 99}}]}]}]),
            json!([{"feature": "sso", "details": {"value": true}}]),
        ),
        (
            "free",
            json!([{"priceType": "FREE", "currency": "USD"}]),
            json!([{"feature": "api-calls", "details": {"value": 100, "reset": "EVERY_MONTH", "hardLimit": true}}]),
        ),
    ];
    for (id, prices, features) in plans {
        api.ok("/api/v1/catalog/plans/", json!({"name": id.to_uppercase(), "identifier": id, "product": "suite"}))
            .await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/prices/bulk/"), json!({ "prices": prices })).await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/features/"), json!({ "planEntitlements": features })).await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
}

async fn checkout_completes_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let (status, session) = api
        .post(
            "/api/v1/checkout/",
            json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": "user-123",
                "successUrl": "https://app.example.com/welcome", "features": [{"identifier": "seats", "quantity": 3}],
                "metadata": {"campaignId": "spring", "nested": {"keepCase": 1}}, "lockEmail": true, "email": "ann@example.com",
                "defaultBillingCountry": "DE"}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["checkoutSessionId"].as_str().unwrap().to_string();
    assert!(id.starts_with("cs_") && id.len() == 48, "{id}");
    assert_eq!(session["checkoutUrl"], json!(format!("{}/checkout/{id}/", s.base_url)));

    let (_, detail) = api.get(&format!("/api/v1/checkout/sessions/{id}/")).await;
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["selectedData"]["amount"], "45.00", "30 + 3 seats × 5");
    assert_eq!((detail["order"].clone(), detail["subscription"].clone()), (Value::Null, Value::Null));

    // A declined card: a clear message, nothing bought.
    let (status, declined) =
        api.post(&format!("/api/v1/checkout/sessions/{id}/complete/"), json!({"card": "4000 0000 0000 0002"})).await;
    assert_eq!((status, declined.clone()), (400, json!({"card": ["Your card was declined."]})));
    assert!(api.orders("user-123").await.is_empty());
    // The locked email cannot change.
    let (status, locked) = api
        .post(
            &format!("/api/v1/checkout/sessions/{id}/complete/"),
            json!({"card": "4242424242424242", "email": "eve@example.com"}),
        )
        .await;
    assert_eq!((status, locked["email"].is_array()), (400, true), "{locked}");

    // Two payers race: one order.
    let path = format!("/api/v1/checkout/sessions/{id}/complete/");
    let (a, b) = tokio::join!(
        api.post(&path, json!({"card": "4242424242424242"})),
        api.post(&path, json!({"card": "4242424242424242"}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{a:?} {b:?}");
    let (done, loser) = if a.0 == 200 { (a.1, b.1) } else { (b.1, a.1) };
    assert_eq!(loser, json!({"detail": "This checkout session is already complete."}));
    assert_eq!(done["status"], "success");
    assert_eq!(done["order"]["amountTotal"], "45.00");
    assert_eq!(
        done["paymentMethod"],
        json!({"paymentMethodType": "card", "paymentMethodName": "visa", "last4": "4242"})
    );
    assert_eq!(api.orders("user-123").await.len(), 1);

    // The customer exists, with the locked email and the default country.
    let (_, customer) = api.get("/api/v1/customers/user-123/").await;
    assert_eq!(
        (customer["email"].clone(), customer["billingAddress"]["country"].clone()),
        (json!("ann@example.com"), json!("DE"))
    );

    let (_, list) = api.get("/api/v1/subscriptions/?customer_id=user-123").await;
    assert_eq!(list["count"], 1);
    let sub = &list["results"][0];
    assert_eq!(
        (sub["status"].clone(), sub["amount"].clone(), sub["currency"].clone(), sub["recurrence"].clone()),
        (json!("active"), json!("45.00"), json!("usd"), json!("1 month"))
    );
    assert_eq!(
        (sub["billingType"].clone(), sub["recurrenceUnit"].clone(), sub["recurrenceType"].clone()),
        (json!("SUBSCRIPTION"), json!(1), json!("MONTH"))
    );
    assert_eq!(
        (sub["startDate"].clone(), sub["billingPeriodEndTime"].clone()),
        (json!("2026-01-31"), json!("2026-02-28T10:00:00Z"))
    );
    assert_eq!(sub["plan"]["identifier"], "pro");
    assert_eq!(sub["product"], "Suite");
    let features: Vec<&str> =
        sub["features"].as_array().unwrap().iter().map(|f| f["identifier"].as_str().unwrap()).collect();
    assert_eq!(features, ["sso", "api-calls"]);

    // Every event of the completion, the metadata verbatim.
    let types = api.event_types().await;
    for t in [
        "customer.created",
        "payment_method.created",
        "order.created",
        "invoice.paid",
        "subscription.created",
        "checkout.completed",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    let events = s.store.list_events(&s.tenant, 0, 1000).await.unwrap();
    let completed = events.iter().find(|(_, e)| e.event_type == "checkout.completed").unwrap();
    assert_eq!(
        completed.1.payload["data"]["object"]["metadata"],
        json!({"campaignId": "spring", "nested": {"keepCase": 1}})
    );
    assert_eq!(completed.1.payload["data"]["object"]["amount"], "45.00");

    // Money records.
    let (_, tx) = api.get("/api/v1/transaction/").await;
    assert_eq!(tx["count"], 1);
    let t = &tx["results"][0];
    // 3.5 % of 45.00 = 1.575 → 1.58 (half up), + 0.30 fixed, + 0.5 % subscription fee 0.225 → 0.23.
    assert_eq!(
        (t["amountTotal"].clone(), t["morFee"].clone(), t["netPayout"].clone()),
        (json!(45.0), json!(2.11), json!(42.89))
    );
    assert_eq!(
        t["morFeeBreakdown"][0],
        json!({"name": "base_fee", "percentage": "3.5", "valueUnits": 158, "currency": "USD"})
    );
    let (_, pms) = api.get("/api/v1/payment-methods/?customer_id=user-123").await;
    assert_eq!(pms["count"], 1);
    assert_eq!(
        (pms["results"][0]["isDefault"].clone(), pms["results"][0]["methodData"]["last4"].clone()),
        (json!(true), json!("4242"))
    );
    let (_, events) = api.get(&format!("/api/v1/checkout/sessions/{id}/events/")).await;
    let codes: Vec<&str> = events["results"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["checkout_session.completed", "checkout_session.payment_failed", "checkout_session.created"]);

    // A second checkout adds a subscription; it never replaces the first.
    api.buy("trial", "MONTHLY", "user-123", "4242424242424242", json!({})).await;
    let (_, list) = api.get("/api/v1/subscriptions/?customer_id=user-123").await;
    assert_eq!(list["count"], 2);

    // Sessions expire after 24 hours.
    let late = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
        )
        .await;
    api.ok("/api/v1/test-clock/advance/", json!({"seconds": 24 * 3600})).await;
    let late_id = late["checkoutSessionId"].as_str().unwrap();
    let (status, e) =
        api.post(&format!("/api/v1/checkout/sessions/{late_id}/complete/"), json!({"card": "4242424242424242"})).await;
    assert_eq!((status, e), (400, json!({"detail": "This checkout session has expired."})));
    let (_, expired) = api.get("/api/v1/checkout/sessions/?status=expired").await;
    assert_eq!(expired["count"], 1);
}

async fn a_year_of_a_subscription(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let id = api.buy("basic", "MONTHLY", "ann", "4242424242424242", json!({})).await;

    // Renewal on the last day of February, then on 31 March again.
    let ran = api.advance_to("2026-02-28T10:00:00Z").await;
    assert_eq!(ran["ran"], 1);
    let sub = api.sub(&id).await;
    assert_eq!(
        (sub["billingPeriodStartTime"].clone(), sub["billingPeriodEndTime"].clone()),
        (json!("2026-02-28T10:00:00Z"), json!("2026-03-31T10:00:00Z"))
    );
    let orders = api.orders("ann").await;
    assert_eq!(orders.len(), 2);
    assert_eq!((orders[1]["isRenewal"].clone(), orders[1]["amountTotal"].clone()), (json!(true), json!("10.00")));

    // Upgrade mid-period: credit the unused basic, charge the rest of pro.
    api.advance_to("2026-03-14T10:00:00Z").await;
    let change = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"});
    let preview = api.ok(&format!("/api/v1/subscriptions/{id}/update/preview/"), change.clone()).await;
    // 17 of 31 days left: credit round(1000 × 17/31) = 548, charge round(3500 × 17/31) = 1919.
    assert_eq!(preview["amountChargedImmediatelyUnits"], 1371);
    assert_eq!(preview["recurringAmountUnits"], 3500);
    assert_eq!(preview["nextInvoice"]["nextPaymentAttempt"], "2026-03-31T10:00:00Z");
    assert_eq!(api.orders("ann").await.len(), 2, "a preview changes nothing");
    let updated = api.ok(&format!("/api/v1/subscriptions/{id}/update/"), change).await;
    assert_eq!(updated, json!({"subscriptionId": id}));
    let sub = api.sub(&id).await;
    assert_eq!((sub["plan"]["identifier"].clone(), sub["amount"].clone()), (json!("pro"), json!("35.00")));
    let orders = api.orders("ann").await;
    assert_eq!(orders.last().unwrap()["amountTotalUnits"], 1371);
    assert!(api.event_types().await.contains(&"subscription.plan_changed".to_string()));

    // Downgrade: waits for the period end.
    api.ok(
        &format!("/api/v1/subscriptions/{id}/update/"),
        json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY"}),
    )
    .await;
    let sub = api.sub(&id).await;
    assert_eq!(sub["plan"]["identifier"], "pro");
    assert_eq!(sub["scheduledChange"]["planIdentifier"], "basic");
    api.advance_to("2026-03-31T10:00:00Z").await;
    let sub = api.sub(&id).await;
    assert_eq!((sub["plan"]["identifier"].clone(), sub["amount"].clone()), (json!("basic"), json!("10.00")));
    assert_eq!(api.orders("ann").await.last().unwrap()["amountTotal"], "10.00");

    // Month by month to the end of the year: one renewal each.
    api.advance_to("2026-12-31T10:00:00Z").await;
    let orders = api.orders("ann").await;
    // 2 (Jan, Feb) + upgrade + Mar 31 + Apr..Dec (9) = 13.
    assert_eq!(orders.len(), 13);
    let ends: Vec<String> = orders.iter().filter_map(|o| o["paidAt"].as_str().map(str::to_string)).collect();
    assert!(
        ends.contains(&"2026-04-30T10:00:00Z".to_string()) && ends.contains(&"2026-09-30T10:00:00Z".to_string()),
        "{ends:?}"
    );

    // Cancel at the period end: access stays, then ends.
    api.ok(
        &format!("/api/v1/subscriptions/{id}/cancel/"),
        json!({"cancellationType": "CURRENT_PERIOD_ENDS", "cancellationFeedback": "TOO_EXPENSIVE"}),
    )
    .await;
    let sub = api.sub(&id).await;
    assert_eq!((sub["status"].clone(), sub["endDate"].clone()), (json!("active"), json!("2027-01-31")));
    assert_eq!(sub["cancellationReason"], "CANCELLED_BY_MERCHANT");
    api.advance_to("2027-02-01T00:00:00Z").await;
    let sub = api.sub(&id).await;
    assert_eq!(sub["status"], "canceled");
    assert_eq!(api.orders("ann").await.len(), 13, "nothing charged at a cancellation");
    let (_, live) = api.get("/api/v1/subscriptions/?customer_id=ann").await;
    assert_eq!(live["count"], 0, "the default list shows live subscriptions");
    let (_, all) = api.get("/api/v1/subscriptions/?customer_id=ann&status=canceled").await;
    assert_eq!(all["count"], 1);
}

async fn failed_renewals(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    // A card that pays once, then fails: the renewal fails, retries fail, the subscription ends.
    let lost = api.buy("basic", "MONTHLY", "bob", "4000000000000341", json!({})).await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let sub = api.sub(&lost).await;
    assert_eq!(sub["status"], "past_due");
    assert!(api.event_types().await.contains(&"invoice.payment_failed".to_string()));
    let failed = api.orders("bob").await.last().unwrap().clone();
    assert_eq!((failed["status"].clone(), failed["invoiceStatus"].clone()), (json!("FAILED"), json!("PAYMENT_FAILED")));
    // Still granted during the grace period; cancelled once the 14 days of retries fail.
    api.advance_to("2026-03-13T10:00:00Z").await;
    assert_eq!(api.sub(&lost).await["status"], "past_due");
    api.advance_to("2026-03-14T10:00:01Z").await;
    let sub = api.sub(&lost).await;
    assert_eq!(
        (sub["status"].clone(), sub["cancellationReason"].clone()),
        (json!("canceled"), json!("CANCELLED_BY_PROVIDER"))
    );

    // Another customer fails, then saves a working card: the next retry recovers.
    let kept = api.buy("basic", "MONTHLY", "cy", "4000000000000341", json!({})).await;
    let renewal_due = api.sub(&kept).await["billingPeriodEndTime"].as_str().unwrap().to_string();
    api.advance_to(&renewal_due).await;
    assert_eq!(api.sub(&kept).await["status"], "past_due");
    api.buy("lifetime", "ONE_TIME", "cy", "4242424242424242", json!({})).await;
    let (_, t) = api.get("/api/v1/test-clock/").await;
    let now = chrono::DateTime::parse_from_rfc3339(t["now"].as_str().unwrap()).unwrap();
    api.advance_to(&(now + chrono::Duration::days(3)).to_rfc3339()).await;
    let sub = api.sub(&kept).await;
    assert_eq!(sub["status"], "active");
    let orders = api.orders("cy").await;
    assert!(orders.iter().any(|o| o["isRenewal"] == true && o["status"] == "COMPLETE"), "{orders:?}");
}

async fn trials_and_cancellations(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let t = api.buy("trial", "MONTHLY", "dee", "4242424242424242", json!({})).await;
    let sub = api.sub(&t).await;
    assert_eq!((sub["status"].clone(), sub["trialDaysRemaining"].clone()), (json!("trialing"), json!(14)));
    let first = api.orders("dee").await;
    assert_eq!((first[0]["amountTotal"].clone(), first[0]["isTrial"].clone()), (json!("0.00"), json!(true)));
    api.advance_to("2026-02-14T10:00:00Z").await;
    let sub = api.sub(&t).await;
    assert_eq!(
        (sub["status"].clone(), sub["billingPeriodEndTime"].clone()),
        (json!("active"), json!("2026-03-14T10:00:00Z"))
    );
    assert_eq!(api.orders("dee").await.last().unwrap()["amountTotal"], "20.00");

    // Cancelled during the trial: never charged.
    let t2 = api.buy("trial", "MONTHLY", "eve", "4242424242424242", json!({"trialPeriod": 3})).await;
    assert_eq!(api.sub(&t2).await["trialDaysRemaining"], 3);
    api.ok(&format!("/api/v1/subscriptions/{t2}/cancel/"), json!({"cancellationType": "CURRENT_PERIOD_ENDS"})).await;
    api.advance_to("2026-02-20T00:00:00Z").await;
    assert_eq!(api.sub(&t2).await["status"], "canceled");
    assert_eq!(api.orders("eve").await.len(), 1, "only the trial's zero order");

    // trialEnd "now" ends a trial and bills at once.
    let t3 = api.buy("trial", "MONTHLY", "fay", "4242424242424242", json!({})).await;
    api.ok(
        &format!("/api/v1/subscriptions/{t3}/update/"),
        json!({"planIdentifier": "trial", "chargePeriod": "MONTHLY", "trialEnd": "now"}),
    )
    .await;
    let sub = api.sub(&t3).await;
    assert_eq!((sub["status"].clone(), sub["trialDaysRemaining"].clone()), (json!("active"), json!(0)));
    assert_eq!(api.orders("fay").await.last().unwrap()["amountTotal"], "20.00");

    // IMMEDIATE and SPECIFIC_DATE.
    let now_sub = api.buy("basic", "MONTHLY", "gus", "4242424242424242", json!({})).await;
    api.ok(&format!("/api/v1/subscriptions/{now_sub}/cancel/"), json!({"cancellationType": "IMMEDIATE"})).await;
    assert_eq!(api.sub(&now_sub).await["status"], "canceled");
    let dated = api.buy("basic", "MONTHLY", "hal", "4242424242424242", json!({})).await;
    let (status, e) =
        api.post(&format!("/api/v1/subscriptions/{dated}/cancel/"), json!({"cancellationType": "SPECIFIC_DATE"})).await;
    assert_eq!((status, e), (400, json!({"cancellationDate": ["This field is required for SPECIFIC_DATE."]})));
    api.ok(
        &format!("/api/v1/subscriptions/{dated}/cancel/"),
        json!({"cancellationType": "SPECIFIC_DATE", "cancellationDate": "2026-05-10"}),
    )
    .await;
    assert_eq!(api.sub(&dated).await["endDate"], "2026-05-10");
    api.advance_to("2026-05-10T00:00:00Z").await;
    let sub = api.sub(&dated).await;
    assert_eq!(sub["status"], "canceled");
    // Renewals ran until then (Feb 20 … May 10: Mar 20, Apr 20).
    assert_eq!(api.orders("hal").await.len(), 3);
    let (status, e) =
        api.post(&format!("/api/v1/subscriptions/{dated}/cancel/"), json!({"cancellationType": "IMMEDIATE"})).await;
    assert_eq!((status, e), (400, json!({"detail": "A canceled subscription cannot be cancelled."})));
}

async fn refunds_charges_and_saved_cards(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    // No saved card yet.
    api.ok("/api/v1/customers/", json!({"customerId": "ivy", "email": "ivy@example.com"})).await;
    let (status, e) = api
        .post(
            "/api/v1/charges/",
            json!({"planIdentifier": "lifetime", "chargePeriod": "ONE_TIME", "customerId": "ivy"}),
        )
        .await;
    assert_eq!((status, e), (400, json!({"detail": "A payment method is required to complete this payment."})));
    let (status, e) = api
        .post(
            "/api/v1/subscriptions/create/",
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "customerId": "nobody"}),
        )
        .await;
    assert_eq!((status, e), (400, json!({"detail": "Customer does not exist."})));

    let sub = api.buy("basic", "MONTHLY", "ivy", "4242424242424242", json!({})).await;
    let charge = api
        .ok("/api/v1/charges/", json!({"planIdentifier": "lifetime", "chargePeriod": "ONE_TIME", "customerId": "ivy"}))
        .await;
    assert_eq!(
        (charge["amount"].clone(), charge["billingType"].clone(), charge["recurrence"].clone()),
        (json!("99.00"), json!("ONE_TIME"), json!(""))
    );
    assert_eq!(charge["product"]["name"], "Suite");
    let (status, e) = api
        .post("/api/v1/charges/", json!({"planIdentifier": "lifetime", "chargePeriod": "MONTHLY", "customerId": "ivy"}))
        .await;
    assert_eq!((status, e["chargePeriod"].is_array()), (400, true));
    let created = api.ok("/api/v1/subscriptions/create/", json!({"plan_identifier": "pro", "charge_period": "MONTHLY", "customer_id": "ivy", "features": [{"identifier": "seats", "quantity": 2}]})).await;
    assert_eq!((created["status"].clone(), created["amount"].clone()), (json!("active"), json!("40.00")));

    // Refunds: partial, too much, the rest (which revokes the purchase).
    let first = api.orders("ivy").await[0].clone();
    let order_id = first["id"].as_str().unwrap();
    assert!(
        order_id.starts_with("ORD-2026013110") && first["invoiceId"].as_str().unwrap().starts_with("INV-"),
        "{first}"
    );
    let partial = api.ok("/api/v1/refunds/", json!({"orderId": order_id, "amountUnits": 400, "reason": "OTHER"})).await;
    assert_eq!(
        (partial["status"].clone(), partial["amountUnits"].clone(), partial["amount"].clone()),
        (json!("SUCCEEDED"), json!(400), json!(4.0))
    );
    assert_eq!(partial["order"]["status"], "PARTIAL_REFUND");
    assert_eq!(api.sub(&sub).await["status"], "active", "a partial refund keeps access");
    let (status, e) = api.post("/api/v1/refunds/", json!({"orderId": order_id, "amount": 6.01})).await;
    assert_eq!((status, e), (400, json!({"error": "Amount exceeds order total."})));
    let rest = api.ok("/api/v1/refunds/", json!({"orderId": order_id})).await;
    assert_eq!((rest["amountUnits"].clone(), rest["order"]["status"].clone()), (json!(600), json!("REFUNDED")));
    assert_eq!(api.sub(&sub).await["status"], "canceled", "a full refund revokes what it bought");
    let (_, refunds) = api.get("/api/v1/refunds/?status=SUCCEEDED").await;
    assert_eq!(refunds["count"], 2);
    let (status, one) = api.get(&format!("/api/v1/refunds/{}/", rest["id"].as_str().unwrap())).await;
    assert_eq!((status, one["id"].clone()), (200, rest["id"].clone()));
    let (_, tx) = api.get("/api/v1/transaction/").await;
    let kinds: Vec<&str> =
        tx["results"].as_array().unwrap().iter().map(|t| t["transactionType"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "REFUND").count(), 2);
    let types = api.event_types().await;
    assert!(types.contains(&"refund.created".to_string()) && types.contains(&"order.refunded".to_string()));
    let (_, events) = api.get(&format!("/api/v1/orders/{order_id}/events/")).await;
    assert!(events["results"].as_array().unwrap().iter().any(|e| e["code"] == "order.refunded"));
    let (_, renewals) = api.get("/api/v1/orders/?is_renewal=false&billing_type=ONE_TIME").await;
    assert_eq!(renewals["count"], 1);
}

async fn selling_validation_and_scope(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let (status, e) = api.post("/api/v1/checkout/", json!({})).await;
    assert_eq!(status, 400);
    for field in ["planIdentifier", "chargePeriod", "successUrl"] {
        assert!(e[field].is_array(), "{field} not named in {e}");
    }
    let cases = [
        (
            json!({"planIdentifier": "nope", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
            "planIdentifier",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "WEEKLY", "successUrl": "https://x.example/"}),
            "chargePeriod",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "FORTNIGHTLY", "successUrl": "https://x.example/"}),
            "chargePeriod",
        ),
        (json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "not a url"}), "successUrl"),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "trialPeriod": 0}),
            "trialPeriod",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "customAmount": 5}),
            "currencyCode",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "taxBehavior": "SOMETIMES"}),
            "taxBehavior",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "defaultBillingCountry": "Germany"}),
            "defaultBillingCountry",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "discountCode": "SAVE10"}),
            "discountCode",
        ),
        (
            json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "features": [{"identifier": "seats", "quantity": 51}]}),
            "features",
        ),
        (
            json!({"planIdentifier": "lifetime", "chargePeriod": "ONE_TIME", "successUrl": "https://x.example/", "trialPeriod": 7}),
            "trialPeriod",
        ),
        (
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "currencyCode": "EUR"}),
            "currencyCode",
        ),
    ];
    for (body, field) in cases {
        let (status, e) = api.post("/api/v1/checkout/", body.clone()).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert!(e[field].is_array(), "{body}: expected {field} in {e}");
    }
    let (status, _) = api.get("/api/v1/subscriptions/00000000-0000-0000-0000-000000000000/").await;
    assert_eq!(status, 404);
    let (status, e) = api.post("/api/v1/subscriptions/nope/cancel/", json!({"cancellationType": "IMMEDIATE"})).await;
    assert_eq!((status, e), (404, json!({"detail": "Subscription not found."})));
    let (status, _) = api.post("/api/v1/test-clock/advance/", json!({"seconds": -1})).await;
    assert_eq!(status, 400);

    // Free plans go through checkout without a card; update refuses them.
    let free = api.buy("free", "ONE_TIME", "kim", "", json!({})).await;
    let (status, e) = api
        .post(
            &format!("/api/v1/subscriptions/{free}/update/"),
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY"}),
        )
        .await;
    assert_eq!(status, 400, "{e}");

    // Client keys cannot sell; production cannot take sandbox payments; tenants do not see each other.
    let client = Api { s: &s, key: s.client_key.clone() };
    let (status, _) = client.post("/api/v1/checkout/", json!({"planIdentifier": "basic"})).await;
    assert_eq!(status, 403);
    let sub = api.buy("basic", "MONTHLY", "lee", "4242424242424242", json!({})).await;
    let live = Api { s: &s, key: s.key_for(KeyKind::Server, Environment::Production).await };
    let (status, _) = live.get(&format!("/api/v1/subscriptions/{sub}/")).await;
    assert_eq!(status, 404, "production does not see sandbox subscriptions");
    let (status, e) = live.post("/api/v1/test-clock/advance/", json!({"seconds": 10})).await;
    assert_eq!((status, e), (400, json!({"detail": "The test clock only exists in the sandbox environment."})));
    let (status, e) = live.post("/api/v1/checkout/sessions/cs_x/complete/", json!({"card": "4242424242424242"})).await;
    assert_eq!(status, 400, "{e}");
    let (other, other_key) = s.other_tenant("other", Environment::Sandbox).await;
    let _ = other;
    let stranger = Api { s: &s, key: other_key };
    let (_, list) = stranger.get("/api/v1/orders/").await;
    assert_eq!(list["count"], 0);
    let (status, _) = stranger.get(&format!("/api/v1/subscriptions/{sub}/")).await;
    assert_eq!(status, 404);
}

async fn hosted_page_over_http(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let session = api
        .ok("/api/v1/checkout/", json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://app.example.com/done?x=1",
            "email": "pat@example.com", "lockEmail": true, "discountsEnabled": false, "defaultBillingCountry": "FR"}))
        .await;
    let url = session["checkoutUrl"].as_str().unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("BASIC") && html.contains("$10.00") && html.contains("per month"), "{html}");
    assert!(html.contains("value=\"pat@example.com\" readonly"), "email locked");
    assert!(html.contains("value=\"FR\""), "country pre-filled");
    assert!(!html.contains("discount_code"), "no discount field when disabled");
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://cdn"),
        "no scripts, no external assets"
    );
    let form = [
        ("email", "pat@example.com"),
        ("name", "Pat"),
        ("country", "FR"),
        ("card_number", "4000 0000 0000 0002"),
        ("expiry", "12/30"),
        ("cvc", "123"),
    ];
    let declined = client.post(url).form(&form).send().await.unwrap();
    assert_eq!(declined.status(), 400);
    assert!(declined.text().await.unwrap().contains("Your card was declined."));
    let mut form = form;
    form[3].1 = "4242 4242 4242 4242";
    let paid = client.post(url).form(&form).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()["location"], "https://app.example.com/done?x=1");
    let again = client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(again.contains("Payment complete"));
    let missing = client.get(format!("{}/checkout/cs_nope/", s.base_url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

async fn the_scheduler_runs_due_work_after_a_restart(backend: Backend) {
    let mut s = TestServer::start_with(backend, |c| c.scheduler_interval_ms = 20).await;
    let api = Api::new(&s);
    seed(&api).await;
    let id = api.buy("basic", "MONTHLY", "max", "4242424242424242", json!({})).await;
    drop(api);
    // The process stops; time passes beyond the renewal; a new process starts.
    s.restart().await;
    s.clock.set(chrono::DateTime::parse_from_rfc3339("2026-02-28T10:00:05Z").unwrap().with_timezone(&chrono::Utc));
    let api = Api::new(&s);
    let mut renewed = false;
    for _ in 0..200 {
        if api.sub(&id).await["billingPeriodEndTime"] == "2026-03-31T10:00:00Z" {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(renewed, "the background scheduler renewed the subscription from the database");
    assert_eq!(api.orders("max").await.len(), 2);
    // Another pass of the scheduler finds nothing more due.
    assert_eq!(kelviq_server::selling::scheduler::run_once(&s.state).await.unwrap(), 0);
    assert_eq!(api.orders("max").await.len(), 2, "renewed once");
}

async fn publishing_moves_subscribers_when_asked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let moved = api.buy("basic", "MONTHLY", "nia", "4242424242424242", json!({})).await;
    let limit = |api_ent: Value| api_ent["entitlements"][0]["usageLimit"].clone();
    let ents = || async { api.get("/api/v1/entitlements/?customer_id=nia").await.1 };
    assert_eq!(limit(ents().await), 1000);

    // v2: more calls, a new price; published without moving anyone.
    let v2_price = json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 12}}]}]}]});
    let (status, _) = api
        .send(
            reqwest::Method::PATCH,
            "/api/v1/catalog/plans/basic/features/api-calls/",
            Some(json!({"details": {"value": 2000, "reset": "EVERY_MONTH", "hardLimit": true}})),
        )
        .await;
    assert_eq!(status, 200);
    api.ok("/api/v1/catalog/plans/basic/prices/bulk/", v2_price).await;
    let published = api.ok("/api/v1/catalog/plans/basic/publish/", json!({})).await;
    assert_eq!((published["version"].clone(), published["migratedSubscriptions"].clone()), (json!(2), json!(0)));
    assert_eq!(limit(ents().await), 1000, "not moved: still version 1");
    assert_eq!(api.sub(&moved).await["amount"], "10.00");

    // v3 with features moved: the new limit applies at once, the price stays.
    let (status, _) = api
        .send(
            reqwest::Method::PATCH,
            "/api/v1/catalog/plans/basic/features/api-calls/",
            Some(json!({"details": {"value": 3000, "reset": "EVERY_MONTH", "hardLimit": true}})),
        )
        .await;
    assert_eq!(status, 200);
    let published = api.ok("/api/v1/catalog/plans/basic/publish/", json!({"updateFeatures": true})).await;
    assert_eq!((published["version"].clone(), published["migratedSubscriptions"].clone()), (json!(3), json!(1)));
    assert_eq!(limit(ents().await), 3000);
    let sub = api.sub(&moved).await;
    assert_eq!((sub["plan"]["version"].clone(), sub["amount"].clone()), (json!(3), json!("10.00")));

    // v4 with pricing moved: the next renewal charges the new price.
    api.ok(
        "/api/v1/catalog/plans/basic/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 15}}]}]}]}),
    )
    .await;
    let published = api.ok("/api/v1/catalog/plans/basic/publish/", json!({"update_pricing": true})).await;
    assert_eq!(published["migratedSubscriptions"], 1);
    let sub = api.sub(&moved).await;
    assert_eq!((sub["plan"]["version"].clone(), sub["amount"].clone()), (json!(3), json!("15.00")));
    api.advance_to("2026-02-28T10:00:00Z").await;
    assert_eq!(api.orders("nia").await.last().unwrap()["amountTotal"], "15.00");
    assert!(api.event_types().await.contains(&"subscription.updated".to_string()));
}

on_both_backends!(
    publishing_moves_subscribers_when_asked,
    the_scheduler_runs_due_work_after_a_restart,
    checkout_completes_once,
    a_year_of_a_subscription,
    failed_renewals,
    trials_and_cancellations,
    refunds_charges_and_saved_cards,
    selling_validation_and_scope,
    hosted_page_over_http,
);
