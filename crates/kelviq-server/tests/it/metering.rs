//! Usage metering end to end, on both backends: SET/DELTA reports, raw
//! events through every aggregation and filter, duplicates, resets and
//! rollover under the test clock, several subscriptions granting one
//! feature, overrides, usage alerts, and the atomic consume under
//! concurrency.

use crate::common;

use common::api::Api;
use common::{Backend, TestServer};
use serde_json::{json, Value};

fn meter(function: &str, field: Option<&str>, filters: Value) -> Value {
    json!({"aggregation": {"function": function, "field": field}, "filters": filters})
}

/// Features: `calls` (reported), `seats` (soft limit), raw-event meters
/// `tokens` (SUM of llm.call tokens for models a/b), `requests` (COUNT),
/// `peak` (MAX), `users` (UNIQUE_COUNT), `storage` (LATEST). Plans: `base`
/// and `addon` both grant `calls`.
async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    let units = json!({"singular": "unit", "plural": "units"});
    for (name, details, meter) in [
        ("Calls", json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}), Value::Null),
        ("Seats", json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}), Value::Null),
        (
            "Tokens",
            json!({"featureSubType": "RAW_EVENTS", "units": units}),
            meter(
                "SUM",
                Some("tokens"),
                json!([[{"property": "event_name", "operator": "equals", "value": "llm.call"},
                {"property": "model", "operator": "in", "value": ["a", "b"]}]]),
            ),
        ),
        ("Requests", json!({"featureSubType": "RAW_EVENTS", "units": units}), meter("COUNT", None, json!([]))),
        (
            "Peak",
            json!({"featureSubType": "RAW_EVENTS", "units": units}),
            meter(
                "MAX",
                Some("concurrency"),
                json!([[{"property": "concurrency", "operator": "exists", "value": true}]]),
            ),
        ),
        (
            "Users",
            json!({"featureSubType": "RAW_EVENTS", "units": units}),
            meter(
                "UNIQUE_COUNT",
                Some("user"),
                json!([[{"property": "event_name", "operator": "equals", "value": "login"}]]),
            ),
        ),
        (
            "Storage",
            json!({"featureSubType": "RAW_EVENTS", "units": units}),
            meter(
                "LATEST",
                Some("gb"),
                json!([[{"property": "event_name", "operator": "equals", "value": "storage"}]]),
            ),
        ),
    ] {
        let mut body = json!({"name": name, "featureType": "METER", "featureDetails": details});
        if !meter.is_null() {
            body["meter"] = meter;
        }
        api.ok("/api/v1/catalog/features/", body).await;
    }
    api.ok("/api/v1/catalog/features/", json!({"name": "SSO", "featureType": "BOOLEAN"})).await;
    let month =
        |v: i64| json!({"value": v, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": true});
    let plans = [
        (
            "base",
            json!([
            {"feature": "calls", "details": {"value": 10000, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": true,
                "rollover": {"enabled": true, "percentage": 50, "limit": 750},
                "usageAlerts": {"enabled": true, "thresholdType": "PERCENTAGE", "thresholds": [50, 100]}}},
            {"feature": "seats", "details": {"value": 5, "reset": "NEVER", "hardLimit": false}},
            {"feature": "tokens", "details": month(1_000_000)},
            {"feature": "requests", "details": month(100)},
            {"feature": "peak", "details": month(100)},
            {"feature": "users", "details": month(100)},
            {"feature": "storage", "details": month(100)},
            {"feature": "sso", "details": {"value": true}}]),
        ),
        ("addon", json!([{"feature": "calls", "details": {"value": 500, "reset": "NEVER", "hardLimit": true}}])),
        ("tiny", json!([{"feature": "calls", "details": {"value": 50, "reset": "NEVER", "hardLimit": true}}])),
    ];
    for (id, features) in plans {
        api.ok("/api/v1/catalog/plans/", json!({"name": id, "identifier": id, "product": "app"})).await;
        api.ok(
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 5}}]}]}]}),
        )
        .await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/features/"), json!({ "planEntitlements": features })).await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
}

