//! Usage billed in arrears, on both backends, over four months of the test
//! clock: a TIERED pay-as-you-go meter fed by raw events and a PACKAGE one
//! fed by usage reports. Every invoice's lines are checked against a table
//! computed by hand here: renewals, late usage, an upgrade mid-period (a
//! final usage invoice at the old prices) and the cancellations (final
//! usage invoices).

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use serde_json::{json, Value};

const GOOD: &str = "4242424242424242";

/// `api-calls` (SUM of `calls` of `api` events) and `storage` (reported);
/// plan `metered` ($20 a month; calls: 1,000 free, then $0.002 up to
/// 10,000, then $0.001; storage: $5 per started block of 100) and `bigger`
/// ($50; calls $0.0005 each; storage $4 per block).
async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "Cloud", "identifier": "cloud", "taxCode": "saas"})).await;
    let units = json!({"singular": "unit", "plural": "units"});
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "API Calls", "featureType": "METER", "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units},
            "meter": {"aggregation": {"function": "SUM", "field": "calls"},
                      "filters": [[{"property": "event_name", "operator": "equals", "value": "api"}]]}}),
    )
    .await;
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "Storage", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
    )
    .await;
    let plans = [
        (
            "metered",
            20,
            json!([{"upTo": 1000, "unitAmount": 0, "flatAmount": 0}, {"upTo": 10000, "unitAmount": 0.002, "flatAmount": 0},
            {"upTo": "inf", "unitAmount": 0.001, "flatAmount": 0}]),
            5,
        ),
        ("bigger", 50, json!([{"upTo": "inf", "unitAmount": 0.0005, "flatAmount": 0}]), 4),
    ];
    for (id, base, tiers, block) in plans {
        api.ok("/api/v1/catalog/plans/", json!({"name": id, "identifier": id, "product": "cloud"})).await;
        api.ok(
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
                {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": base}}]},
                {"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO",
                 "charges": [{"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"}, "tiers": tiers}]},
                {"feature": "storage", "priceModel": "PACKAGE", "paymentType": "PAY_AS_YOU_GO",
                 "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": block, "blockSize": 100}}]}]}]}),
        )
        .await;
        let unlimited = json!({"value": null, "hasUnlimitedUsage": true, "hardLimit": false});
        api.ok(
            &format!("/api/v1/catalog/plans/{id}/features/"),
            json!({"planEntitlements": [{"feature": "api-calls", "details": unlimited}, {"feature": "storage", "details": unlimited}]}),
        )
        .await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
}

/// The invoices of a customer, oldest first.
async fn invoices(api: &Api<'_>, customer: &str) -> Vec<Value> {
    let (status, page) = api.get(&format!("/api/v1/invoices/?customer_id={customer}&page_size=100")).await;
    assert_eq!(status, 200, "{page}");
    let mut all = page["results"].as_array().unwrap().clone();
    all.reverse();
    all
}

