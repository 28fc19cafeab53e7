//! Issue 27's inbound Stripe webhooks through the real server on SQLite
//! and PostgreSQL: the signature decides which organisation sent an event;
//! an event id is taken once (three deliveries, or eight at once, record
//! it once); a bad signature, another secret, an old timestamp or no
//! header is a 400 that writes nothing; the fake Stripe's own signed
//! delivery is accepted.

use crate::common::{Backend, TestServer};
use kelviq_core::stripe::sign_header;
use kelviq_core::Environment;
use serde_json::{json, Value};

const SECRET_A: &str = "whsec_organisation_a_0001";
const SECRET_B: &str = "whsec_organisation_b_0002";

fn wall() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn deliver(s: &TestServer, env: &str, header: Option<String>, body: &[u8]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(s.url(&format!("/stripe/webhook/{env}"))).body(body.to_vec());
    if let Some(h) = header {
        req = req.header("Stripe-Signature", h);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

fn event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "object": "event", "type": "customer.updated", "created": wall(),
        "data": {"object": {"id": "cus_1", "email": "a@example.com"}}}))
    .unwrap()
}

async fn stripe_webhooks_are_taken_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    kelviq_server::providers::set_stripe(&s.state, &s.tenant, "sk_test_orgA000000001", SECRET_A).await.unwrap();
    let (other, _) = s.other_tenant("other-org", Environment::Sandbox).await;
    kelviq_server::providers::set_stripe(&s.state, &other, "sk_test_orgB000000002", SECRET_B).await.unwrap();

    // Three deliveries of one event: received once.
    let body = event("evt_1");
    for (i, duplicate) in [false, true, true].into_iter().enumerate() {
        let (status, answer) = deliver(&s, "sandbox", Some(sign_header(SECRET_A, wall(), &body)), &body).await;
        assert_eq!((status, answer["duplicate"].clone()), (200, json!(duplicate)), "delivery {i}: {answer}");
    }
    // The same id from the other organisation is that organisation's.
    let (status, answer) = deliver(&s, "sandbox", Some(sign_header(SECRET_B, wall(), &body)), &body).await;
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(false)));

    // Refusals write nothing: the same event, signed properly afterwards, is new.
    let body = event("evt_2");
    let mut changed = body.clone();
    changed.push(b' ');
    let refusals = [
        (Some(sign_header(SECRET_A, wall(), &body)), changed.clone(), "a changed body"),
        (Some(sign_header("whsec_nobody_000000", wall(), &body)), body.clone(), "an unknown secret"),
        (Some(sign_header(SECRET_A, wall() - 301, &body)), body.clone(), "an old timestamp"),
        (Some("t=1,v0=abc".to_string()), body.clone(), "no v1 signature"),
        (None, body.clone(), "no header"),
    ];
    for (header, sent, what) in refusals {
        let (status, answer) = deliver(&s, "sandbox", header, &sent).await;
        assert_eq!(status, 400, "{what}: {answer}");
    }
    let (status, _) = deliver(&s, "production", Some(sign_header(SECRET_A, wall(), &body)), &body).await;
    assert_eq!(status, 400, "the sandbox's secret does not sign for production");
    assert_eq!(deliver(&s, "staging", Some(sign_header(SECRET_A, wall(), &body)), &body).await.0, 404);
    let not_json = b"not json".to_vec();
    assert_eq!(deliver(&s, "sandbox", Some(sign_header(SECRET_A, wall(), &not_json)), &not_json).await.0, 400);
    let (status, answer) = deliver(&s, "sandbox", Some(sign_header(SECRET_A, wall(), &body)), &body).await;
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(false)), "nothing was written by the refusals");

    // Eight deliveries at once: one is the first.
    let body = event("evt_3");
    let sends = (0..8).map(|_| deliver(&s, "sandbox", Some(sign_header(SECRET_A, wall(), &body)), &body));
    let answers = futures::future::join_all(sends).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(answers.iter().filter(|(_, a)| a["duplicate"] == json!(false)).count(), 1, "{answers:?}");

    // The fake Stripe's own delivery, signed its way.
    let fake = fake_stripe::FakeStripe::default();
    fake.start().await.unwrap();
    fake.send_events_to(&s.url("/stripe/webhook/sandbox"), SECRET_A);
    let e = json!({"id": "evt_fake_1", "object": "event", "type": "customer.created", "created": wall(),
        "data": {"object": {"id": "cus_1"}}});
    assert_eq!(fake.deliver(&e).await, Some(200));
    assert_eq!(fake.deliver(&e).await, Some(200), "again: answered 2xx, taken once");
}

on_both_backends!(stripe_webhooks_are_taken_once);