async fn usage_reports(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    api.subscribe("base", "ann").await;

    let r = api.usage("ann", "calls", 300, "delta").await;
    assert_eq!(
        (r["value"].clone(), r["behaviour"].clone(), r["eventName"].clone()),
        (json!(300), json!("DELTA"), json!("aggregated.usage"))
    );
    assert_eq!(r["orgId"], json!(s.tenant.org_seq.to_string()), "orgId is a string");
    assert_eq!(r["idempotencyKey"].as_str().unwrap().len(), 32);
    assert!(kelviq_core::timefmt::parse_report_timestamp(r["timestamp"].as_str().unwrap()).is_some());
    api.usage("ann", "calls", 200, "DELTA").await;
    let row = &api.rows("ann", "calls").await[0];
    assert_eq!(
        (row["currentUsage"].clone(), row["remaining"].clone(), row["usageLimit"].clone()),
        (json!(500), json!(9500), json!(10000))
    );
    assert_eq!(row["resetAt"], "2026-02-28 10:00:00");
    api.usage("ann", "calls", 10000, "SET").await;
    let row = &api.rows("ann", "calls").await[0];
    assert_eq!(
        (row["hasAccess"].clone(), row["remaining"].clone()),
        (json!(false), json!(0)),
        "a hard limit at zero blocks"
    );
    // Soft limit: access with overage.
    api.usage("ann", "seats", 7, "SET").await;
    let row = &api.rows("ann", "seats").await[0];
    assert_eq!(
        (row["hasAccess"].clone(), row["remaining"].clone(), row["hardLimit"].clone()),
        (json!(true), json!(-2), json!(false))
    );

    // Alerts at 50 % and 100 %, once each this period.
    let alerts = |events: Vec<(i64, kelviq_core::events::OutboxEvent)>| -> Vec<i64> {
        events
            .into_iter()
            .filter(|(_, e)| e.event_type == "feature.usage_alert")
            .map(|(_, e)| e.payload["data"]["object"]["threshold_value"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(alerts(s.store.list_events(&s.tenant, 0, 10_000).await.unwrap()), [50, 100]);
    api.usage("ann", "calls", 0, "SET").await;
    api.usage("ann", "calls", 9000, "SET").await;
    assert_eq!(
        alerts(s.store.list_events(&s.tenant, 0, 10_000).await.unwrap()),
        [50, 100],
        "not again in the same period"
    );

    // Validation.
    for (body, field) in [
        (json!({"customerId": "nobody", "featureId": "calls", "value": 1, "behaviour": "SET"}), "customerId"),
        (json!({"customerId": "ann", "featureId": "nope", "value": 1, "behaviour": "SET"}), "featureId"),
        (json!({"customerId": "ann", "featureId": "sso", "value": 1, "behaviour": "SET"}), "featureId"),
        (json!({"customerId": "ann", "featureId": "calls", "value": -1, "behaviour": "SET"}), "value"),
        (json!({"customerId": "ann", "featureId": "calls", "value": 1.5, "behaviour": "SET"}), "value"),
        (json!({"customerId": "ann", "featureId": "calls", "value": 1, "behaviour": "ADD"}), "behaviour"),
        (json!({"featureId": "calls", "value": 1, "behaviour": "SET"}), "customerId"),
    ] {
        let (status, e) = api.post("/api/v1/report/usage/", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(e[field].is_array(), "{body}: {field} in {e}");
    }

    // Resets and rollover: 9000 of 10000 used, 50 % of the 1000 unused is 500 (cap 750).
    api.ok("/api/v1/test-clock/advance/", json!({"to": "2026-02-28T10:00:00Z"})).await;
    let row = &api.rows("ann", "calls").await[0];
    assert_eq!(
        (row["currentUsage"].clone(), row["usageLimit"].clone(), row["resetAt"].clone()),
        (json!(0), json!(10500), json!("2026-03-31 10:00:00"))
    );
    // The cap: 10500 limit, nothing used → 50 % of 10000 is 5000, capped at 750.
    api.ok("/api/v1/test-clock/advance/", json!({"to": "2026-03-31T10:00:00Z"})).await;
    assert_eq!(api.rows("ann", "calls").await[0]["usageLimit"], 10750);
    // Seats never reset.
    assert_eq!(api.rows("ann", "seats").await[0]["currentUsage"], 7);
    // Alerts start again in a new period.
    api.usage("ann", "calls", 6000, "SET").await;
    assert_eq!(alerts(s.store.list_events(&s.tenant, 0, 10_000).await.unwrap()), [50, 100, 50]);

    // A second subscription granting the same feature: two rows, usage shown across them in order.
    api.subscribe("addon", "ann").await;
    let rows = api.rows("ann", "calls").await;
    assert_eq!(rows.len(), 2);
    api.usage("ann", "calls", 10900, "SET").await;
    let rows = api.rows("ann", "calls").await;
    assert_eq!((rows[0]["currentUsage"].clone(), rows[0]["remaining"].clone()), (json!(10750), json!(0)));
    assert_eq!(
        (rows[1]["currentUsage"].clone(), rows[1]["remaining"].clone(), rows[1]["hasAccess"].clone()),
        (json!(150), json!(350), json!(true))
    );

    // Overrides: a customer's own limit, marked; reverted; a reset.
    let (status, v) = api
        .send(reqwest::Method::PUT, "/api/v1/customers/ann/entitlements/seats/override/", Some(json!({"value": 20})))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["entitlements"][0]["usageLimit"].clone(), v["entitlements"][0]["isOverridden"].clone()),
        (json!(20), json!(true))
    );
    assert_eq!(api.rows("ann", "seats").await[0]["remaining"], 13);
    let (status, _) =
        api.send(reqwest::Method::DELETE, "/api/v1/customers/ann/entitlements/seats/override/", None).await;
    assert_eq!(status, 204);
    assert_eq!(api.rows("ann", "seats").await[0]["usageLimit"], 5);
    let (status, _) =
        api.send(reqwest::Method::DELETE, "/api/v1/customers/ann/entitlements/seats/override/", None).await;
    assert_eq!(status, 404);
    let (status, v) = api.post("/api/v1/customers/ann/entitlements/seats/reset/", json!({})).await;
    assert_eq!((status, v["entitlements"][0]["currentUsage"].clone()), (200, json!(0)));
    // An override grants a feature no plan gives.
    api.ok("/api/v1/customers/", json!({"customerId": "bob"})).await;
    let (status, v) = api
        .send(reqwest::Method::PUT, "/api/v1/customers/bob/entitlements/sso/override/", Some(json!({"value": true})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["entitlements"],
        json!([{"featureId": "sso", "featureType": "BOOLEAN", "hasAccess": true, "isOverridden": true}])
    );
    let (status, e) = api
        .send(reqwest::Method::PUT, "/api/v1/customers/bob/entitlements/sso/override/", Some(json!({"value": 3})))
        .await;
    assert_eq!((status, e["value"].is_array()), (400, true));
}

async fn raw_events(backend: Backend) {
    // Event counts folded into the counter rows at almost every commit.
    let s = TestServer::start_with(backend, |c| c.usage_fold_interval_ms = 1).await;
    let api = Api::new(&s);
    seed(&api).await;
    api.subscribe("base", "cat").await;
    let at = "2026-01-31 11:00:00.000001";
    let (status, first) =
        api.event("cat", "k1", "llm.call", at, json!({"model": "a", "tokens": 120, "concurrency": 3})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["orgId"].clone(), first["idempotencyKey"].clone(), first["timestamp"].clone()),
        (json!(s.tenant.org_seq.to_string()), json!("k1"), json!(at))
    );
    // The same key again: the first answer, nothing counted.
    let (_, again) =
        api.event("cat", "k1", "llm.call", at, json!({"model": "a", "tokens": 120, "concurrency": 3})).await;
    assert_eq!(again, first);
    // The same key for another event: refused, nothing counted.
    let (status, e) = api.event("cat", "k1", "llm.call", at, json!({"model": "a", "tokens": 999999})).await;
    assert_eq!((status, e["idempotencyKey"].is_array()), (409, true), "{e}");
    api.event("cat", "k2", "llm.call", at, json!({"model": "b", "tokens": 80, "concurrency": 7})).await;
    api.event("cat", "k3", "llm.call", at, json!({"model": "c", "tokens": 500, "concurrency": 5})).await; // filtered out of tokens
    api.event("cat", "k4", "login", at, json!({"user": "u1"})).await;
    api.event("cat", "k5", "login", at, json!({"user": "u2"})).await;
    api.event("cat", "k6", "login", at, json!({"user": "u1"})).await;
    api.event("cat", "k7", "storage", "2026-01-31 12:00:00.000000", json!({"gb": 40})).await;
    api.event("cat", "k8", "storage", "2026-01-31 11:30:00.000000", json!({"gb": 10})).await; // older: LATEST keeps 40
    let usage = |rows: Vec<Value>| rows[0]["currentUsage"].clone();
    assert_eq!(usage(api.rows("cat", "tokens").await), 200, "SUM over models a and b");
    assert_eq!(usage(api.rows("cat", "requests").await), 8, "COUNT of every distinct event");
    assert_eq!(usage(api.rows("cat", "peak").await), 7, "MAX");
    assert_eq!(usage(api.rows("cat", "users").await), 2, "UNIQUE_COUNT");
    assert_eq!(usage(api.rows("cat", "storage").await), 40, "LATEST by event time");
    assert_eq!(s.store.count_events(&s.tenant, Some("cat")).await.unwrap(), 8);

    // An event older than the current period is stored, not counted.
    api.ok("/api/v1/test-clock/advance/", json!({"to": "2026-03-01T00:00:00Z"})).await;
    api.event("cat", "k9", "llm.call", at, json!({"model": "a", "tokens": 5})).await;
    assert_eq!(usage(api.rows("cat", "tokens").await), 0);
    assert_eq!(s.store.count_events(&s.tenant, Some("cat")).await.unwrap(), 9);

    // Validation.
    for (body, field) in [
        (
            json!({"customerId": "cat", "eventName": "x", "idempotencyKey": "v1", "timestamp": "2026-03-01T00:00:00Z"}),
            "timestamp",
        ),
        (json!({"customerId": "cat", "eventName": "x", "timestamp": "2026-03-01 00:00:00.000000"}), "idempotencyKey"),
        (
            json!({"customerId": "nobody", "eventName": "x", "idempotencyKey": "v2", "timestamp": "2026-03-01 00:00:00.000000"}),
            "customerId",
        ),
        (
            json!({"customerId": "cat", "eventName": "x", "idempotencyKey": "v3", "timestamp": "2026-03-01 00:00:00.000000", "properties": [1]}),
            "properties",
        ),
    ] {
        let (status, e) = api.post("/api/v1/report/event/", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(e[field].is_array(), "{body}: {field} in {e}");
    }

    // A batch: accepted, duplicates (within the batch and of earlier keys), rejected.
    let now = "2026-03-01 00:00:01.000000";
    let mut events: Vec<Value> = (0..10)
        .map(|i| json!({"customerId": "cat", "eventName": "llm.call", "idempotencyKey": format!("b{i}"), "timestamp": now, "properties": {"model": "a", "tokens": 10}}))
        .collect();
    events.push(json!({"customerId": "cat", "eventName": "llm.call", "idempotencyKey": "b3", "timestamp": now, "properties": {"model": "a", "tokens": 10}}));
    events.push(json!({"customerId": "cat", "eventName": "llm.call", "idempotencyKey": "k9", "timestamp": now}));
    events
        .push(json!({"customerId": "cat", "eventName": "llm.call", "idempotencyKey": "bad", "timestamp": "yesterday"}));
    // Either casing of each field; a field of the wrong type is named.
    events.push(json!({"customer_id": "cat", "event_name": "llm.call", "idempotency_key": "snake", "timestamp": now, "properties": {"model": "a", "tokens": 10}}));
    events.push(json!({"customerId": 5, "eventName": "llm.call", "idempotencyKey": "typed", "timestamp": now}));
    let batch = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
    assert_eq!(
        (batch["accepted"].clone(), batch["duplicates"].clone(), batch["rejected"].clone()),
        (json!(11), json!(1), json!(3)),
        "{batch}"
    );
    assert_eq!(batch["results"][11]["status"], "rejected", "k9 was first used for another event");
    assert!(batch["results"][11]["errors"]["idempotencyKey"].is_array(), "{batch}");
    assert_eq!(batch["results"][12]["status"], "rejected");
    assert!(batch["results"][12]["errors"]["timestamp"].is_array());
    assert_eq!(batch["results"][13]["status"], "accepted");
    assert_eq!(
        (batch["results"][14]["idempotencyKey"].clone(), batch["results"][14]["errors"]["customerId"].is_array()),
        (json!("typed"), true),
        "{batch}"
    );
    assert_eq!(usage(api.rows("cat", "tokens").await), 110);
    // A batch larger than one statement: keys stored by the batch above are
    // found in either statement, a key repeated inside it counts once.
    let mut keys: Vec<String> = (0..34).map(|i| format!("m{i}")).collect();
    for (at, old) in [(0, "b0"), (10, "b1"), (20, "b2"), (33, "b3"), (38, "b4")] {
        keys.insert(at, old.to_string());
    }
    keys.push("m0".to_string());
    let events: Vec<Value> = keys
        .iter()
        .map(|k| json!({"customerId": "cat", "eventName": "llm.call", "idempotencyKey": k, "timestamp": now, "properties": {"model": "a", "tokens": 10}}))
        .collect();
    let batch = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
    assert_eq!((batch["accepted"].clone(), batch["duplicates"].clone()), (json!(34), json!(6)), "{batch}");
    for (i, k) in keys.iter().enumerate() {
        let expected = if k.starts_with('b') || i == keys.len() - 1 { "duplicate" } else { "accepted" };
        assert_eq!(batch["results"][i]["status"], expected, "{k} at {i}: {batch}");
    }
    assert_eq!(usage(api.rows("cat", "tokens").await), 110 + 340);
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"idempotencyKey": format!("x{i}")})).collect();
    let (status, e) = api.post("/api/v1/report/events/batch/", json!({ "events": too_many })).await;
    assert_eq!((status, e["events"].is_array()), (400, true));
}

