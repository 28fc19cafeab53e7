//! Invoices as records, on both backends: one with every order, numbered
//! in sequence, with typed lines and totals; listed and filtered; a failed
//! one paid on demand or voided.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use crate::selling::seed;
use serde_json::{json, Value};

const GOOD: &str = "4242424242424242";
/// Pays once, then declines.
const FAILS_LATER: &str = "4000000000000341";

async fn invoices_of(api: &Api<'_>, customer: &str) -> Vec<Value> {
    let (status, page) = api.get(&format!("/api/v1/invoices/?customer_id={customer}&page_size=100")).await;
    assert_eq!(status, 200, "{page}");
    let mut all = page["results"].as_array().unwrap().clone();
    all.reverse(); // oldest first
    all
}

fn kinds_and_amounts(invoice: &Value) -> Vec<(String, String)> {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str().unwrap().to_string(), l["amount"].as_str().unwrap().to_string()))
        .collect()
}

async fn every_order_has_its_invoice(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub = api.buy("basic", "MONTHLY", "ann", GOOD, json!({})).await;
    let first = &invoices_of(&api, "ann").await[0];
    let order = &api.orders("ann").await[0];
    assert_eq!(first["id"], order["invoiceId"]);
    assert_eq!(first["orderId"], order["id"]);
    assert_eq!(
        (&first["number"], &first["status"], &first["total"], &first["amountDue"], &first["subscriptionId"]),
        (&json!("INV-000001"), &json!("PAID"), &json!("10.00"), &json!("0.00"), &json!(sub))
    );
    assert_eq!(kinds_and_amounts(first), [("BASE".to_string(), "10.00".to_string())]);
    assert_eq!(
        (&first["periodStart"], &first["periodEnd"]),
        (&json!("2026-01-31T10:00:00Z"), &json!("2026-02-28T10:00:00Z"))
    );

    // Seats are QUANTITY lines with their unit price.
    api.buy("pro", "MONTHLY", "bo", GOOD, json!({"features": [{"identifier": "seats", "quantity": 3}]})).await;
    let pro = &invoices_of(&api, "bo").await[0];
    assert_eq!(pro["number"], "INV-000002");
    assert_eq!(kinds_and_amounts(pro), [("BASE".into(), "30.00".into()), ("QUANTITY".into(), "15.00".into())]);
    let seats = &pro["lines"][1];
    assert_eq!(
        (&seats["featureId"], &seats["quantity"], &seats["unitAmount"]),
        (&json!("seats"), &json!(3), &json!("5"))
    );
    assert_eq!((&pro["subtotal"], &pro["tax"], &pro["total"]), (&json!("45.00"), &json!("0.00"), &json!("45.00")));

    // The renewal is the next number, for the next period.
    api.advance_to("2026-02-28T10:00:00Z").await;
    let ann = invoices_of(&api, "ann").await;
    assert_eq!(ann.len(), 2);
    assert_eq!(
        (&ann[1]["number"], &ann[1]["status"]),
        (&json!("INV-000003"), &json!("PAID")),
        "due at once: in order of purchase"
    );
    assert_eq!(ann[1]["periodStart"], "2026-02-28T10:00:00Z");

    let (_, one) = api.get(&format!("/api/v1/invoices/{}/", first["id"].as_str().unwrap())).await;
    assert_eq!(one, *first);
    let (_, paid) = api.get("/api/v1/invoices/?status=PAID").await;
    assert_eq!(paid["count"], 4);
    let (_, by_sub) = api.get(&format!("/api/v1/invoices/?subscription_id={sub}")).await;
    assert_eq!(by_sub["count"], 2);
    let (_, dated) = api.get("/api/v1/invoices/?start_date=2026-02-01").await;
    assert_eq!(dated["count"], 2);
    let (status, e) = api.get("/api/v1/invoices/?status=LOST").await;
    assert_eq!(status, 400);
    assert!(e.to_string().contains("status"), "{e}");
    let (status, _) = api.get("/api/v1/invoices/INV-nothing/").await;
    assert_eq!(status, 404);
}

