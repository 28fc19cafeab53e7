//! License validation under load: 200 purchases of a licensed plan, one
//! instance activated on each, then `POST /license/validate/` with a key
//! and its instance (a different pair per request) beside the `/healthz`
//! floor of the same run.

use crate::bench::{report, seed_post};
use crate::loadgen::{load, Request};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// How many licenses the run validates.
const LICENSES: usize = 200;

async fn post(client: &reqwest::Client, base: &str, key: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = client.post(format!("{base}/api/v1{path}")).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(res.status().is_success(), "{path}: {}", res.text().await.unwrap_or_default());
    Ok(res.json().await?)
}

/// Buys the licenses and activates one instance of each: (key, instance) pairs.
async fn seed(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Vec<(String, String)>> {
    seed_post(
        client,
        base,
        key,
        "/catalog/plans/",
        json!({"name": "Desktop", "identifier": "desktop", "product": "bench",
            "license": {"enabled": true, "activationLimitEnabled": true, "activationLimit": 3}}),
    )
    .await?;
    seed_post(
        client,
        base,
        key,
        "/catalog/plans/desktop/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 12}}]}]}]}),
    )
    .await?;
    seed_post(client, base, key, "/catalog/plans/desktop/publish/", json!({})).await?;
    let mut pairs = Vec::with_capacity(LICENSES);
    for i in 0..LICENSES {
        let session = post(
            client,
            base,
            key,
            "/checkout/",
            json!({"planIdentifier": "desktop", "chargePeriod": "MONTHLY", "customerId": format!("lic{i}"),
                "successUrl": "https://bench.example/"}),
        )
        .await?;
        let id = session["checkoutSessionId"].as_str().unwrap_or_default().to_string();
        let done =
            post(client, base, key, &format!("/checkout/sessions/{id}/complete/"), json!({"card": "4242424242424242"}))
                .await?;
        let sub = done["subscription"]["id"].as_str().unwrap_or_default().to_string();
        let res = client.get(format!("{base}/api/v1/subscriptions/{sub}/")).bearer_auth(key).send().await?;
        let sub: Value = res.json().await?;
        let license = sub["license"][0]["licenseKey"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a purchase without a license: {sub}"))?
            .to_string();
        let activated = post(client, base, key, "/license/activate/", json!({"licenseKey": license})).await?;
        let instance = activated["instanceId"].as_str().unwrap_or_default().to_string();
        pairs.push((license, instance));
    }
    Ok(pairs)
}

pub async fn run(
    addr: SocketAddr,
    client: &reqwest::Client,
    base: &str,
    server_key: &str,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let pairs = Arc::new(seed(client, base, server_key).await?);
    let floor = load(addr, None, connections, seconds, |_, _| Request {
        path: "/healthz".into(),
        body: None,
        items: 1,
        headers: String::new(),
    })
    .await;
    let bodies: Arc<Vec<String>> =
        Arc::new(pairs.iter().map(|(k, i)| json!({"licenseKey": k, "instanceId": i}).to_string()).collect());
    let validate = load(addr, Some(server_key), connections, seconds, move |worker, i| Request {
        path: "/api/v1/license/validate/".into(),
        body: Some(bodies[(worker * 31 + i as usize) % bodies.len()].clone()),
        items: 1,
        headers: String::new(),
    })
    .await;
    report("healthz (HTTP floor)", &floor);
    report("license validate (key and instance)", &validate);
    println!("  validation throughput = {:.0} % of the floor", 100.0 * validate.rate() / floor.rate().max(1.0));
    Ok(())
}