/// A batch over many customers (on PostgreSQL their events go to several
/// writers at once): every result in its place, each customer counted once
/// per key, the same batch again all duplicates.
async fn batch_over_many_customers(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let usage = |rows: Vec<Value>| rows[0]["currentUsage"].clone();
    let customers: Vec<String> = (0..8).map(|i| format!("many{i}")).collect();
    for c in &customers {
        api.subscribe("base", c).await;
    }
    let at = "2026-01-31 11:00:00.000001";
    let event = |c: &str, k: &str| json!({"customerId": c, "eventName": "llm.call", "idempotencyKey": k, "timestamp": at, "properties": {"model": "a", "tokens": 10}});
    // Five events per customer, interleaved; a retry of an earlier event of
    // the batch; an event of an unknown customer in the middle.
    let mut sent: Vec<(Value, &str)> = Vec::new();
    for n in 0..5 {
        for c in &customers {
            sent.push((event(c, &format!("{c}-{n}")), "accepted"));
        }
    }
    sent.insert(17, (event("nobody", "lost"), "rejected"));
    sent.insert(30, (event("many3", "many3-1"), "duplicate"));
    let events: Vec<Value> = sent.iter().map(|(e, _)| e.clone()).collect();
    let batch = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
    assert_eq!(
        (batch["accepted"].clone(), batch["duplicates"].clone(), batch["rejected"].clone()),
        (json!(40), json!(1), json!(1))
    );
    for (i, (e, status)) in sent.iter().enumerate() {
        let result = &batch["results"][i];
        assert_eq!(
            (&result["idempotencyKey"], result["status"].as_str()),
            (&e["idempotencyKey"], Some(*status)),
            "at {i}: {batch}"
        );
    }
    assert!(batch["results"][17]["errors"]["customerId"].is_array(), "{batch}");
    for c in &customers {
        assert_eq!(usage(api.rows(c, "tokens").await), 50, "{c}");
    }
    let again = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone(), again["rejected"].clone()),
        (json!(0), json!(41), json!(1))
    );
    for (i, (e, _)) in sent.iter().enumerate().filter(|(i, _)| *i != 17) {
        assert_eq!(
            (&again["results"][i]["idempotencyKey"], &again["results"][i]["status"]),
            (&e["idempotencyKey"], &json!("duplicate")),
            "at {i}"
        );
    }
    for c in &customers {
        assert_eq!(usage(api.rows(c, "tokens").await), 50, "{c}");
    }
}

