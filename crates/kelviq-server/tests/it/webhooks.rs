//! Webhook delivery through the real server to a real HTTP receiver, on
//! SQLite and PostgreSQL: signatures the SDK verifies, the retry schedule
//! under the test's clock, Retry-After and 410, disabling after days of
//! failures with one notice, recovery, restart, private addresses, secret
//! rotation in both formats, and a slow endpoint delaying no other.

use crate::common::api::Api;
use crate::common::receiver::{Receiver, Reply};
use crate::common::{second_process, Backend, TestServer};
use chrono::{DateTime, Duration, Utc};
use kelviq_core::webhooks::SignatureFormat;
use kelviq_core::Clock;
use serde_json::{json, Value};
use std::time::Duration as StdDuration;

const WAIT: StdDuration = StdDuration::from_secs(20);

async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| {
        c.webhook_allow_subnets = vec!["127.0.0.0/8".into(), "::1/128".into()];
        c.webhook_poll_interval_ms = 25;
        c.webhook_timeout_ms = 2_000;
    })
    .await
}

async fn endpoint(api: &Api<'_>, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({"url": url, "description": "test receiver"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let (status, e) = api.post("/api/v1/webhooks/endpoints/", body).await;
    assert_eq!(status, 201, "{e}");
    let secret = e["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kq_whsec_"), "{secret}");
    (e["id"].as_str().unwrap().to_string(), secret)
}

async fn customer(api: &Api<'_>, id: &str) {
    api.ok("/api/v1/customers/", json!({"customerId": id, "email": format!("{id}@example.com"), "name": id})).await;
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn attempts(api: &Api<'_>, event: &str) -> Vec<Value> {
    let (status, a) = api.get(&format!("/api/v1/webhooks/events/{event}/attempts/")).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["count"].as_u64(), Some(a["results"].as_array().unwrap().len() as u64));
    a["results"].as_array().unwrap().clone()
}