async fn a_failed_invoice_is_paid_or_voided(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let cy = api.buy("basic", "MONTHLY", "cy", FAILS_LATER, json!({})).await;
    let di = api.buy("basic", "MONTHLY", "di", FAILS_LATER, json!({})).await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let failed = invoices_of(&api, "cy").await[1].clone();
    let id = failed["id"].as_str().unwrap().to_string();
    assert_eq!((&failed["status"], &failed["amountDue"]), (&json!("PAYMENT_FAILED"), &json!("10.00")));
    // Declined again: a 400, and nothing changes.
    let (status, e) = api.post(&format!("/api/v1/invoices/{id}/pay/"), json!({})).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(api.sub(&cy).await["status"], "past_due");
    // A working card saved, the customer pays now.
    api.buy("lifetime", "ONE_TIME", "cy", GOOD, json!({})).await;
    let (status, paid) = api.post(&format!("/api/v1/invoices/{id}/pay/"), json!({})).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        (&paid["status"], &paid["amountPaid"], &paid["amountDue"]),
        (&json!("PAID"), &json!("10.00"), &json!("0.00"))
    );
    assert_eq!(api.sub(&cy).await["status"], "active");
    let (status, _) = api.post(&format!("/api/v1/invoices/{id}/void/"), json!({})).await;
    assert_eq!(status, 400, "a paid invoice is not voided");

    // Voided: nothing owed, no more retries, the subscription active again.
    let unpaid = invoices_of(&api, "di").await[1]["id"].as_str().unwrap().to_string();
    let (status, void) = api.post(&format!("/api/v1/invoices/{unpaid}/void/"), json!({})).await;
    assert_eq!(status, 200, "{void}");
    assert_eq!((&void["status"], &void["amountDue"]), (&json!("VOID"), &json!("0.00")));
    assert_eq!(api.sub(&di).await["status"], "active");
    let orders = api.orders("di").await.len();
    api.advance_to("2026-03-05T10:00:00Z").await;
    assert_eq!(api.orders("di").await.len(), orders, "no retry of a voided invoice");
    let order = api.orders("di").await.last().unwrap().clone();
    assert_eq!(order["status"], "CANCELLED");
    let (status, _) = api.post(&format!("/api/v1/invoices/{unpaid}/pay/"), json!({})).await;
    assert_eq!(status, 400, "a voided invoice is not paid");
    // Retries that all fail write the invoice off.
    api.advance_to("2026-03-20T10:00:00Z").await;
    assert_eq!(api.sub(&cy).await["status"], "active");
    let ev = api.buy("basic", "MONTHLY", "ev", FAILS_LATER, json!({})).await;
    api.advance_to("2026-04-20T10:00:00Z").await;
    assert_eq!(api.sub(&ev).await["status"], "past_due");
    api.advance_to("2026-05-10T10:00:00Z").await;
    assert_eq!(api.sub(&ev).await["status"], "canceled");
    let lost = &invoices_of(&api, "ev").await[1];
    assert_eq!((&lost["status"], &lost["amountDue"]), (&json!("UNCOLLECTIBLE"), &json!("0.00")));
}