async fn consume_never_overspends(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    api.subscribe("tiny", "dan").await;
    // 64 consumers at once on a hard limit of 50.
    let api_ref = &api;
    let attempts = (0..64).map(|i| {
        let api = api_ref;
        let body = json!({"customerId": "dan", "featureId": "calls", "value": 1, "idempotencyKey": format!("c{i}")});
        async move { api.post("/api/v1/entitlements/consume/", body).await }
    });
    let results = futures::future::join_all(attempts).await;
    let allowed = results.iter().filter(|(st, v)| *st == 200 && v["allowed"] == true).count();
    let refused = results.iter().filter(|(st, v)| *st == 200 && v["allowed"] == false).count();
    assert_eq!((allowed, refused), (50, 14), "{results:?}");
    let row = &api.rows("dan", "calls").await[0];
    assert_eq!(
        (row["currentUsage"].clone(), row["remaining"].clone(), row["hasAccess"].clone()),
        (json!(50), json!(0), json!(false))
    );
    // A retried key answers as before and deducts nothing.
    let (_, first) = api
        .post(
            "/api/v1/entitlements/consume/",
            json!({"customerId": "dan", "featureId": "calls", "value": 1, "idempotencyKey": "c0"}),
        )
        .await;
    assert_eq!(first, results[0].1);
    assert_eq!(api.rows("dan", "calls").await[0]["currentUsage"], 50);
    let (status, e) = api
        .post(
            "/api/v1/entitlements/consume/",
            json!({"customerId": "dan", "featureId": "calls", "value": 0, "idempotencyKey": "z"}),
        )
        .await;
    assert_eq!((status, e["value"].is_array()), (400, true));
    let (_, none) = api
        .post(
            "/api/v1/entitlements/consume/",
            json!({"customerId": "dan", "featureId": "seats", "value": 1, "idempotencyKey": "z"}),
        )
        .await;
    assert_eq!(none["allowed"], false, "not entitled");
}