/// Waits until the event has `n` attempts recorded.
async fn wait_attempts(api: &Api<'_>, event: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let a = attempts(api, event).await;
        if a.len() >= n {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "{event}: {} of {n} attempts recorded: {a:?}", a.len());
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Waits until the log shows `n` deliveries attempted (their results recorded).
async fn wait_logged(api: &Api<'_>, n: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, logs) = api.get("/api/v1/webhook/logs/?page_size=1").await;
        if logs["count"].as_u64() >= Some(n) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{logs}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn signed_deliveries_verify_and_are_logged(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    let (endpoint_id, secret) = endpoint(&api, &format!("{}/hook", rx.url), json!({})).await;
    let (_, only) = endpoint(&api, &format!("{}/orders-only", rx.url), json!({"eventTypes": ["order.created"]})).await;
    let _ = only;
    customer(&api, "cus_hook").await;
    let got = rx.wait_for("/hook", 1, WAIT).await;
    let r = &got[0];
    let event = kelviq_sdk::webhooks::validate_event(&r.body, r.header_pairs(), &secret).expect("the SDK verifies it");
    assert_eq!(event["type"], "customer.created");
    assert_eq!(r.header("webhook-id"), event["id"].as_str(), "webhook-id is the event id");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
    assert!(!String::from_utf8_lossy(&r.body).contains(": "), "compact JSON");
    assert_eq!(event["data"]["object"]["customer_id"], "cus_hook");
    assert!(kelviq_sdk::webhooks::validate_event(&r.body, r.header_pairs(), "kq_whsec_wrong").is_err());
    // The endpoint filtered to order.created got nothing.
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(rx.got_on("/orders-only").is_empty());

    let event_id = event["id"].as_str().unwrap();
    let a = wait_attempts(&api, event_id, 1).await;
    assert_eq!(a[0]["statusCode"], 200);
    assert_eq!(a[0]["endpointId"], endpoint_id.as_str());
    assert_eq!(a[0]["nextAttemptAt"], Value::Null);
    let (status, logs) = api.get("/api/v1/webhook/logs/").await;
    assert_eq!(status, 200, "{logs}");
    let row = &logs["results"][0];
    assert_eq!(logs["count"], 1);
    for field in [
        "id",
        "eventId",
        "endpoint",
        "eventType",
        "statusCode",
        "isSuccess",
        "retryCount",
        "lastAttempt",
        "createdOn",
        "payload",
    ] {
        assert!(row.get(field).is_some(), "log rows have {field}: {row}");
    }
    assert_eq!(row["isSuccess"], true);
    assert_eq!(row["retryCount"], 0);
    assert_eq!(row["payload"]["id"], event_id);
    // The events API lists and filters it.
    let (_, events) = api.get("/api/v1/webhooks/events/?type=customer.created&customer_id=cus_hook").await;
    assert_eq!(events["count"], 1, "{events}");
    let (_, none) = api.get("/api/v1/webhooks/events/?customer_id=someone_else").await;
    assert_eq!(none["count"], 0);
    // Resend: the same webhook-id again.
    let (status, queued) =
        api.post(&format!("/api/v1/webhooks/events/{event_id}/resend/"), json!({"endpointId": endpoint_id})).await;
    assert_eq!((status, queued["queued"].as_u64()), (202, Some(1)), "{queued}");
    let again = rx.wait_for("/hook", 2, WAIT).await;
    assert_eq!(again[1].header("webhook-id"), Some(event_id));
    // The secret is never shown again.
    let (_, shown) = api.get(&format!("/api/v1/webhooks/endpoints/{endpoint_id}/")).await;
    assert!(shown.get("secret").is_none(), "{shown}");
    let (_, listed) = api.get("/api/v1/webhooks/endpoints/").await;
    assert_eq!(listed["count"], 2);
    assert!(!listed.to_string().contains("kq_whsec_"));
}

async fn retries_follow_the_schedule(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    rx.script(|n, _| if n <= 3 { Reply::Status(500) } else { Reply::Status(204) });
    endpoint(&api, &format!("{}/flaky", rx.url), json!({})).await;
    customer(&api, "cus_flaky").await;
    let first = rx.wait_for("/flaky", 1, WAIT).await;
    let event_id = first[0].header("webhook-id").unwrap().to_string();
    let schedule = [5i64, 300, 1800];
    for (i, delay) in schedule.iter().enumerate() {
        let a = wait_attempts(&api, &event_id, i + 1).await;
        let last = &a[i];
        assert_eq!(last["statusCode"], 500);
        let (tried, next) = (at(last["attemptedAt"].as_str().unwrap()), at(last["nextAttemptAt"].as_str().unwrap()));
        let waited = (next - tried).num_milliseconds();
        assert!(
            waited >= delay * 800 - 1000 && waited <= delay * 1200 + 1000,
            "attempt {} waits {waited} ms, the schedule says {delay} s ±20 %",
            i + 2
        );
        // Not before it is due.
        s.clock.set(next - Duration::milliseconds(1500));
        tokio::time::sleep(StdDuration::from_millis(150)).await;
        assert_eq!(rx.got_on("/flaky").len(), i + 1, "attempt {} came early", i + 2);
        s.clock.set(next);
        rx.wait_for("/flaky", i + 2, WAIT).await;
    }
    let a = wait_attempts(&api, &event_id, 4).await;
    assert_eq!(a.len(), 4);
    assert_eq!(a[3]["statusCode"], 204);
    let ids: Vec<_> = rx.got_on("/flaky").iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert!(ids.iter().all(|i| *i == event_id), "the same webhook-id on every attempt");
    let (_, logs) = api.get("/api/v1/webhook/logs/").await;
    assert_eq!(logs["results"][0]["retryCount"], 3, "{logs}");
    assert_eq!(logs["results"][0]["isSuccess"], true);
}

async fn retry_after_and_gone(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    endpoint(&api, &format!("{}/busy", rx.url), json!({"eventTypes": ["customer.created"]})).await;
    let (gone_id, _) = endpoint(&api, &format!("{}/gone", rx.url), json!({"eventTypes": ["customer.created"]})).await;
    endpoint(&api, &format!("{}/notices", rx.url), json!({"eventTypes": ["endpoint.disabled"]})).await;
    rx.script(|n, path| match (path, n) {
        ("/busy", 1) => Reply::WithHeader(429, "retry-after", "3600".into()),
        ("/gone", _) => Reply::Status(410),
        _ => Reply::Status(200),
    });
    customer(&api, "cus_busy").await;
    let first = rx.wait_for("/busy", 1, WAIT).await;
    let event_id = first[0].header("webhook-id").unwrap().to_string();
    let a = wait_attempts(&api, &event_id, 2).await;
    let busy = a.iter().find(|a| a["statusCode"] == 429).expect("the 429 attempt");
    let waited = at(busy["nextAttemptAt"].as_str().unwrap()) - at(busy["attemptedAt"].as_str().unwrap());
    assert!(waited >= Duration::seconds(3599), "Retry-After: 3600 is honoured, not the 5 s of the schedule: {waited}");
    // 410 disabled the endpoint at once, with one notice to the endpoint that wants notices.
    let notice = rx.wait_for("/notices", 1, WAIT).await;
    assert_eq!(notice[0].json()["type"], "endpoint.disabled");
    assert_eq!(notice[0].json()["data"]["object"]["id"], gone_id.as_str());
    let (_, gone) = api.get(&format!("/api/v1/webhooks/endpoints/{gone_id}/")).await;
    assert_eq!((gone["enabled"].as_bool(), gone["disabledReason"].as_str()), (Some(false), Some("gone")), "{gone}");
    // A disabled endpoint gets nothing new.
    customer(&api, "cus_after_gone").await;
    rx.wait_for("/busy", 1, WAIT).await;
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(rx.got_on("/gone").len(), 1);
    s.clock.advance(Duration::hours(1) + Duration::seconds(10));
    rx.wait_for("/busy", 2, WAIT).await;
}

async fn failing_endpoint_is_disabled_once_then_recovered(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    rx.script(|_, path| if path == "/down" { Reply::Status(500) } else { Reply::Status(200) });
    let started = s.clock.now();
    let (down, _) = endpoint(&api, &format!("{}/down", rx.url), json!({"eventTypes": ["customer.created"]})).await;
    endpoint(&api, &format!("{}/watcher", rx.url), json!({"eventTypes": ["endpoint.disabled"]})).await;
    for i in 0..32 {
        customer(&api, &format!("cus_down_{i}")).await;
    }
    rx.wait_for("/down", 32, WAIT).await;
    wait_logged(&api, 32).await;
    // Five days later every delivery fails again at the same instant.
    s.clock.advance(Duration::days(5) + Duration::minutes(1));
    let notices = rx.wait_for("/watcher", 1, WAIT).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(rx.got_on("/watcher").len(), 1, "exactly one endpoint.disabled notice");
    assert_eq!(notices[0].json()["data"]["object"]["disabled_reason"], "failing");
    let (_, e) = api.get(&format!("/api/v1/webhooks/endpoints/{down}/")).await;
    assert_eq!(e["enabled"], false, "{e}");
    // Recovery needs the endpoint enabled; then every failed delivery goes again.
    let since = (started - Duration::hours(1)).to_rfc3339();
    let (status, refused) =
        api.post(&format!("/api/v1/webhooks/endpoints/{down}/recover/"), json!({"since": since})).await;
    assert_eq!(status, 400, "{refused}");
    rx.script(|_, _| Reply::Status(200));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let before = rx.got_on("/down").len();
    let (status, _) = api
        .send(reqwest::Method::PATCH, &format!("/api/v1/webhooks/endpoints/{down}/"), Some(json!({"enabled": true})))
        .await;
    assert_eq!(status, 200);
    let (status, queued) =
        api.post(&format!("/api/v1/webhooks/endpoints/{down}/recover/"), json!({"since": since})).await;
    assert_eq!((status, queued["queued"].as_u64()), (202, Some(32)), "{queued}");
    let got = rx.wait_for("/down", before + 32, WAIT).await;
    let mut ids: Vec<_> = got[before..].iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 32, "each of the 32 events once");
}

async fn pending_deliveries_survive_a_restart(backend: Backend) {
    let mut s = server(backend).await;
    let rx = Receiver::start().await;
    // The first attempt hangs past the restart: it is in flight when the process stops.
    rx.script(|n, _| if n == 1 { Reply::Hang(StdDuration::from_secs(60)) } else { Reply::Status(200) });
    let url = format!("{}/slow-then-ok", rx.url);
    {
        let api = Api::new(&s);
        endpoint(&api, &url, json!({})).await;
        customer(&api, "cus_restart").await;
    }
    rx.wait_for("/slow-then-ok", 1, WAIT).await;
    s.restart().await;
    // The new process takes it again once the old lease has ended.
    s.clock.advance(Duration::minutes(30));
    let got = rx.wait_for("/slow-then-ok", 2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let api = Api::new(&s);
    let event = got[1].header("webhook-id").unwrap();
    // The hung attempt timed out while the server stopped (recorded, or not
    // when the process was gone first); the one after the restart succeeded.
    let deadline = std::time::Instant::now() + WAIT;
    while !attempts(&api, event).await.iter().any(|a| a["statusCode"] == 200) {
        assert!(std::time::Instant::now() < deadline, "no successful attempt recorded");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn private_addresses_are_refused(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.webhook_poll_interval_ms = 25).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    let (status, e) = api.post("/api/v1/webhooks/endpoints/", json!({"url": format!("{}/x", rx.url)})).await;
    assert_eq!(status, 400, "{e}");
    assert!(e["url"].is_array(), "{e}");
    for url in ["https://10.0.0.1/x", "https://[::1]/x", "https://[::ffff:127.0.0.1]/x", "https://169.254.169.254/"] {
        let (status, e) = api.post("/api/v1/webhooks/endpoints/", json!({"url": url})).await;
        assert_eq!(status, 400, "{url}: {e}");
    }
    // A name is checked when it is resolved, at connect time.
    let port = rx.url.rsplit(':').next().unwrap();
    let (status, e) =
        api.post("/api/v1/webhooks/endpoints/", json!({"url": format!("https://localhost:{port}/x")})).await;
    assert_eq!(status, 201, "{e}");
    customer(&api, "cus_private").await;
    let (_, events) = api.get("/api/v1/webhooks/events/").await;
    let event = events["results"][0]["id"].as_str().unwrap().to_string();
    let a = wait_attempts(&api, &event, 1).await;
    assert_eq!(a[0]["statusCode"], Value::Null);
    assert!(a[0]["responseExcerpt"].as_str().unwrap().contains("private"), "{a:?}");
    assert!(rx.got().is_empty(), "nothing reached the loopback receiver");
}

fn standard_signatures(r: &crate::common::receiver::Received) -> Vec<String> {
    r.header("webhook-signature").unwrap().split(' ').map(str::to_string).collect()
}

fn standard_verifies(r: &crate::common::receiver::Received, secret: &str) -> bool {
    let id = r.header("webhook-id").unwrap();
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let expected = kelviq_core::webhooks::signature_header(SignatureFormat::Standard, &[secret], id, ts, &r.body);
    standard_signatures(r).contains(&expected)
}

async fn rotation_in_both_formats(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    let (plain, old) = endpoint(&api, &format!("{}/kelviq", rx.url), json!({})).await;
    let (std_id, std_old) =
        endpoint(&api, &format!("{}/standard", rx.url), json!({"signatureFormat": "standard"})).await;
    let (status, rotated) = api.post(&format!("/api/v1/webhooks/endpoints/{plain}/rotate-secret/"), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("kq_whsec_") && new != old);
    let (_, rotated) = api.post(&format!("/api/v1/webhooks/endpoints/{std_id}/rotate-secret/"), json!({})).await;
    let std_new = rotated["secret"].as_str().unwrap().to_string();
    customer(&api, "cus_rotate").await;
    let k = &rx.wait_for("/kelviq", 1, WAIT).await[0];
    assert!(kelviq_sdk::webhooks::validate_event(&k.body, k.header_pairs(), &new).is_ok(), "the new secret signs");
    assert!(kelviq_sdk::webhooks::validate_event(&k.body, k.header_pairs(), &old).is_err(), "one signature only");
    let st = &rx.wait_for("/standard", 1, WAIT).await[0];
    assert_eq!(standard_signatures(st).len(), 2, "both secrets sign during the overlap");
    assert!(standard_verifies(st, &std_new) && standard_verifies(st, &std_old));
    // After the 24 h overlap only the new one signs.
    s.clock.advance(Duration::hours(25));
    customer(&api, "cus_rotate_later").await;
    let st = &rx.wait_for("/standard", 2, WAIT).await[1];
    assert_eq!(standard_signatures(st).len(), 1);
    assert!(standard_verifies(st, &std_new) && !standard_verifies(st, &std_old));
    // A test event goes to the one endpoint asked (deliveries are not
    // ordered without fifo: wait for the later customer's first).
    rx.wait_for("/kelviq", 2, WAIT).await;
    let (status, sent) = api.post(&format!("/api/v1/webhooks/endpoints/{plain}/test/"), json!({})).await;
    assert_eq!(status, 202, "{sent}");
    let t = rx.wait_for("/kelviq", 3, WAIT).await;
    assert!(
        t.iter().any(|r| r.json()["type"] == "webhook.test"),
        "{:?}",
        t.iter().map(|r| r.json()["type"].clone()).collect::<Vec<_>>()
    );
    assert!(rx.got_on("/standard").iter().all(|r| r.json()["type"] != "webhook.test"));
}

async fn a_slow_endpoint_delays_no_other(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.webhook_allow_subnets = vec!["127.0.0.0/8".into()];
        c.webhook_poll_interval_ms = 25;
        c.webhook_timeout_ms = 30_000;
        c.webhook_endpoint_concurrency = 4;
    })
    .await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    rx.script(|_, path| if path == "/slow" { Reply::Hang(StdDuration::from_secs(30)) } else { Reply::Status(200) });
    endpoint(&api, &format!("{}/slow", rx.url), json!({})).await;
    endpoint(&api, &format!("{}/fast", rx.url), json!({})).await;
    let started = std::time::Instant::now();
    for i in 0..40 {
        customer(&api, &format!("cus_iso_{i}")).await;
    }
    let fast = rx.wait_for("/fast", 40, StdDuration::from_secs(10)).await;
    let last = fast.iter().map(|r| r.at).max().unwrap();
    assert!(last - started < StdDuration::from_secs(3), "the fast endpoint had all 40 within {:?}", last - started);
    assert!(rx.got_on("/slow").len() <= 4, "the slow one holds at most its own share in flight");
}

async fn bad_endpoint_input_names_the_field(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://example.com"}), "url"),
        (json!({"url": "https://example.com", "eventTypes": ["no.such"]}), "eventTypes"),
        (json!({"url": "https://example.com", "rateLimit": 0}), "rateLimit"),
        (json!({"url": "https://example.com", "signatureFormat": "svix"}), "signatureFormat"),
        (json!({"url": "https://example.com", "description": "a\u{7}b"}), "description"),
    ] {
        let (status, e) = api.post("/api/v1/webhooks/endpoints/", body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(e[field].is_array(), "{body}: {e}");
    }
    let (_, listed) = api.get("/api/v1/webhooks/endpoints/").await;
    assert_eq!(listed["count"], 0, "nothing was written");
    let (status, _) = api.get("/api/v1/webhooks/endpoints/not-a-uuid/").await;
    assert_eq!(status, 404);
    let client = Api::with_key(&s, &s.client_key);
    let (status, _) = client.get("/api/v1/webhooks/endpoints/").await;
    assert!(status == 401 || status == 403, "client keys cannot manage webhooks: {status}");
}

on_both_backends!(
    signed_deliveries_verify_and_are_logged,
    retries_follow_the_schedule,
    retry_after_and_gone,
    failing_endpoint_is_disabled_once_then_recovered,
    pending_deliveries_survive_a_restart,
    private_addresses_are_refused,
    rotation_in_both_formats,
    a_slow_endpoint_delays_no_other,
    bad_endpoint_input_names_the_field,
    the_sdk_manages_webhooks,
    fifo_keeps_the_order,
    a_resend_during_an_attempt_counts_both,
);

/// Two server processes on one PostgreSQL: 1,000 events, each delivered
/// exactly once to the endpoint, both processes taking part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_deliver_each_event_once() {
    let s = server(Backend::Postgres).await;
    let rx = Receiver::start().await;
    let api = Api::new(&s);
    endpoint(&api, &format!("{}/both", rx.url), json!({"eventTypes": ["customer.created"]})).await;
    let (second_url, stop, task) = second_process(&s).await;
    let http = crate::common::http();
    let mut creates = Vec::new();
    for i in 0..1000 {
        let base = if i % 2 == 0 { s.base_url.clone() } else { second_url.clone() };
        let (http, key) = (http.clone(), s.server_key.clone());
        creates.push(tokio::spawn(async move {
            let res = http
                .post(format!("{base}/api/v1/customers/"))
                .bearer_auth(key)
                .json(&json!({"customerId": format!("cus_two_{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }));
        if creates.len() == 32 {
            for c in creates.drain(..) {
                c.await.unwrap();
            }
        }
    }
    for c in creates {
        c.await.unwrap();
    }
    rx.wait_for("/both", 1000, StdDuration::from_secs(60)).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let got = rx.got_on("/both");
    let mut counts = std::collections::HashMap::new();
    for r in &got {
        *counts.entry(r.header("webhook-id").unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 1000);
    assert!(counts.values().all(|n| *n == 1), "{} deliveries for 1000 events", got.len());
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// Deliveries a process holds longer than a lease (a rate-limited backlog)
/// keep their lease while it lives: the other process never takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_deliveries_keep_their_lease_on_postgres() {
    let s = server(Backend::Postgres).await;
    let rx = Receiver::start().await;
    let api = Api::new(&s);
    // Lease: the 2 s timeout and 5 s; 40 events at 4/s take 10 s.
    endpoint(&api, &format!("{}/slowly", rx.url), json!({"rateLimit": 4, "eventTypes": ["customer.created"]})).await;
    for i in 0..40 {
        customer(&api, &format!("cus_slowly_{i}")).await;
    }
    let (_, stop, task) = second_process(&s).await;
    // The test's clock moves with real time, so leases end as they would.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    while rx.got_on("/slowly").len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        s.clock.advance(Duration::milliseconds(250));
    }
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let got = rx.got_on("/slowly");
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert_eq!((ids.len(), rx.got_on("/slowly").len()), (40, 40), "each event sent once");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A rate limit holds across processes: events written through two servers
/// reach the endpoint no faster than its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_processes_on_postgres() {
    let s = server(Backend::Postgres).await;
    let rx = Receiver::start().await;
    let api = Api::new(&s);
    endpoint(&api, &format!("{}/limited", rx.url), json!({"rateLimit": 5, "eventTypes": ["customer.created"]})).await;
    // Each answer takes 150 ms: a process holds the endpoint at least that
    // long after its last message, so a hand-over never comes closer.
    rx.script(|_, _| Reply::Hang(StdDuration::from_millis(150)));
    let (second_url, stop, task) = second_process(&s).await;
    let http = crate::common::http();
    for i in 0..20 {
        let base = if i % 2 == 0 { &s.base_url } else { &second_url };
        let res = http
            .post(format!("{base}/api/v1/customers/"))
            .bearer_auth(&s.server_key)
            .json(&json!({"customerId": format!("cus_limited_{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let got = rx.wait_for("/limited", 20, StdDuration::from_secs(30)).await;
    // 5 a second: 200 ms apart, never two at once from two processes.
    let gaps: Vec<u128> = got.windows(2).map(|w| (w[1].at - w[0].at).as_millis()).collect();
    assert!(gaps.iter().all(|g| *g >= 100), "gaps between deliveries (ms): {gaps:?}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A fifo endpoint gets a newer event only once the older one succeeded or
/// has kept it waiting 60 s, whichever process holds it (on PostgreSQL,
/// two processes write and deliver).
async fn fifo_keeps_the_order(backend: Backend) {
    let s = server(backend).await;
    let api = Api::new(&s);
    let rx = Receiver::start().await;
    let second = match backend {
        Backend::Postgres => Some(second_process(&s).await),
        Backend::Sqlite => None,
    };
    let bases = [s.base_url.clone(), second.as_ref().map_or(s.base_url.clone(), |(url, _, _)| url.clone())];
    rx.script(|n, _| match n {
        1 => Reply::Status(500),
        4 => Reply::WithHeader(503, "retry-after", "3600".into()),
        _ => Reply::Status(200),
    });
    endpoint(&api, &format!("{}/fifo", rx.url), json!({"fifo": true, "eventTypes": ["customer.created"]})).await;
    let http = crate::common::http();
    let create = |i: usize| {
        let (http, url, key) = (http.clone(), format!("{}/api/v1/customers/", bases[i % 2]), s.server_key.clone());
        async move {
            let res =
                http.post(url).bearer_auth(key).json(&json!({"customerId": format!("cus_fifo_{i}")})).send().await;
            assert_eq!(res.unwrap().status(), 201);
        }
    };
    let ids = |got: &[crate::common::receiver::Received]| -> Vec<String> {
        got.iter().map(|r| r.json()["data"]["object"]["customer_id"].as_str().unwrap().to_string()).collect()
    };
    let quiet = StdDuration::from_millis(400);
    for i in 0..3 {
        create(i).await;
    }
    // The first fails: the others wait for its retry.
    rx.wait_for("/fifo", 1, WAIT).await;
    tokio::time::sleep(quiet).await;
    assert_eq!(ids(&rx.got_on("/fifo")), ["cus_fifo_0"]);
    s.clock.advance(Duration::seconds(7));
    let got = rx.wait_for("/fifo", 4, WAIT).await;
    assert_eq!(ids(&got), ["cus_fifo_0", "cus_fifo_0", "cus_fifo_1", "cus_fifo_2"]);
    // The third is told to come back in an hour: the next waits 60 s, no more.
    create(3).await;
    s.clock.advance(Duration::seconds(30));
    tokio::time::sleep(quiet).await;
    assert_eq!(rx.got_on("/fifo").len(), 4, "a newer event waits for the older one");
    s.clock.advance(Duration::seconds(31));
    let got = rx.wait_for("/fifo", 5, WAIT).await;
    assert_eq!(ids(&got)[4], "cus_fifo_3");
    if let Some((_, stop, task)) = second {
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}

/// The Rust SDK's webhooks module against the server: manage an endpoint,
/// see its delivery, its attempts and the log, resend, and verify with a
/// list of secrets across a rotation.
async fn the_sdk_manages_webhooks(backend: Backend) {
    use kelviq_sdk::webhook_api::{EndpointParams, ListEvents};
    let s = server(backend).await;
    let sdk = s.sdk();
    let hooks = sdk.webhooks();
    let rx = Receiver::start().await;
    let made = hooks
        .create_endpoint(EndpointParams::url(format!("{}/sdk", rx.url)).event_types(&["webhook.test"]))
        .await
        .unwrap();
    let old = made.secret.clone().expect("the secret, shown once");
    assert_eq!(hooks.retrieve_endpoint(&made.id).await.unwrap().secret, None);
    let new = hooks.rotate_secret(&made.id).await.unwrap();
    let event = hooks.test_endpoint(&made.id).await.unwrap();
    let r = &rx.wait_for("/sdk", 1, WAIT).await[0];
    let secrets = [old.as_str(), new.as_str()];
    assert!(kelviq_sdk::validate_event(&r.body, r.header_pairs(), secrets).is_ok(), "either secret of the switch");
    assert!(kelviq_sdk::validate_event(&r.body, r.header_pairs(), old.as_str()).is_err());
    let listed =
        hooks.list_events(ListEvents { event_type: Some("webhook.test".into()), ..Default::default() }).await.unwrap();
    assert_eq!(listed.results[0].id, event);
    assert_eq!(hooks.retrieve_event(&event).await.unwrap().event_type, "webhook.test");
    assert_eq!(hooks.resend(&event, Some(&made.id)).await.unwrap(), 1);
    rx.wait_for("/sdk", 2, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while hooks.attempts(&event).await.unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let logs = hooks.logs(None, None, None).await.unwrap();
    assert_eq!((logs.count, logs.results[0].retry_count, logs.results[0].is_success), (1, 1, true));
    let off =
        hooks.update_endpoint(&made.id, EndpointParams { enabled: Some(false), ..Default::default() }).await.unwrap();
    assert_eq!(off.disabled_reason.as_deref(), Some("manual"));
    hooks.delete_endpoint(&made.id).await.unwrap();
    assert_eq!(hooks.list_endpoints(None).await.unwrap().count, 0);
}

/// A resend while the first attempt is still waiting for its answer: both
/// attempts count in the delivery's log, whichever result is written first.
async fn a_resend_during_an_attempt_counts_both(backend: Backend) {
    use kelviq_sdk::webhook_api::EndpointParams;
    let s = server(backend).await;
    let sdk = s.sdk();
    let hooks = sdk.webhooks();
    let rx = Receiver::start().await;
    rx.script(|n, _| if n == 1 { Reply::Hang(StdDuration::from_millis(800)) } else { Reply::Status(200) });
    let made = hooks
        .create_endpoint(EndpointParams::url(format!("{}/slow", rx.url)).event_types(&["webhook.test"]))
        .await
        .unwrap();
    let event = hooks.test_endpoint(&made.id).await.unwrap();
    rx.wait_for("/slow", 1, WAIT).await;
    assert_eq!(hooks.resend(&event, Some(&made.id)).await.unwrap(), 1);
    rx.wait_for("/slow", 2, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let logs = hooks.logs(None, None, None).await.unwrap();
        let attempts = hooks.attempts(&event).await.unwrap().len();
        if attempts == 2 && logs.results.first().is_some_and(|l| l.retry_count == 1 && l.is_success) {
            assert_eq!(logs.count, 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "attempts {attempts}, log {:?}", logs.results.first());
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}
