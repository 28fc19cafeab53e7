//! The billing run: N subscriptions falling due at the same instant, each
//! with a base price and two pay-as-you-go charges (TIERED and PACKAGE)
//! whose usage is already counted, renewed by the scheduler's own loop;
//! invoices per second and resident memory before and after.

use crate::bench::{rss_bytes, seed_post};
use chrono::{DateTime, Duration, Utc};
use kelviq_core::billing::{PaymentMethod, Subscription};
use kelviq_core::customer::NewCustomer;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use kelviq_server::AppState;
use kelviq_store::{CounterChange, DocTable, Filter};
use serde_json::{json, Value};
use std::time::Instant;

pub async fn run(
    state: &AppState,
    client: &reqwest::Client,
    base: &str,
    key: &str,
    tenant: &Tenant,
    n: u64,
) -> anyhow::Result<()> {
    seed_plan(client, base, key).await?;
    let plan = state
        .store
        .find_published_plan(tenant, "metered-bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the metered bench plan"))?;
    // Started 40 days ago: every first period ended at the same instant.
    let now = Utc::now();
    let start = now - Duration::days(40);
    let loaded = Instant::now();
    load(state, tenant, &plan, start, n).await?;
    state.store.analyze().await?;
    println!(
        "billing run: loaded {n} subscriptions due at once, usage counted, in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let before = rss_bytes();
    let t = Instant::now();
    let done = kelviq_server::selling::run_due(state, tenant, now, u64::MAX).await?;
    let secs = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    let renewed = [Filter::Eq("status", "PAID".into())];
    let invoices = state.store.count_docs(DocTable::Invoices, tenant, &renewed).await?;
    println!(
        "  {} renewals in {secs:.1} s = {:.0} invoices/s ({invoices} paid invoices in all)",
        done.ran,
        done.ran as f64 / secs.max(1e-9)
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!("  resident memory {:.0} MB → {:.0} MB", b as f64 / 1_048_576.0, a as f64 / 1_048_576.0);
    }
    anyhow::ensure!(done.ran == n, "{} of {n} subscriptions renewed", done.ran);
    Ok(())
}

async fn seed_plan(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<()> {
    let post = |path: &'static str, body: Value| seed_post(client, base, key, path, body);
    let units = json!({"singular": "unit", "plural": "units"});
    for (name, id) in [("Requests", "requests"), ("Storage", "storage")] {
        post(
            "/catalog/features/",
            json!({"name": name, "identifier": id, "featureType": "METER",
            "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
        )
        .await?;
    }
    post("/catalog/plans/", json!({"name": "Metered", "identifier": "metered-bench", "product": "bench"})).await?;
    post(
        "/catalog/plans/metered-bench/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]},
            {"feature": "requests", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "MONTHLY",
                "priceData": {"currency": "USD"}, "tiers": [{"upTo": 1000, "unitAmount": 0, "flatAmount": 0},
                {"upTo": 10000, "unitAmount": 0.002, "flatAmount": 0}, {"upTo": "inf", "unitAmount": 0.001, "flatAmount": 0}]}]},
            {"feature": "storage", "priceModel": "PACKAGE", "paymentType": "PAY_AS_YOU_GO",
                "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 5, "blockSize": 100}}]}]}]}),
    )
    .await?;
    let unlimited = json!({"value": null, "hasUnlimitedUsage": true, "hardLimit": false});
    post(
        "/catalog/plans/metered-bench/features/",
        json!({"planEntitlements": [{"feature": "requests", "details": unlimited}, {"feature": "storage", "details": unlimited}]}),
    )
    .await?;
    post("/catalog/plans/metered-bench/publish/", json!({})).await?;
    Ok(())
}

/// Customers `b0…`, each with a paying card, a monthly subscription started
/// at `start` and usage counted in its first period.
async fn load(
    state: &AppState,
    tenant: &Tenant,
    plan: &kelviq_core::plans::PlanVersion,
    start: DateTime<Utc>,
    n: u64,
) -> anyhow::Result<()> {
    let chunk = 2_000;
    let mut done = 0;
    let period_start = to_micros(start);
    while done < n {
        let mut w = state.store.begin(tenant).await?;
        for i in done..(done + chunk).min(n) {
            let customer = NewCustomer {
                customer_id: format!("b{i}"),
                name: None,
                email: None,
                metadata: json!({}),
                billing_address: None,
            };
            let c = w.insert_customer(&customer, start).await?;
            let card = PaymentMethod {
                customer_uuid: c.id,
                customer_id: c.customer_id.clone(),
                method_type: "card".into(),
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2040,
                funding: "credit".into(),
                country: None,
                sandbox: Some("pays".into()),
                charges: 1,
                status: "active".into(),
                created_at: start,
                modified_at: start,
                provider: None,
            };
            let card_id = w.insert_payment_method(&c.customer_id, &card, true, start).await?;
            let mut sub =
                Subscription::start(c.id, &c.customer_id, plan, ChargePeriod::Monthly, "USD", 1000, Vec::new(), start);
            sub.payment_method_id = Some(card_id);
            w.put_subscription(&sub).await?;
            let usage = [("requests", 5_000 + (i % 20_000) as i64), ("storage", (i % 1_000) as i64)];
            for (feature, value) in usage {
                w.change_counter(&c.customer_id, feature, period_start, &CounterChange::Add(value), start).await?;
            }
        }
        w.commit().await?;
        done = (done + chunk).min(n);
        eprint!("\r  loading billing subscriptions: {done}/{n}");
    }
    eprintln!();
    Ok(())
}
