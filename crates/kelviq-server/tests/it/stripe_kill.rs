//! Issue 27: a process killed between Stripe's answer and our commit. The
//! fake Stripe makes a renewal's charge and never answers; the server is
//! killed with SIGKILL while it waits; the next process renews the
//! subscription with the same attempt key, Stripe replays the charge it
//! made, and the customer is charged once.

use crate::common::process::{kelviq, serve};
use crate::common::{http, Backend, TestDatabase};
use crate::stripe_selling::{pay_on_stripe, SECRET};
use fake_stripe::FakeStripe;
use serde_json::{json, Value};
use std::time::Duration;

async fn call(url: &str, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http().request(method, format!("{url}{path}")).bearer_auth(key).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(res) => (res.status().as_u16(), res.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn must(url: &str, key: &str, path: &str, body: Value) -> Value {
    let (status, v) = call(url, key, reqwest::Method::POST, path, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

async fn orders(url: &str, key: &str) -> Vec<Value> {
    let (_, page) = call(url, key, reqwest::Method::GET, "/api/v1/orders/?page_size=100", None).await;
    page["results"].as_array().cloned().unwrap_or_default()
}

/// A server process selling through the fake Stripe, with kim's monthly
/// `basic` bought on Stripe's page (one charge so far).
struct Rig {
    fake: FakeStripe,
    env: Vec<(&'static str, String)>,
    server: crate::common::process::Served,
    key: String,
    url: String,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

async fn rig(backend: Backend, extra: &[(&'static str, &str)]) -> Rig {
    let fake = FakeStripe::default();
    let stripe = fake.start().await.unwrap();
    let db = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("KELVIQ_STRIPE_API_BASE", stripe),
        ("KELVIQ_SECRET_KEY", "6b656c7669712d6b696c6c2d746573742d7365637265742d6b65792d30303031".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    match backend {
        Backend::Sqlite => env.push(("KELVIQ_DATA_DIR", db.dir().join("data").display().to_string())),
        Backend::Postgres => env.push(("DATABASE_URL", db.url.clone())),
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = serve(&env_refs);
    let key = server.server_key.clone().expect("first start prints the keys");
    let url = server.url.clone();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (secret_file, hook_file) = (file("sk", "sk_test_51KelviqKillTest0001"), file("whsec", SECRET));
    let set = kelviq(&env_refs)
        .args(["providers", "set", "stripe", "--env", "sandbox", "--secret-key-file", &secret_file])
        .args(["--webhook-secret-file", &hook_file])
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    fake.send_events_to(&format!("{url}/stripe/webhook/sandbox"), SECRET);

    must(&url, &key, "/api/v1/catalog/products/", json!({"name": "Kill", "identifier": "kill", "taxCode": "saas"}))
        .await;
    for (plan, period, amount) in [("basic", "MONTHLY", 10), ("once", "ONE_TIME", 25)] {
        must(&url, &key, "/api/v1/catalog/plans/", json!({"name": plan, "identifier": plan, "product": "kill"})).await;
        let prices = json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": period, "priceData": {"amount": amount}}]}]}]});
        must(&url, &key, &format!("/api/v1/catalog/plans/{plan}/prices/bulk/"), prices).await;
        must(&url, &key, &format!("/api/v1/catalog/plans/{plan}/publish/"), json!({})).await;
    }
    let session = must(
        &url,
        &key,
        "/api/v1/checkout/",
        json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "customerId": "kim",
            "successUrl": "https://app.example.com/welcome"}),
    )
    .await;
    let id = session["checkoutSessionId"].as_str().unwrap();
    assert_eq!(pay_on_stripe(&url, id, "kim", "4242424242424242").await, "https://app.example.com/welcome");
    assert_eq!(orders(&url, &key).await.len(), 1);
    assert_eq!(fake.charges_attempted(), 1);
    Rig { fake, env, server, key, url, _db: db, _dir: dir }
}

async fn killed_between_stripe_and_commit(backend: Backend) {
    let Rig { fake, env, mut server, key, url, _db, _dir } = rig(backend, &[]).await;
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, subs) = call(&url, &key, reqwest::Method::GET, "/api/v1/subscriptions/?customer_id=kim", None).await;
    let due = subs["results"][0]["billingPeriodEndTime"].as_str().expect("a renewal date").to_string();

    // The renewal's charge is made at Stripe, and its answer never comes.
    fake.hold_next_charge();
    let advance = {
        let (url, key) = (url.clone(), key.clone());
        let body = json!({"to": due});
        tokio::spawn(
            async move { call(&url, &key, reqwest::Method::POST, "/api/v1/test-clock/advance/", Some(body)).await },
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.charges_attempted() < 2 {
        assert!(std::time::Instant::now() < deadline, "the renewal was not charged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let _ = advance.await;

    // The next process renews it: the same key, Stripe's replay, one charge.
    let server = serve(&env_refs);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let all = orders(&server.url, &key).await;
        if all.len() >= 2 {
            break all;
        }
        // The killed run may have moved the clock, or not.
        let _ =
            call(&server.url, &key, reqwest::Method::POST, "/api/v1/test-clock/advance/", Some(json!({"seconds": 0})))
                .await;
        assert!(std::time::Instant::now() < deadline, "not renewed after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(renewed.len(), 2, "{renewed:?}");
    let renewal: Vec<&Value> = renewed.iter().filter(|o| o["isRenewal"] == json!(true)).collect();
    assert_eq!(renewal.len(), 1, "{renewed:?}");
    assert_eq!(renewal[0]["status"], "COMPLETE");
    assert_eq!(fake.charges_attempted(), 2, "charged once: the retry was answered by Stripe's replay");
    let renewals = fake
        .ledger
        .lock()
        .unwrap()
        .payment_intents
        .values()
        .filter(|pi| pi["metadata"]["kelviq_purpose"].as_str().is_some_and(|p| p.starts_with("renewal:")))
        .count();
    assert_eq!(renewals, 1);
}

/// A request (a one-time charge) whose charge Stripe made and whose
/// process died before committing: no order, and the sweeper refunds the
/// charge nobody used once it is older than the configured delay.
async fn killed_after_a_request_charged(backend: Backend) {
    let mut rig = rig(backend, &[("KELVIQ_PAYMENT_ORPHAN_AFTER_SECONDS", "1")]).await;
    let (url, key) = (rig.url.clone(), rig.key.clone());
    rig.fake.hold_next_charge();
    let charge = {
        let (url, key) = (url.clone(), key.clone());
        let body = json!({"planIdentifier": "once", "chargePeriod": "ONE_TIME", "customerId": "kim"});
        tokio::spawn(async move { call(&url, &key, reqwest::Method::POST, "/api/v1/charges/", Some(body)).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rig.fake.charges_attempted() < 2 {
        assert!(std::time::Instant::now() < deadline, "the charge was not made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.server.child.kill().expect("SIGKILL");
    let _ = rig.server.child.wait();
    assert_eq!(charge.await.unwrap().0, 0, "the request never got an answer");
    let held = {
        let ledger = rig.fake.ledger.lock().unwrap();
        let pi = ledger.payment_intents.values().find(|pi| pi["amount"] == 2500).expect("the charge was made");
        pi["id"].as_str().unwrap().to_string()
    };

    // The next process finds the charge nobody used, and refunds it.
    let server = serve(&rig.env());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let refunds: Vec<Value> = rig.fake.ledger.lock().unwrap().refunds.values().cloned().collect();
        if let Some(r) = refunds.iter().find(|r| r["payment_intent"] == held.as_str()) {
            assert_eq!((r["amount"].clone(), r["status"].clone()), (json!(2500), json!("succeeded")));
            assert_eq!(refunds.len(), 1, "{refunds:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the unused charge was not refunded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(orders(&server.url, &key).await.len(), 1, "no order for the request that died");
    assert_eq!(rig.fake.charges_attempted(), 2);
}

on_both_backends!(killed_between_stripe_and_commit, killed_after_a_request_charged);