/// The Rust SDK's invoices module, async and blocking.
async fn the_sdk_reads_invoices(backend: Backend) {
    use kelviq_sdk::invoices::ListInvoices;
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub =
        api.buy("pro", "MONTHLY", "ann", GOOD, json!({"features": [{"identifier": "seats", "quantity": 2}]})).await;
    api.buy("basic", "MONTHLY", "bo", FAILS_LATER, json!({})).await;
    api.advance_to("2026-02-28T10:00:00Z").await;
    let sdk = s.sdk();
    let invoices = sdk.invoices();
    let ann = invoices.list(ListInvoices { customer_id: Some("ann".into()), ..Default::default() }).await.unwrap();
    assert_eq!(ann.count, 2);
    let first = invoices.retrieve(&ann.results[1].id).await.unwrap();
    assert_eq!((first.number.as_str(), first.total_units, first.lines.len()), ("INV-000001", 4000, 2));
    assert_eq!((first.lines[1].kind.as_str(), first.lines[1].quantity), ("QUANTITY", Some(2)));
    let pdf = invoices.document(&first.id, "pdf").await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let html = String::from_utf8(invoices.document(&first.id, "html").await.unwrap()).unwrap();
    assert!(html.contains("Invoice INV-000001"));
    assert_eq!(invoices.document(&first.id, "doc").await.unwrap_err().status(), Some(400));
    let upcoming = invoices.upcoming(&sub).await.unwrap();
    assert_eq!((upcoming.status.as_str(), upcoming.total.as_str()), ("DRAFT", "40.00"));
    let failed =
        invoices.list(ListInvoices { status: Some("PAYMENT_FAILED".into()), ..Default::default() }).await.unwrap();
    assert_eq!((failed.count, failed.results[0].customer_id.as_str()), (1, "bo"));
    let id = failed.results[0].id.clone();
    assert!(invoices.pay(&id).await.is_err(), "declined again");
    let (key, base) = (s.server_key.clone(), s.base_url.clone());
    let voided = tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(key).base_url(&base).build_blocking().unwrap();
        let voided = client.invoices().void(&id).unwrap();
        assert_eq!(client.invoices().retrieve(&id).unwrap(), voided);
        voided
    })
    .await
    .unwrap();
    assert_eq!((voided.status.as_str(), voided.amount_due_units), ("VOID", 0));
    assert_eq!(invoices.retrieve("INV-none").await.unwrap_err().status(), Some(404));
}