/// Events counted in memory before their counts reach the counter rows (the
/// journal, on SQLite) are seen by SET reports and consumes, and survive
/// restarts exactly once.
async fn journal_survives_restarts(backend: Backend) {
    // No fold within the test: every restart replays the journal.
    let mut s = TestServer::start_with(backend, |c| c.usage_fold_interval_ms = 3_600_000).await;
    let at = "2026-01-31 11:00:00.000001";
    let requests = |rows: Vec<Value>| rows[0]["currentUsage"].clone();
    let first = {
        let api = Api::new(&s);
        seed(&api).await;
        api.subscribe("base", "eve").await;
        let (_, first) = api.event("eve", "j0", "ping", at, json!({"n": 1})).await;
        for i in 1..5 {
            api.event("eve", &format!("j{i}"), "ping", at, json!({})).await;
        }
        assert_eq!(requests(api.rows("eve", "requests").await), 5);
        api.usage("eve", "requests", 2, "SET").await;
        assert_eq!(requests(api.rows("eve", "requests").await), 2, "SET replaces what events counted");
        for i in 5..8 {
            api.event("eve", &format!("j{i}"), "ping", at, json!({})).await;
        }
        let c = api
            .ok(
                "/api/v1/entitlements/consume/",
                json!({"customerId": "eve", "featureId": "requests", "value": 1, "idempotencyKey": "c1"}),
            )
            .await;
        assert_eq!((c["allowed"].clone(), c["currentUsage"].clone()), (json!(true), json!(6)), "{c}");
        for i in 8..11 {
            api.event("eve", &format!("j{i}"), "ping", at, json!({})).await;
        }
        assert_eq!(requests(api.rows("eve", "requests").await), 9);
        first
    };
    for round in 0..2 {
        s.restart().await;
        let api = Api::new(&s);
        assert_eq!(requests(api.rows("eve", "requests").await), 9, "after restart {round}");
        let (status, again) = api.event("eve", "j0", "ping", at, json!({"n": 1})).await;
        assert_eq!((status, again), (200, first.clone()), "a repeated key after a restart answers as the first time");
        let (status, _) = api.event("eve", "j0", "ping", at, json!({"n": 2})).await;
        assert_eq!(status, 409, "a key stays bound to its first event after a restart");
    }
    let api = Api::new(&s);
    let events: Vec<Value> = (11..14)
        .map(|i| json!({"customerId": "eve", "eventName": "ping", "idempotencyKey": format!("j{i}"), "timestamp": at}))
        .chain([json!({"customerId": "eve", "eventName": "ping", "idempotencyKey": "j3", "timestamp": at})])
        .collect();
    let batch = api.ok("/api/v1/report/events/batch/", json!({ "events": events })).await;
    assert_eq!((batch["accepted"].clone(), batch["duplicates"].clone()), (json!(3), json!(1)), "{batch}");
    assert_eq!(requests(api.rows("eve", "requests").await), 12);
    assert_eq!(s.store.count_events(&s.tenant, Some("eve")).await.unwrap(), 14);
}

