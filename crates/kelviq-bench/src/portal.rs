//! The customer portal's page for a heavy customer: 20 subscriptions and
//! 200 invoices (20 purchases, then 180 one-time charges of the saved
//! card), rendered again and again over one connection, so that each
//! request's latency is the server's time for the page; then the plan
//! change page of one of those subscriptions.

use crate::bench::report;
use crate::loadgen::{load, Request};
use serde_json::{json, Value};
use std::net::SocketAddr;

async fn post(client: &reqwest::Client, base: &str, key: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = client.post(format!("{base}/api/v1{path}")).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(res.status().is_success(), "{path}: {}", res.text().await.unwrap_or_default());
    Ok(res.json().await?)
}

pub async fn run(
    addr: SocketAddr,
    client: &reqwest::Client,
    base: &str,
    key: &str,
    seconds: u64,
) -> anyhow::Result<()> {
    post(client, base, key, "/catalog/plans/", json!({"name": "Seat", "identifier": "seat", "product": "bench"}))
        .await?;
    let prices = json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
        {"chargePeriod": "MONTHLY", "priceData": {"amount": 9}}, {"chargePeriod": "ONE_TIME", "priceData": {"amount": 3}}]}]}]});
    post(client, base, key, "/catalog/plans/seat/prices/bulk/", prices).await?;
    post(client, base, key, "/catalog/plans/seat/publish/", json!({})).await?;
    let mut subscription = String::new();
    for _ in 0..20 {
        let session = post(
            client,
            base,
            key,
            "/checkout/",
            json!({"planIdentifier": "seat", "chargePeriod": "MONTHLY", "customerId": "heavy", "successUrl": "https://bench.example/"}),
        )
        .await?;
        let id = session["checkoutSessionId"].as_str().unwrap_or_default().to_string();
        let done = json!({"card": "4242424242424242", "email": "heavy@bench.example"});
        let completed = post(client, base, key, &format!("/checkout/sessions/{id}/complete/"), done).await?;
        subscription = completed["subscription"]["id"].as_str().unwrap_or_default().to_string();
    }
    for _ in 0..180 {
        let charge = json!({"planIdentifier": "seat", "chargePeriod": "ONE_TIME", "customerId": "heavy"});
        post(client, base, key, "/charges/", charge).await?;
    }
    let session = post(client, base, key, "/portal/session/", json!({"customerId": "heavy"})).await?;
    let token = session["token"].as_str().unwrap_or_default().to_string();
    let headers = format!("Cookie: kq_portal={token}\r\n");
    let cookie = headers.clone();
    let page = load(addr, None, 1, seconds, move |_, _| Request {
        path: "/portal/demo/".into(),
        body: None,
        items: 1,
        headers: cookie.clone(),
    })
    .await;
    report("portal page (20 subscriptions, 200 invoices), one connection", &page);
    println!("  portal page: p50 {:.1} ms, p99 {:.1} ms (target < 50 ms)", page.percentile(0.5), page.percentile(0.99));
    let change_path = format!("/portal/demo/subscriptions/{subscription}/change");
    let change = load(addr, None, 1, seconds, move |_, _| Request {
        path: change_path.clone().into(),
        body: None,
        items: 1,
        headers: headers.clone(),
    })
    .await;
    report("plan change page, one connection", &change);
    println!(
        "  plan change page: p50 {:.1} ms, p99 {:.1} ms (target < 50 ms)",
        change.percentile(0.5),
        change.percentile(0.99)
    );
    Ok(())
}