/// Tax by the billing address: exclusive (added on top) and inclusive
/// (taken out of the price), a region's rate before its country's, none
/// where no rate applies; rounded per line, half up.
async fn tax_follows_the_billing_address(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Incl", "identifier": "incl", "product": "suite"})).await;
    api.ok(
        "/api/v1/catalog/plans/incl/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "taxBehavior": "INCLUSIVE",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/incl/publish/", json!({})).await;
    for rate in [
        json!({"name": "VAT", "country": "DE", "percentage": 19}),
        json!({"name": "Sales tax", "country": "US", "percentage": 5}),
        json!({"name": "CA sales tax", "country": "US", "region": "CA", "percentage": "7.25"}),
    ] {
        api.ok("/api/v1/tax-rates/", rate).await;
    }
    api.ok("/api/v1/customers/", json!({"customerId": "ca", "billingAddress": {"country": "US", "state": "CA"}})).await;
    let de = json!({"defaultBillingCountry": "DE"});
    api.buy("basic", "MONTHLY", "de1", GOOD, de.clone()).await;
    api.buy("incl", "MONTHLY", "de2", GOOD, de).await;
    api.buy("basic", "MONTHLY", "ca", GOOD, json!({})).await;
    api.buy("basic", "MONTHLY", "fr", GOOD, json!({"defaultBillingCountry": "FR"})).await;
    let table = [
        // Exclusive: 19 % of 10.00 on top.
        ("de1", vec![("BASE", "10.00"), ("TAX", "1.90")], "11.90"),
        // Inclusive: 10.00 / 1.19 = 8.403… → 8.40 net, 1.60 tax.
        ("de2", vec![("BASE", "8.40"), ("TAX", "1.60")], "10.00"),
        // The region's rate: 7.25 % of 10.00 = 0.725 → 0.73.
        ("ca", vec![("BASE", "10.00"), ("TAX", "0.73")], "10.73"),
        ("fr", vec![("BASE", "10.00")], "10.00"),
    ];
    for (customer, lines, total) in &table {
        let invoice = &invoices_of(&api, customer).await[0];
        let got: Vec<(String, String)> = kinds_and_amounts(invoice);
        let want: Vec<(String, String)> = lines.iter().map(|(k, a)| (k.to_string(), a.to_string())).collect();
        assert_eq!(got, want, "{customer}");
        assert_eq!(invoice["total"], *total, "{customer}");
        let order = &api.orders(customer).await[0];
        assert_eq!((&order["amountTotal"], &order["amountTax"]), (&json!(total), &invoice["tax"]), "{customer}");
    }
    let de1 = &invoices_of(&api, "de1").await[0];
    assert_eq!((&de1["subtotal"], &de1["tax"]), (&json!("10.00"), &json!("1.90")));
    assert_eq!(de1["lines"][1]["description"], "VAT (19%)");
    // The hosted page says the tax is added.
    let session = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
        )
        .await;
    let page = crate::common::http()
        .get(s.url(&format!("/checkout/{}/", session["checkoutSessionId"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Pay $10.00 + tax") && page.contains("id=\"tax-note\""), "{page}");
    // Renewals are taxed the same way.
    api.advance_to("2026-02-28T10:00:00Z").await;
    assert_eq!(invoices_of(&api, "de1").await[1]["total"], "11.90");
    assert_eq!(invoices_of(&api, "ca").await[1]["total"], "10.73");
}

/// A refund given as credit: no money moves, the subscription carries on,
/// and the next invoices take it off as CREDIT lines until it is used up.
async fn a_refund_as_credit_pays_the_next_invoices(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub = api.buy("basic", "MONTHLY", "cr", GOOD, json!({})).await;
    let order = api.orders("cr").await[0]["id"].as_str().unwrap().to_string();
    let (status, refund) =
        api.post("/api/v1/refunds/", json!({"orderId": order, "amountUnits": 1400, "asCredit": true})).await;
    assert_eq!(status, 400, "more than the order: {refund}");
    let refund = api.ok("/api/v1/refunds/", json!({"orderId": order, "amountUnits": 1000, "asCredit": true})).await;
    assert_eq!((&refund["asCredit"], &refund["status"]), (&json!(true), &json!("SUCCEEDED")));
    assert_eq!(api.sub(&sub).await["status"], "active", "a full refund as credit cancels nothing");
    let (_, transactions) = api.get("/api/v1/transaction/").await;
    assert!(
        transactions["results"].as_array().unwrap().iter().all(|t| t["transactionType"] != "REFUND"),
        "no money moved"
    );
    let (_, upcoming) = api.get(&format!("/api/v1/subscriptions/{sub}/upcoming-invoice/")).await;
    assert_eq!((&upcoming["total"], &upcoming["creditApplied"]), (&json!("0.00"), &json!("10.00")));
    api.advance_to("2026-02-28T10:00:00Z").await;
    let renewal = &invoices_of(&api, "cr").await[1];
    assert_eq!(kinds_and_amounts(renewal), [("BASE".into(), "10.00".into()), ("CREDIT".into(), "-10.00".into())]);
    assert_eq!(
        (&renewal["total"], &renewal["creditApplied"], &renewal["subtotal"]),
        (&json!("0.00"), &json!("10.00"), &json!("10.00"))
    );
    api.advance_to("2026-03-31T10:00:00Z").await;
    assert_eq!(invoices_of(&api, "cr").await[2]["total"], "10.00", "used up");
    // A one-time purchase has no next invoice to credit.
    api.buy("lifetime", "ONE_TIME", "cr", GOOD, json!({})).await;
    let once = api.orders("cr").await.last().unwrap()["id"].as_str().unwrap().to_string();
    let (status, e) = api.post("/api/v1/refunds/", json!({"orderId": once, "asCredit": true})).await;
    assert_eq!(status, 400);
    assert!(e.to_string().contains("as_credit") || e.to_string().contains("asCredit"), "{e}");
}

on_both_backends!(
    a_refund_as_credit_pays_the_next_invoices,
    every_order_has_its_invoice,
    a_failed_invoice_is_paid_or_voided,
    the_sdk_reads_invoices,
    tax_follows_the_billing_address
);