/// The same idempotency keys from two tenants at once, so that their events
/// share the writer's transactions: each tenant stores and counts each key
/// once, and a key one tenant stored before is new to the other.
async fn one_key_in_two_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (other, other_key) = s.other_tenant("other", kelviq_core::Environment::Sandbox).await;
    let apis = [Api::new(&s), Api { s: &s, key: other_key }];
    for api in &apis {
        seed(api).await;
        api.subscribe("base", "fay").await;
    }
    let at = "2026-01-31 11:00:00.000001";
    // First the other tenant alone, then both with the same keys (new to the
    // first, repeats for the other), then both again (repeats for both).
    for (round, tenants) in [&apis[1..], &apis[..], &apis[..]].into_iter().enumerate() {
        let sends = (0..30 * tenants.len()).map(|i| {
            let api = &tenants[i % tenants.len()];
            async move { api.event("fay", &format!("shared{}", i / tenants.len() % 15), "ping", at, json!({})).await }
        });
        for (i, (status, answer)) in futures::future::join_all(sends).await.into_iter().enumerate() {
            assert_eq!(status, 200, "round {round}, event {i}: {answer}");
        }
        for api in tenants {
            assert_eq!(api.rows("fay", "requests").await[0]["currentUsage"], 15, "round {round}");
        }
    }
    assert_eq!(s.store.count_events(&s.tenant, Some("fay")).await.unwrap(), 15);
    assert_eq!(s.store.count_events(&other, Some("fay")).await.unwrap(), 15);
}