/// An invoice's lines as (kind, feature, quantity, amount).
fn lines(invoice: &Value) -> Vec<(String, String, i64, String)> {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["featureId"].as_str().unwrap_or("").to_string(),
                l["quantity"].as_i64().unwrap_or(1),
                l["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(kind: &str, feature: &str, quantity: i64, amount: &str) -> (String, String, i64, String) {
    (kind.into(), feature.into(), quantity, amount.into())
}

/// `n` calls in one `api` event dated `at` (RFC 3339).
async fn calls(api: &Api<'_>, customer: &str, key: &str, at: &str, n: i64) {
    let at = at.replace('T', " ").replace('Z', ".000000");
    let (status, body) = api.event(customer, key, "api", &at, json!({"calls": n})).await;
    assert!(status < 300, "{body}");
}

async fn usage_is_billed_in_arrears(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub = api.buy("metered", "MONTHLY", "ann", GOOD, json!({})).await;
    assert_eq!(lines(&invoices(&api, "ann").await[0]), [row("BASE", "", 1, "20.00")]);

    // Period 1 (Jan 31 – Feb 28): 12,000 calls, 250 of storage.
    api.advance_to("2026-02-10T00:00:00Z").await;
    calls(&api, "ann", "c1", "2026-02-10T00:00:00Z", 12_000).await;
    api.usage("ann", "storage", 250, "DELTA").await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let renewal = invoices(&api, "ann").await[1].clone();
    // 1,000 free + 9,000 × 0.002 + 2,000 × 0.001 = 20.00; ⌈250 / 100⌉ × 5 = 15.00.
    assert_eq!(
        lines(&renewal),
        [
            row("BASE", "", 1, "20.00"),
            row("USAGE", "api-calls", 12_000, "20.00"),
            row("USAGE", "storage", 250, "15.00")
        ]
    );
    assert_eq!((&renewal["total"], &renewal["status"]), (&json!("55.00"), &json!("PAID")));
    // The order shows the same lines, with their kinds.
    let (_, order) = api.get(&format!("/api/v1/orders/{}/", renewal["orderId"].as_str().unwrap())).await;
    let items: Vec<(&str, &str, i64)> = order["lineItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (l["kind"].as_str().unwrap(), l["featureId"].as_str().unwrap_or(""), l["amountUnits"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(items, [("BASE", "", 2000), ("USAGE", "api-calls", 2000), ("USAGE", "storage", 1500)]);
    let usage = &renewal["lines"][1];
    assert_eq!(
        (&usage["periodStart"], &usage["periodEnd"]),
        (&json!("2026-01-31T10:00:00Z"), &json!("2026-02-28T10:00:00Z"))
    );
    let tiers: Vec<(i64, String)> = usage["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["quantity"].as_i64().unwrap(), t["amount"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(tiers, [(1000, "0.00".into()), (9000, "18.00".into()), (2000, "2.00".into())]);
    assert_eq!((&usage["tiers"][1]["upTo"], &usage["tiers"][1]["unitAmount"]), (&json!(10000), &json!("0.002")));
    assert_eq!(usage["tiers"][2]["upTo"], Value::Null);
    documents_show_it(&s, renewal["id"].as_str().unwrap()).await;

    // Period 2: 500 calls, and 300 more dated in period 1 (late).
    api.advance_to("2026-03-10T00:00:00Z").await;
    calls(&api, "ann", "c2", "2026-03-10T00:00:00Z", 500).await;
    calls(&api, "ann", "late", "2026-02-20T00:00:00Z", 300).await;
    // The upcoming invoice shows it all already, and changes nothing.
    let (status, upcoming) = api.get(&format!("/api/v1/subscriptions/{sub}/upcoming-invoice/")).await;
    assert_eq!(status, 200, "{upcoming}");
    let expected = [
        row("BASE", "", 1, "20.00"),
        row("LATE_USAGE", "api-calls", 300, "0.30"),
        row("USAGE", "api-calls", 500, "0.00"),
        row("USAGE", "storage", 0, "0.00"),
    ];
    assert_eq!(lines(&upcoming), expected);
    assert_eq!((&upcoming["status"], &upcoming["total"]), (&json!("DRAFT"), &json!("20.30")));
    assert_eq!(
        (&upcoming["periodStart"], &upcoming["periodEnd"]),
        (&json!("2026-03-31T10:00:00Z"), &json!("2026-04-30T10:00:00Z"))
    );
    api.advance_to("2026-03-31T10:00:00Z").await;
    let renewal = invoices(&api, "ann").await[2].clone();
    assert_eq!(lines(&renewal), expected);
    assert_eq!(renewal["total"], "20.30");
    assert_eq!(renewal["lines"][1]["periodStart"], "2026-01-31T10:00:00Z", "late usage names its period");
    assert_eq!(invoices(&api, "ann").await[1]["total"], "55.00", "a paid invoice is never rewritten");

    // Period 3: an upgrade on Apr 10 bills the usage so far at the old prices.
    api.advance_to("2026-04-10T10:00:00Z").await;
    calls(&api, "ann", "c3", "2026-04-10T10:00:00Z", 2_000).await;
    api.usage("ann", "storage", 150, "DELTA").await;
    api.ok(
        &format!("/api/v1/subscriptions/{sub}/update/"),
        json!({"planIdentifier": "bigger", "chargePeriod": "MONTHLY", "prorationBehavior": "IMMEDIATE_CHARGE"}),
    )
    .await;
    let all = invoices(&api, "ann").await;
    assert_eq!(all.len(), 5, "a final usage invoice, then the proration");
    // 1,000 free + 1,000 × 0.002 = 2.00; ⌈150 / 100⌉ × 5 = 10.00.
    assert_eq!(lines(&all[3]), [row("USAGE", "api-calls", 2_000, "2.00"), row("USAGE", "storage", 150, "10.00")]);
    assert_eq!(all[3]["lines"][0]["periodEnd"], "2026-04-10T10:00:00Z");
    assert!(lines(&all[4]).iter().all(|l| l.0 == "PRORATION"), "{:?}", lines(&all[4]));

    // Apr 20: 1,000 more calls, then cancelled now: the rest at the new prices.
    api.advance_to("2026-04-20T10:00:00Z").await;
    calls(&api, "ann", "c4", "2026-04-20T10:00:00Z", 1_000).await;
    api.ok(&format!("/api/v1/subscriptions/{sub}/cancel/"), json!({"cancellationType": "IMMEDIATE"})).await;
    let all = invoices(&api, "ann").await;
    assert_eq!(all.len(), 6);
    assert_eq!(lines(&all[5]), [row("USAGE", "api-calls", 1_000, "0.50"), row("USAGE", "storage", 0, "0.00")]);
    assert_eq!(all[5]["lines"][0]["periodStart"], "2026-04-10T10:00:00Z");
    let numbers: Vec<&str> = all.iter().map(|i| i["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["INV-000001", "INV-000002", "INV-000003", "INV-000004", "INV-000005", "INV-000006"]);
}

/// The renewal invoice as HTML and as PDF (its text read back with
/// `pdftotext`): the number, the parties, the usage tiers and the total.
async fn documents_show_it(s: &TestServer, id: &str) {
    let http = crate::common::http();
    let get = |format: &str| {
        http.get(s.url(&format!("/api/v1/invoices/{id}/document/?format={format}"))).bearer_auth(&s.server_key).send()
    };
    let html = get("html").await.unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = html.text().await.unwrap();
    for text in ["Invoice INV-000002", "ann@example.com", "tier up to 10000", "18.00 USD", "55.00 USD", "Amount due"] {
        assert!(html.contains(text), "{text} in {html}");
    }
    let pdf = get("pdf").await.unwrap();
    assert_eq!((pdf.status().as_u16(), pdf.headers()["content-type"].to_str().unwrap()), (200, "application/pdf"));
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, &bytes).unwrap();
    if let Ok(keep) = std::env::var("KELVIQ_KEEP_PDF") {
        std::fs::write(keep, &bytes).unwrap();
    }
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for text_in in ["Invoice INV-000002", "ann@example.com", "api-calls", "tier up to 10000", "55.00 USD"] {
        assert!(text.contains(text_in), "{text_in} in {text}");
    }
    assert_eq!(get("xml").await.unwrap().status().as_u16(), 400);
}

/// A cancellation scheduled for a date bills the usage up to it.
async fn a_scheduled_cancellation_bills_the_last_usage(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub = api.buy("metered", "MONTHLY", "bo", GOOD, json!({})).await;
    api.usage("bo", "storage", 100, "DELTA").await;
    api.ok(
        &format!("/api/v1/subscriptions/{sub}/cancel/"),
        json!({"cancellationType": "SPECIFIC_DATE", "cancellationDate": "2026-02-15"}),
    )
    .await;
    api.advance_to("2026-02-16T00:00:00Z").await;
    assert_eq!(api.sub(&sub).await["status"], "canceled");
    let all = invoices(&api, "bo").await;
    assert_eq!(all.len(), 2);
    assert_eq!(lines(&all[1]), [row("USAGE", "api-calls", 0, "0.00"), row("USAGE", "storage", 100, "5.00")]);
    assert_eq!(all[1]["lines"][1]["periodEnd"], "2026-02-15T00:00:00Z");
    let (status, _) = api.get(&format!("/api/v1/subscriptions/{sub}/upcoming-invoice/")).await;
    assert_eq!(status, 404, "nothing more to invoice");
}

/// A plan change that activates on payment bills the usage so far at the
/// old prices once it is paid; the new subscription bills only what follows.
async fn a_change_activated_on_payment_bills_the_usage_so_far(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let old = api.buy("metered", "MONTHLY", "cy", GOOD, json!({})).await;
    api.advance_to("2026-02-10T10:00:00Z").await;
    calls(&api, "cy", "c1", "2026-02-10T10:00:00Z", 3_000).await;
    api.usage("cy", "storage", 120, "DELTA").await;
    let changed = api
        .ok(
            &format!("/api/v1/subscriptions/{old}/update/"),
            json!({"planIdentifier": "bigger", "chargePeriod": "MONTHLY", "prorationBehavior": "IMMEDIATE_CHARGE",
                   "paymentBehavior": "activate_on_payment"}),
        )
        .await;
    let all = invoices(&api, "cy").await;
    assert_eq!(all.len(), 3, "the purchase, the change, then the usage so far");
    assert!(lines(&all[1]).iter().all(|l| l.0 == "PRORATION"), "{:?}", lines(&all[1]));
    // 1,000 free + 2,000 × 0.002 = 4.00; ⌈120 / 100⌉ × 5 = 10.00.
    assert_eq!(lines(&all[2]), [row("USAGE", "api-calls", 3_000, "4.00"), row("USAGE", "storage", 120, "10.00")]);
    assert_eq!(all[2]["subscriptionId"], old.as_str());

    // At the renewal the new subscription bills only the later usage, at its prices.
    let new = changed["subscriptionId"].as_str().unwrap_or_else(|| panic!("{changed}")).to_string();
    assert_ne!(new, old);
    api.advance_to("2026-02-20T10:00:00Z").await;
    calls(&api, "cy", "c2", "2026-02-20T10:00:00Z", 1_000).await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let all = invoices(&api, "cy").await;
    assert_eq!(all.len(), 4);
    assert_eq!(
        lines(&all[3]),
        [row("BASE", "", 1, "50.00"), row("USAGE", "api-calls", 1_000, "0.50"), row("USAGE", "storage", 0, "0.00")]
    );
    assert_eq!(all[3]["subscriptionId"], new.as_str());
}

/// A free trial bills no usage, except for the charges that bill trial
/// usage: those are billed with the first period when the trial ends.
async fn a_trial_bills_the_usage_its_charges_ask_for(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Trial", "identifier": "trial", "product": "cloud"})).await;
    let calls_price = |bill: bool| {
        json!({"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "billTrialUsage": bill,
               "charges": [{"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"},
                            "tiers": [{"upTo": "inf", "unitAmount": 0.002, "flatAmount": 0}]}]})
    };
    let prices = |calls: Value| {
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 14, "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]},
            calls,
            {"feature": "storage", "priceModel": "PACKAGE", "paymentType": "PAY_AS_YOU_GO",
             "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 5, "blockSize": 100}}]}]}]})
    };
    // Only pay-as-you-go charges bill trial usage.
    let mut committed = calls_price(true);
    committed["paymentType"] = json!("ADVANCE_COMMITMENT");
    let (status, body) = api.post("/api/v1/catalog/plans/trial/prices/bulk/", prices(committed)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("billTrialUsage"), "{body}");
    api.ok("/api/v1/catalog/plans/trial/prices/bulk/", prices(calls_price(true))).await;
    let unlimited = json!({"value": null, "hasUnlimitedUsage": true, "hardLimit": false});
    api.ok(
        "/api/v1/catalog/plans/trial/features/",
        json!({"planEntitlements": [{"feature": "api-calls", "details": unlimited}, {"feature": "storage", "details": unlimited}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/trial/publish/", json!({})).await;
    let (_, listed) = api.get("/api/v1/catalog/plans/trial/prices/").await;
    assert_eq!(listed["results"][0]["chargeCatalogPrice"][1]["billTrialUsage"], true, "{listed}");
    assert_eq!(listed["results"][0]["chargeCatalogPrice"][2]["billTrialUsage"], false);

    let sub = api.buy("trial", "MONTHLY", "dee", GOOD, json!({})).await;
    assert_eq!(api.sub(&sub).await["status"], "trialing");
    let before = invoices(&api, "dee").await.len();
    api.advance_to("2026-02-05T10:00:00Z").await;
    calls(&api, "dee", "t1", "2026-02-05T10:00:00Z", 3_000).await;
    api.usage("dee", "storage", 150, "DELTA").await;

    // The trial ends on Feb 14: the first period, and the trial's calls (not its storage).
    api.advance_to("2026-02-14T10:00:00Z").await;
    let all = invoices(&api, "dee").await;
    assert_eq!(all.len(), before + 1);
    let first = &all[before];
    assert_eq!(lines(first), [row("BASE", "", 1, "20.00"), row("USAGE", "api-calls", 3_000, "6.00")]);
    assert_eq!(
        (&first["lines"][1]["periodStart"], &first["lines"][1]["periodEnd"]),
        (&json!("2026-01-31T10:00:00Z"), &json!("2026-02-14T10:00:00Z"))
    );

    // The next period bills its own usage of both.
    api.advance_to("2026-02-20T10:00:00Z").await;
    calls(&api, "dee", "t2", "2026-02-20T10:00:00Z", 1_000).await;
    api.usage("dee", "storage", 250, "DELTA").await;
    api.advance_to("2026-03-14T10:00:00Z").await;
    let all = invoices(&api, "dee").await;
    assert_eq!(
        lines(&all[before + 1]),
        [row("BASE", "", 1, "20.00"), row("USAGE", "api-calls", 1_000, "2.00"), row("USAGE", "storage", 250, "15.00")]
    );
}

/// A committed meter with a soft limit: the units bought are billed in
/// advance, and the usage above them in each usage window is billed at the
/// charge's price on the first invoice after the window ends, once.
async fn a_soft_limit_bills_its_overage(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let units = json!({"singular": "export", "plural": "exports"});
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "Exports", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Pro", "identifier": "pro", "product": "cloud"})).await;
    api.ok(
        "/api/v1/catalog/plans/pro/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]},
            {"feature": "exports", "priceModel": "FLAT", "paymentType": "ADVANCE_COMMITMENT",
             "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 0.1}}]}]}]}),
    )
    .await;
    let soft = json!({"value": 100, "hasUnlimitedUsage": false, "hardLimit": false, "reset": "EVERY_MONTH",
                      "resetTime": "SUBSCRIPTION_START"});
    api.ok(
        "/api/v1/catalog/plans/pro/features/",
        json!({"planEntitlements": [{"feature": "exports", "details": soft}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/pro/publish/", json!({})).await;
    let features = json!({"features": [{"identifier": "exports", "quantity": 200}]});
    let sub = api.buy("pro", "MONTHLY", "eve", GOOD, features).await;
    assert_eq!(invoices(&api, "eve").await[0]["total"], "30.00", "10.00 and 200 × 0.10 in advance");

    // 260 used in the first month: 60 above the 200 bought.
    api.advance_to("2026-02-10T00:00:00Z").await;
    api.usage("eve", "exports", 260, "DELTA").await;
    let (_, upcoming) = api.get(&format!("/api/v1/subscriptions/{sub}/upcoming-invoice/")).await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let renewal = invoices(&api, "eve").await[1].clone();
    assert_eq!(lines(&renewal), [row("BASE", "", 1, "30.00"), row("USAGE", "exports", 60, "6.00")]);
    assert_eq!(lines(&upcoming), lines(&renewal), "the upcoming invoice foretold it");
    assert_eq!(
        (&renewal["lines"][1]["periodStart"], &renewal["lines"][1]["periodEnd"]),
        (&json!("2026-01-31T10:00:00Z"), &json!("2026-02-28T10:00:00Z"))
    );
    // Within the limit in the second month: no overage, and the first is not billed again.
    api.usage("eve", "exports", 150, "DELTA").await;
    api.advance_to("2026-03-31T10:00:00Z").await;
    assert_eq!(lines(&invoices(&api, "eve").await[2]), [row("BASE", "", 1, "30.00")]);
}

on_both_backends!(
    a_soft_limit_bills_its_overage,
    a_trial_bills_the_usage_its_charges_ask_for,
    usage_is_billed_in_arrears,
    a_scheduled_cancellation_bills_the_last_usage,
    a_change_activated_on_payment_bills_the_usage_so_far
);