on_both_backends!(
    usage_reports,
    raw_events,
    batch_over_many_customers,
    consume_never_overspends,
    journal_survives_restarts,
    one_key_in_two_tenants
);

/// On PostgreSQL, while several processes share the database, each usage
/// commit leaves a row in the change feed for the others; those rows are
/// pruned after minutes (the others after an hour), by the server's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rows_leave_the_change_feed_within_minutes() {
    let s = TestServer::start(Backend::Postgres).await;
    let api = Api::new(&s);
    seed(&api).await;
    // Another process's hold on the usage lock: the server, alone until
    // now, hands over and counts each change as it stores it, announced.
    let mut other = kelviq_store::UsageLock::connect(&s.db.url).await.unwrap();
    other.share().await.unwrap();
    api.subscribe("base", "gus").await;
    api.usage("gus", "calls", 5, "DELTA").await;
    let topics = || async {
        s.store.changes_between(0, i64::MAX).await.unwrap().into_iter().map(|c| c.topic).collect::<Vec<_>>()
    };
    let kept = topics().await;
    assert!(kept.iter().any(|t| t == kelviq_store::TOPIC_USAGE), "{kept:?}");
    s.clock.advance(chrono::Duration::minutes(4));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(topics().await.iter().any(|t| t == kelviq_store::TOPIC_USAGE), "kept for 5 minutes");
    s.clock.advance(chrono::Duration::minutes(2));
    let moved = std::time::Instant::now();
    loop {
        let now = topics().await;
        if !now.iter().any(|t| t == kelviq_store::TOPIC_USAGE) {
            assert!(!now.is_empty(), "the other changes stay for an hour");
            break;
        }
        assert!(moved.elapsed() < std::time::Duration::from_secs(5), "usage rows are still in the feed: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(api.rows("gus", "calls").await[0]["currentUsage"], 5, "pruning the feed changes no usage");
}
