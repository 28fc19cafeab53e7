//! The `kelviq` binary as a user runs it: first start on an empty database,
//! keys made and revoked by the CLI while the server runs, PostgreSQL chosen by
//! URL, two server processes on one PostgreSQL, and SIGTERM.

use crate::common;

use common::{http, Backend, TestDatabase};

use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use common::process::{kelviq, serve, serve_with, Served};

fn run(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = kelviq(env).args(args).output().expect("run kelviq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn status_of(url: &str, key: &str) -> u16 {
    http().get(format!("{url}/api/v1/customers/")).bearer_auth(key).send().await.unwrap().status().as_u16()
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "kelviq did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn keys_lifecycle_against_a_running_server(env: &[(&str, &str)]) {
    let mut server = serve(env);
    let demo_key = server.server_key.clone().expect("first start prints a server key");
    assert!(demo_key.starts_with("sk_test_"));
    assert!(server.client_key.as_deref().unwrap().starts_with("ck_test_"));
    assert_eq!(status_of(&server.url, &demo_key).await, 200);

    // A key made by the CLI works at once, without a restart.
    let (ok, stdout, stderr) = run(env, &["keys", "create", "--kind", "server", "--env", "sandbox"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the secret alone on stdout: {stdout:?}");
    let new_key = lines[0].to_string();
    assert!(new_key.starts_with("sk_test_") && new_key.len() > 40);
    assert_eq!(status_of(&server.url, &new_key).await, 200);

    let (ok, client, _) = run(env, &["keys", "create", "--kind", "client"]);
    assert!(ok);
    assert_eq!(status_of(&server.url, client.trim()).await, 403, "client keys cannot use the customers API");
    let (ok, prod, _) = run(env, &["keys", "create", "--kind", "server", "--env", "production"]);
    assert!(ok && prod.starts_with("sk_live_"));

    let (ok, listing, _) = run(env, &["keys", "list"]);
    assert!(ok);
    assert!(listing.contains(&new_key[..12]), "{listing}");
    for secret in [&demo_key, &new_key, &prod.trim().to_string()] {
        assert!(!listing.contains(secret.as_str()), "keys list never shows a secret");
    }
    assert_eq!(listing.lines().count(), 1 + 5, "{listing}");

    let (ok, _, stderr) = run(env, &["keys", "revoke", &new_key[..12]]);
    assert!(ok, "{stderr}");
    // The server caches resolved keys for 60 s; the change feed carries the
    // revocation to it within a tick, well inside this deadline.
    let deadline = Instant::now() + Duration::from_secs(3);
    while status_of(&server.url, &new_key).await != 401 {
        assert!(Instant::now() < deadline, "revoked key still accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of(&server.url, &demo_key).await, 200);
    let (ok, listing, _) = run(env, &["keys", "list"]);
    assert!(ok && listing.contains("revoked"), "{listing}");
    let (ok, _, stderr) = run(env, &["keys", "revoke", "sk_nothing"]);
    assert!(!ok && stderr.contains("no key"), "{stderr}");

    let status = sigterm(&mut server.child);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    drop(server);

    // A second start on the same database creates nothing and prints no keys.
    let mut again = serve(env);
    assert!(again.server_key.is_none());
    assert_eq!(status_of(&again.url, &demo_key).await, 200);
    sigterm(&mut again.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_dir_first_start_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    keys_lifecycle_against_a_running_server(&[("KELVIQ_DATA_DIR", data)]).await;
    assert!(dir.path().join("data/kelviq.db").is_file(), "the default database lives in KELVIQ_DATA_DIR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_url_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/dir/custom.db");
    let url = format!("sqlite://{}", file.display());
    let (ok, _, stderr) = run(&[("DATABASE_URL", &url)], &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("sqlite"));
    assert!(file.is_file(), "a missing SQLite file and its directories are created");
    let (ok, config, _) = run(&[("DATABASE_URL", &url)], &["config"]);
    assert!(ok && config.contains(&url), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_by_url_first_start_and_keys() {
    let db = TestDatabase::new(Backend::Postgres).await;
    keys_lifecycle_against_a_running_server(&[("DATABASE_URL", &db.url)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    // Both start at once on an empty database: migrations and the demo
    // organisation happen exactly once.
    let url = db.url.clone();
    let url2 = db.url.clone();
    let first = std::thread::spawn(move || serve(&[("DATABASE_URL", &url)]));
    let second = std::thread::spawn(move || serve(&[("DATABASE_URL", &url2)]));
    let (mut one, mut two) = (first.join().unwrap(), second.join().unwrap());
    let keys: Vec<String> = [&one, &two].iter().filter_map(|s| s.server_key.clone()).collect();
    assert_eq!(keys.len(), 1, "exactly one process bootstraps the demo organisation");
    let key = &keys[0];
    let (ok, orgs, _) = run(&env, &["orgs", "list"]);
    assert!(ok);
    assert_eq!(orgs.lines().count(), 1, "{orgs}");

    let created = http()
        .post(format!("{}/api/v1/customers/", one.url))
        .bearer_auth(key)
        .json(&serde_json::json!({"customerId": "shared", "email": "s@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let read = http().get(format!("{}/api/v1/customers/shared/", two.url)).bearer_auth(key).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let dup = http()
        .post(format!("{}/api/v1/customers/", two.url))
        .bearer_auth(key)
        .json(&serde_json::json!({"customerId": "shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 400, "uniqueness holds across processes");

    // A key revoked by the CLI stops working on every process at once,
    // although each has it cached (for 60 s) after using it.
    let (ok, new_key, _) = run(&env, &["keys", "create", "--kind", "server"]);
    assert!(ok);
    let new_key = new_key.trim().to_string();
    assert_eq!(status_of(&one.url, &new_key).await, 200);
    assert_eq!(status_of(&two.url, &new_key).await, 200);
    assert!(run(&env, &["keys", "revoke", &new_key[..12]]).0);
    let revoked_at = Instant::now();
    for server in [&one.url, &two.url] {
        while status_of(server, &new_key).await != 401 {
            assert!(revoked_at.elapsed() < Duration::from_secs(3), "{server} still accepts a revoked key");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("revocation reached both processes in {:?}", revoked_at.elapsed());

    // Entitlement state is kept in each process's memory; a subscription or a
    // usage report written through one process reaches the other's checks
    // within 100 ms (the change feed, woken by LISTEN/NOTIFY).
    metered_plan(&one.url, key).await;
    assert_eq!(usage_of(two.url.clone(), key).await, None, "process two caches: no entitlements yet");
    buy_plan(&one.url, key).await;
    let bought = Instant::now();
    while usage_of(two.url.clone(), key).await != Some(0) {
        assert!(bought.elapsed() < Duration::from_millis(500), "process two does not see the purchase");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen_purchase = bought.elapsed();
    post_ok(
        &one.url,
        key,
        "/api/v1/report/usage/",
        serde_json::json!({"customerId": "shared", "featureId": "calls", "value": 42, "behaviour": "SET"}),
    )
    .await;
    let reported = Instant::now();
    while usage_of(two.url.clone(), key).await != Some(42) {
        assert!(reported.elapsed() < Duration::from_millis(500), "process two does not see the usage");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen_usage = reported.elapsed();
    eprintln!("process two saw the purchase after {seen_purchase:?} and the usage after {seen_usage:?}");
    assert!(seen_purchase < Duration::from_millis(100) && seen_usage < Duration::from_millis(100));

    // A process has applied its own usage writes already: their wake-ups
    // make the other process read the feed, not the writer (which reads it
    // once a second as a backstop).
    let feed_reads = |base: String| async move {
        let text = http().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("change_feed_reads_total ").map(|v| v.trim().parse::<f64>().unwrap() as u64))
            .unwrap_or(0)
    };
    let (one_before, two_before) = (feed_reads(one.url.clone()).await, feed_reads(two.url.clone()).await);
    let started = Instant::now();
    for _ in 0..50 {
        post_ok(
            &one.url,
            key,
            "/api/v1/report/usage/",
            serde_json::json!({"customerId": "shared", "featureId": "calls", "value": 1, "behaviour": "DELTA"}),
        )
        .await;
    }
    while usage_of(two.url.clone(), key).await != Some(92) {
        assert!(started.elapsed() < Duration::from_secs(10), "process two does not see the reports");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs();
    let one_reads = feed_reads(one.url.clone()).await - one_before;
    let two_reads = feed_reads(two.url.clone()).await - two_before;
    eprintln!(
        "50 reports through process one in {:?}: feed reads {one_reads} there, {two_reads} on process two",
        started.elapsed()
    );
    assert!(one_reads <= seconds + 2, "the writer read the feed {one_reads} times in {seconds} s");
    // Wake-ups within 5 ms of each other are sent as one; the backstop alone
    // would read once a second.
    assert!(two_reads >= 3, "process two read the feed only {two_reads} times");

    // Raw events counted through one process reach the other's checks within
    // 100 ms too; sent again (same keys), through either, they count nothing.
    let at = kelviq_core::timefmt::report_timestamp(chrono::Utc::now());
    let events: Vec<serde_json::Value> = (0..30)
        .map(|i| serde_json::json!({"customerId": "shared", "eventName": "api.call", "idempotencyKey": format!("e{i}"), "timestamp": at}))
        .collect();
    let batch = serde_json::json!({ "events": events });
    assert_eq!(feature_usage_of(two.url.clone(), key, "requests").await, Some(0));
    post_ok(&one.url, key, "/api/v1/report/events/batch/", batch.clone()).await;
    let sent = Instant::now();
    while feature_usage_of(two.url.clone(), key, "requests").await != Some(30) {
        assert!(sent.elapsed() < Duration::from_millis(500), "process two does not see the events");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen_events = sent.elapsed();
    eprintln!("process two saw 30 events after {seen_events:?}");
    assert!(seen_events < Duration::from_millis(100));
    for base in [&one.url, &two.url] {
        let again = post_ok(base, key, "/api/v1/report/events/batch/", batch.clone()).await;
        assert_eq!((again["accepted"].as_i64(), again["duplicates"].as_i64()), (Some(0), Some(30)), "{again}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for base in [&one.url, &two.url] {
        assert_eq!(feature_usage_of(base.clone(), key, "requests").await, Some(30), "repeats count nothing");
    }
    sigterm(&mut one.child);
    sigterm(&mut two.child);
}

/// Posts `body` and returns the JSON answer, asserting success.
async fn post_ok(base: &str, key: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let res = http().post(format!("{base}{path}")).bearer_auth(key).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json::<serde_json::Value>().await.unwrap()
}

/// Publishes plan `p`, granting 100 `calls` (reported) and 1,000 `requests`
/// (counted raw events), hard limits that never reset.
async fn metered_plan(base: &str, key: &str) {
    let units = serde_json::json!({"singular": "u", "plural": "u"});
    post_ok(
        base,
        key,
        "/api/v1/catalog/products/",
        serde_json::json!({"name": "P", "identifier": "p", "taxCode": "saas"}),
    )
    .await;
    post_ok(base, key, "/api/v1/catalog/features/", serde_json::json!({"name": "Calls", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}})).await;
    let count = serde_json::json!({"aggregation": {"function": "COUNT"}, "filters": []});
    post_ok(base, key, "/api/v1/catalog/features/", serde_json::json!({"name": "Requests", "featureType": "METER", "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units}, "meter": count})).await;
    post_ok(base, key, "/api/v1/catalog/plans/", serde_json::json!({"name": "P", "identifier": "p", "product": "p"}))
        .await;
    post_ok(
        base,
        key,
        "/api/v1/catalog/plans/p/prices/bulk/",
        serde_json::json!({"prices": [{"priceType": "FREE", "currency": "USD"}]}),
    )
    .await;
    post_ok(
        base,
        key,
        "/api/v1/catalog/plans/p/features/",
        serde_json::json!({"planEntitlements": [
        {"feature": "calls", "details": {"value": 100, "reset": "NEVER", "hardLimit": true}},
        {"feature": "requests", "details": {"value": 1000, "reset": "NEVER", "hardLimit": true}}]}),
    )
    .await;
    post_ok(base, key, "/api/v1/catalog/plans/p/publish/", serde_json::json!({})).await;
}

/// Customer `shared` buys plan `p` through the hosted checkout.
async fn buy_plan(base: &str, key: &str) {
    let session = post_ok(base, key, "/api/v1/checkout/", serde_json::json!({"planIdentifier": "p", "chargePeriod": "ONE_TIME", "customerId": "shared", "successUrl": "https://x.example/"})).await;
    let id = session["checkoutSessionId"].as_str().unwrap();
    post_ok(base, key, &format!("/api/v1/checkout/sessions/{id}/complete/"), serde_json::json!({})).await;
}

/// The usage of customer `shared`'s `calls` as a process reports it.
async fn usage_of(base: String, key: &str) -> Option<i64> {
    feature_usage_of(base, key, "calls").await
}

/// The usage of one of customer `shared`'s features as a process reports it.
async fn feature_usage_of(base: String, key: &str, feature: &str) -> Option<i64> {
    let v: serde_json::Value = http()
        .get(format!("{base}/api/v1/entitlements/?customer_id=shared&feature_id={feature}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["entitlements"].as_array().and_then(|rows| rows.first()).map(|r| r["currentUsage"].as_i64().unwrap_or(-1))
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([name, &child.id().to_string()]).status().unwrap().success());
}

/// Two processes on one database, plan `p` published and bought by
/// customer `shared`; and the server key.
async fn two_processes_with_plan(env: &[(&str, &str)]) -> (Served, Served, String) {
    let one = serve(env);
    let key = one.server_key.clone().expect("first start prints a server key");
    let two = serve(env);
    metered_plan(&one.url, &key).await;
    buy_plan(&one.url, &key).await;
    (one, two, key)
}

/// Reports one raw event of customer `shared` (feature `requests` counts them).
async fn report_event(base: &str, key: &str, idempotency_key: &str) -> reqwest::StatusCode {
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let body = serde_json::json!({"customerId": "shared", "eventName": "hit", "idempotencyKey": idempotency_key, "timestamp": ts});
    http().post(format!("{base}/api/v1/report/event/")).bearer_auth(key).json(&body).send().await.unwrap().status()
}

/// PostgreSQL closes every connection of the database (as a restart or a
/// failover does) right after the processes used them: the next requests
/// succeed, nothing is counted twice, and the change feed carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_closed_are_replaced() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let (mut one, mut two, key) = two_processes_with_plan(&env).await;
    let key = key.as_str();
    for (i, server) in [&one.url, &two.url].into_iter().enumerate() {
        assert_eq!(report_event(server, key, &format!("before-{i}")).await, 200);
    }

    let admin = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let closed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert!(closed.len() >= 4, "both processes had connections open: {closed:?}");

    // At once, while each usage writer's connection counts as in steady use.
    for (i, server) in [&one.url, &two.url].into_iter().enumerate() {
        assert_eq!(
            report_event(server, key, &format!("after-{i}")).await,
            200,
            "a request after the connections closed"
        );
        assert_eq!(report_event(server, key, &format!("after-{i}")).await, 200, "its repeat");
    }
    post_ok(&two.url, key, "/api/v1/customers/", serde_json::json!({"customerId": "late"})).await;
    let started = Instant::now();
    for server in [&one.url, &two.url] {
        while feature_usage_of(server.clone(), key, "requests").await != Some(4) {
            assert!(started.elapsed() < Duration::from_secs(5), "{server} does not count the four events once each");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sigterm(&mut one.child);
    sigterm(&mut two.child);
}

/// A TCP proxy in front of PostgreSQL that, once armed, loses the answer
/// to one of the usage writers' statements (the one whose text holds the
/// marker): the database runs and commits it, and the proxy closes that
/// connection instead of passing the answer on. It does so on as many
/// connections as it was armed for.
struct LosingProxy {
    url: String,
    armed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// PostgreSQL's frontend messages, split as they arrive: the untyped
/// startup message first, then a type byte and a length each.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
    started: bool,
}

impl Frames {
    /// The complete messages (type, whole message) that `bytes` ends.
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let (kind, at) = if self.started { (self.buf.first().copied(), 1) } else { (Some(0), 0) };
            let Some(kind) = kind else { break };
            let Some(len) = self.buf.get(at..at + 4) else { break };
            let end = at + u32::from_be_bytes(len.try_into().unwrap()) as usize;
            if self.buf.len() < end {
                break;
            }
            out.push((kind, self.buf.drain(..end).collect()));
            self.started = true;
        }
        out
    }
}

impl LosingProxy {
    async fn start(database_url: &str, marker: &'static str) -> LosingProxy {
        use std::sync::atomic::Ordering;
        let mut upstream = url::Url::parse(database_url).unwrap();
        let target = format!("{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        upstream.set_port(Some(listener.local_addr().unwrap().port())).unwrap();
        upstream.set_host(Some("127.0.0.1")).unwrap();
        upstream.query_pairs_mut().append_pair("sslmode", "disable");
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, l) = (armed.clone(), lost.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&target).await.unwrap();
                let (armed, lost) = (a.clone(), l.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    // Set once this connection's client executed the doomed statement.
                    let executed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let seen = executed.clone();
                    let up = async move {
                        let (mut frames, mut doomed, mut buf) = (Frames::default(), false, vec![0u8; 65536]);
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            for (kind, message) in frames.feed(&buf[..n]) {
                                let text = String::from_utf8_lossy(&message);
                                if kind == b'P'
                                    && text.contains("INSERT INTO usage_events")
                                    && text.contains(marker)
                                    && armed
                                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                                        .is_ok()
                                {
                                    doomed = true;
                                }
                                if kind == b'E' && doomed {
                                    seen.store(true, Ordering::SeqCst);
                                }
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // The answer after the statement's Sync, sent once it committed.
                            if executed.load(Ordering::SeqCst) {
                                lost.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Either side ending closes both.
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        LosingProxy { url: upstream.to_string(), armed, lost }
    }
}

/// The statement that stores and counts events (each process counts them
/// as stored when several share the database).
const COUNTING: &str = "announced AS";
/// The statement that stores events with their additions deferred (the
/// one process on a database defers counters).
const DEFERRING: &str = "FOR KEY SHARE";

/// The database commits a group of events and the answer never reaches the
/// server (the connection closes): the statement runs again on another
/// connection and finds the events stored. They count once, in the
/// database and in this process's answers, which ask the database again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_whose_commit_answer_was_lost_count_once() {
    answers_lost_after_commit(1, COUNTING).await;
}

/// As above, and the second run's answer is lost too: the request fails
/// (it was not acknowledged), and its retry finds the event stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_whose_commit_answers_were_lost_twice_count_once() {
    answers_lost_after_commit(2, COUNTING).await;
}

/// The same while the process defers counters: the lost commit's events
/// are stored without their sums in memory, so the process takes the
/// counters over again from the database and runs the request again,
/// which finds its event stored. It counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_events_whose_commit_answer_was_lost_count_once() {
    answers_lost_after_commit(1, DEFERRING).await;
}

/// As above, and the run after the takeover loses its answer too: not
/// acknowledged, and the retry finds the event stored and counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_events_whose_commit_answers_were_lost_twice_count_once() {
    answers_lost_after_commit(2, DEFERRING).await;
}

/// Loses the answers of the first `lose` runs of the usage writers'
/// statement named by `marker` (each on a connection of its own), then
/// checks the counts. For the counting statement a second process shares
/// the database from the start (so neither defers).
async fn answers_lost_after_commit(lose: usize, marker: &'static str) {
    use std::sync::atomic::Ordering;
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = LosingProxy::start(&db.url, marker).await;
    let mut one = serve(&[("DATABASE_URL", proxy.url.as_str())]);
    let key = one.server_key.clone().expect("first start prints a server key");
    let key = key.as_str();
    let mut two = (marker == COUNTING).then(|| serve(&[("DATABASE_URL", db.url.as_str())]));
    if two.is_some() {
        // Listening before it has the usage lock: wait for the handover.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        wait_for_mode(&pool, |deferring, _| deferring == 0).await;
    }
    metered_plan(&one.url, key).await;
    buy_plan(&one.url, key).await;
    assert_eq!(feature_usage_of(one.url.clone(), key, "requests").await, Some(0));

    // Armed before the first event: the statement's text goes to the
    // database once per connection, when it is first prepared there.
    proxy.armed.store(lose, Ordering::SeqCst);
    let status = report_event(&one.url, key, "lost").await;
    assert_eq!(proxy.lost.load(Ordering::SeqCst), lose, "the proxy lost the statement's answers");
    if lose == 1 {
        assert_eq!(status, 200, "the event whose answer was lost, stored by the statement's first run");
    } else {
        assert!(status.is_server_error(), "a request whose every run lost its answer is not acknowledged: {status}");
    }
    assert_eq!(report_event(&one.url, key, "lost").await, 200, "its repeat");
    assert_eq!(feature_usage_of(one.url.clone(), key, "requests").await, Some(1), "this process counts it");
    assert_eq!(report_event(&one.url, key, "after").await, 200);
    assert_eq!(feature_usage_of(one.url.clone(), key, "requests").await, Some(2));
    // With the deferring one running, a second process starting makes it
    // hand over: fold what it deferred and count as it stores from then on.
    let mut two = two.take().unwrap_or_else(|| serve(&[("DATABASE_URL", db.url.as_str())]));
    let started = Instant::now();
    while feature_usage_of(two.url.clone(), key, "requests").await != Some(2) {
        assert!(started.elapsed() < Duration::from_secs(2), "the database does not count it once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigterm(&mut one.child);
    sigterm(&mut two.child);
}

/// Usage rows stay in the change feed only minutes (here 3 s). A process
/// that could not read the feed for most of that time (stopped here with
/// SIGSTOP) may have missed usage whose rows were pruned meanwhile: it
/// builds every customer's state again rather than answer from stale state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_missed_pruned_usage_rows_builds_its_state_again() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let env = [("DATABASE_URL", db.url.as_str()), ("KELVIQ_CHANGE_FEED_USAGE_RETENTION_SECONDS", "3")];
    let (mut one, mut two, key) = two_processes_with_plan(&env).await;
    let key = key.as_str();
    let started = Instant::now();
    while usage_of(two.url.clone(), key).await != Some(0) {
        assert!(started.elapsed() < Duration::from_secs(2), "process two does not see the purchase");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    signal(&two.child, "-STOP");
    let stopped = Instant::now();
    let body = serde_json::json!({"customerId": "shared", "featureId": "calls", "value": 42, "behaviour": "SET"});
    post_ok(&one.url, key, "/api/v1/report/usage/", body).await;
    // Wait until process one has pruned the usage row the report wrote.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let feed_rows = |pool: sqlx::AnyPool| async move {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM change_feed WHERE topic = 'usage'")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    assert_eq!(feed_rows(pool.clone()).await, 1, "the report is announced in the feed");
    while feed_rows(pool.clone()).await > 0 {
        assert!(stopped.elapsed() < Duration::from_secs(15), "the usage row is not pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    eprintln!("usage row pruned {:?} after the report", stopped.elapsed());

    signal(&two.child, "-CONT");
    let resumed = Instant::now();
    while usage_of(two.url.clone(), key).await != Some(42) {
        assert!(resumed.elapsed() < Duration::from_secs(5), "process two answers from state that missed the report");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("process two saw the report {:?} after it resumed", resumed.elapsed());
    sigterm(&mut one.child);
    sigterm(&mut two.child);
}

#[test]
fn config_reports_redacted_effective_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kelviq.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\nlog_format = \"json\"\n").unwrap();
    let (ok, out, _) = run(
        &[
            ("KELVIQ_CONFIG", file.to_str().unwrap()),
            ("DATABASE_URL", "postgres://app:s3cret@db.internal/kelviq"),
            ("KELVIQ_BODY_LIMIT_BYTES", "1234"),
        ],
        &["config"],
    );
    assert!(ok);
    assert!(out.contains("listen = \"127.0.0.1:9999\""), "{out}");
    assert!(out.contains("log_format = \"json\""), "{out}");
    assert!(out.contains("body_limit_bytes = 1234"), "{out}");
    assert!(out.contains("postgres://app:***@db.internal/kelviq"), "{out}");
    assert!(!out.contains("s3cret"));
    let (ok, _, err) = run(&[("DATABASE_URL", "mysql://x")], &["migrate"]);
    assert!(!ok && err.contains("unsupported scheme"), "{err}");
}

/// Issue 27's configuration: a Stripe key per environment, its mode
/// checked against the environment, both secrets sealed (the database file
/// holds neither), shown only as a hint, removable.
#[test]
fn payment_providers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("KELVIQ_DATA_DIR", data.to_str().unwrap())];
    let (ok, _, err) = run(&env, &["migrate"]);
    assert!(ok, "{err}");
    let (test_key, live_key, hook) =
        ("sk_test_51SecretTestKey0000abcd", "sk_live_51SecretLiveKey0000wxyz", "whsec_SigningSecret0000");
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{text}\n")).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (test, live, hook_file) = (file("test.key", test_key), file("live.key", live_key), file("hook", hook));
    let set = |env_name: &str, key: &str| {
        run(
            &env,
            &[
                "providers",
                "set",
                "stripe",
                "--env",
                env_name,
                "--secret-key-file",
                key,
                "--webhook-secret-file",
                &hook_file,
            ],
        )
    };
    let (ok, _, err) = set("sandbox", &live);
    assert!(!ok && err.contains("a live key (sk_live_…) cannot serve the sandbox"), "{err}");
    let (ok, _, err) = set("production", &test);
    assert!(!ok && err.contains("cannot serve production"), "{err}");
    let bad_hook = file("bad", "not-a-secret");
    let (ok, _, err) = run(
        &env,
        &[
            "providers",
            "set",
            "stripe",
            "--env",
            "sandbox",
            "--secret-key-file",
            &test,
            "--webhook-secret-file",
            &bad_hook,
        ],
    );
    assert!(!ok && err.contains("whsec_"), "{err}");
    let (ok, out, err) = set("sandbox", &test);
    assert!(ok, "{err}");
    assert!(out.contains("sandbox: stripe (sk_test_…abcd)"), "{out}");
    let (ok, out, err) = set("production", &live);
    assert!(ok, "{err}");
    let (ok, shown, _) = run(&env, &["providers", "show"]);
    assert!(
        ok && shown.contains("production: stripe (sk_live_…wxyz)") && shown.contains("sandbox: stripe (sk_test_…abcd)"),
        "{shown}"
    );
    for secret in [test_key, live_key, hook] {
        assert!(!shown.contains(secret) && !out.contains(secret), "secrets are never printed");
        for entry in std::fs::read_dir(&data).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is sealed at rest");
        }
    }
    let (ok, out, _) = run(&env, &["providers", "remove", "--env", "production"]);
    assert!(ok && out.contains("provider removed"), "{out}");
    let (ok, shown, _) = run(&env, &["providers", "show"]);
    assert!(ok && shown.contains("production: none (payments are refused)"), "{shown}");
}

#[test]
fn catalog_apply_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("KELVIQ_DATA_DIR", data.to_str().unwrap())];
    let file = dir.path().join("catalog.toml");
    std::fs::write(
        &file,
        r#"
[[products]]
identifier = "suite"
name = "Suite"
tax_code = "saas"

[[features]]
identifier = "seats"
name = "Seats"
type = "CUSTOMIZABLE"

[[plans]]
identifier = "team"
name = "Team"
product = "suite"
published = true

[[plans.prices]]
price_type = "PAID"
currency = "EUR"

[[plans.prices.charge_catalog_price]]
[[plans.prices.charge_catalog_price.charges]]
charge_period = "MONTHLY"
price_data = { amount = 12.5 }

[[plans.features]]
feature = "seats"
value = 10
"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = run(&env, &["catalog", "apply", path, "--env", "production", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("would create product suite") && out.contains("would publish plan team"), "{out}");
    let (ok, out, _) = run(&env, &["catalog", "export", "--env", "production"]);
    assert!(ok && !out.contains("suite"), "a dry run writes nothing: {out}");
    let (ok, out, err) = run(&env, &["catalog", "apply", path, "--env", "production"]);
    assert!(ok, "{err}");
    assert!(out.contains("did create plan team") && out.contains("did publish plan team"), "{out}");
    let (ok, out, _) = run(&env, &["catalog", "apply", path, "--env", "production"]);
    assert!(ok && out.starts_with("no changes"), "{out}");
    let (ok, exported, _) = run(&env, &["catalog", "export", "--env", "production"]);
    assert!(ok);
    assert!(exported.contains("amount = 12.5") && exported.contains("published = true"), "{exported}");
    let (ok, sandbox, _) = run(&env, &["catalog", "export"]);
    assert!(ok && !sandbox.contains("suite"), "environments are separate");
    std::fs::write(&file, "[[products]]\nidentifier = \"x\"\nname = \"X\"\ntax_code = \"food\"\n").unwrap();
    let (ok, _, err) = run(&env, &["catalog", "apply", path, "--env", "production"]);
    assert!(!ok && err.contains("taxCode"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_never_carry_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    // A database URL with a password in it (trust auth ignores it), to prove
    // it is redacted in logs.
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some("hunter2")).unwrap();
    let url = url.to_string();
    let env = [
        ("KELVIQ_DATA_DIR", data.to_str().unwrap()),
        ("KELVIQ_LOG_FORMAT", "json"),
        ("KELVIQ_LOG", "debug,sqlx=warn,hyper=warn,h2=warn"),
        ("DATABASE_URL", url.as_str()),
    ];
    let mut server = serve_with(&env, Stdio::from(std::fs::File::create(&log).unwrap()));
    let key = server.server_key.clone().unwrap();
    let client_key = server.client_key.clone().unwrap();
    assert_eq!(status_of(&server.url, &key).await, 200);
    assert_eq!(status_of(&server.url, "sk_test_wrong_secret_in_a_header").await, 401);
    let r = http()
        .post(format!("{}/api/v1/customers/", server.url))
        .bearer_auth(&key)
        .json(&serde_json::json!({"customerId": "logged", "email": "l@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(sigterm(&mut server.child).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{line}");
    }
    assert!(text.contains("customer created"), "request logs are there: {text}");
    // A line logged while serving a request carries the request's context.
    let created: serde_json::Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "customer created")
        .expect("the customer created line");
    let span = &created["span"];
    assert_eq!(span["name"], "request", "{created}");
    assert_eq!(span["method"], "POST", "{created}");
    assert_eq!(span["route"], "/api/v1/customers", "{created}");
    assert!(span["org"].is_i64(), "the caller's organisation: {created}");
    for secret in [key.as_str(), client_key.as_str(), "sk_test_wrong_secret_in_a_header", "hunter2"] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret}");
    }
}

/// Sends `n` raw events of customer `shared` with keys `{prefix}{i}` in
/// batches of 25 through `base`, sending a batch again (same keys) until it
/// is acknowledged.
async fn send_events(base: &str, key: &str, prefix: &str, n: usize) {
    let at = kelviq_core::timefmt::report_timestamp(chrono::Utc::now());
    for start in (0..n).step_by(25) {
        let events: Vec<serde_json::Value> = (start..(start + 25).min(n))
            .map(|i| serde_json::json!({"customerId": "shared", "eventName": "api.call", "idempotencyKey": format!("{prefix}{i}"), "timestamp": at}))
            .collect();
        let body = serde_json::json!({ "events": events });
        let mut tries = 0;
        loop {
            let answer = http()
                .post(format!("{base}/api/v1/report/events/batch/"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            if answer.status().is_success() {
                break;
            }
            tries += 1;
            assert!(tries < 50, "a batch is never acknowledged: {}", answer.status());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How usage counters are kept now: how many writers defer (0: none) and
/// the epoch; and the counter row of customer `shared`'s feature `requests`.
async fn usage_mode(pool: &sqlx::AnyPool) -> (i64, i64, i64) {
    let row: (i32, i64) =
        sqlx::query_as("SELECT deferring, epoch FROM usage_folds WHERE id = 1").fetch_one(pool).await.unwrap();
    let stored: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(value) AS BIGINT) FROM usage_counters WHERE customer_id = 'shared' AND feature = 'requests'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (row.0.into(), row.1, stored.unwrap_or(0))
}

/// Waits (up to 15 s) until the usage mode, (deferring writers, epoch), passes `test`.
async fn wait_for_mode(pool: &sqlx::AnyPool, test: impl Fn(i64, i64) -> bool) {
    let started = Instant::now();
    loop {
        let (deferring, epoch, _) = usage_mode(pool).await;
        if test(deferring, epoch) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "usage mode stays ({deferring}, {epoch})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `base` counts `want` events of feature `requests` (within `limit`).
async fn wait_for_usage(base: &str, key: &str, want: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = feature_usage_of(base.to_string(), key, "requests").await;
        if now == Some(want) {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{base} counts {now:?} events, not {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One process alone on the database defers counters (the rows lag behind
/// its answers until it folds). A second process starting makes it hand
/// over: from then on both count each event as it is stored and see each
/// other's within 100 ms. Alone again, the first takes ownership back; and
/// killed with SIGKILL while deferring, what it deferred is folded by the
/// next process to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_alone_defers_counters_and_hands_over_to_a_second() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    // Folds far apart, so the deferral shows in the rows.
    let env = [("DATABASE_URL", db.url.as_str()), ("KELVIQ_USAGE_FOLD_INTERVAL_MS", "60000")];
    let mut one = serve(&env);
    let key = one.server_key.clone().expect("first start prints a server key");
    let key = key.as_str();
    metered_plan(&one.url, key).await;
    buy_plan(&one.url, key).await;
    send_events(&one.url, key, "a", 100).await;
    wait_for_usage(&one.url, key, 100, Duration::ZERO).await;
    let (deferring, first_epoch, stored) = usage_mode(&pool).await;
    assert!(deferring > 0, "the one process defers counters");
    assert_eq!(stored, 0, "its events are not in the counter rows yet");

    let mut two = serve(&env);
    wait_for_usage(&two.url, key, 100, Duration::ZERO).await;
    wait_for_mode(&pool, |deferring, _| deferring == 0).await;
    let (deferring, epoch, stored) = usage_mode(&pool).await;
    assert_eq!((deferring, stored), (0, 100), "handed over: folded, and nobody defers");
    assert!(epoch > first_epoch);

    send_events(&two.url, key, "b", 50).await;
    let seen = wait_for_usage(&one.url, key, 150, Duration::from_secs(2)).await;
    send_events(&one.url, key, "c", 50).await;
    let seen_back = wait_for_usage(&two.url, key, 200, Duration::from_secs(2)).await;
    eprintln!("after the handover each process saw the other's events within {seen:?} and {seen_back:?}");
    assert!(seen < Duration::from_millis(100) && seen_back < Duration::from_millis(100));
    assert_eq!(usage_mode(&pool).await.2, 200, "counted as stored");

    // Alone again, process one takes ownership back.
    sigterm(&mut two.child);
    wait_for_mode(&pool, |deferring, _| deferring > 0).await;
    send_events(&one.url, key, "d", 60).await;
    send_events(&one.url, key, "a", 100).await; // repeats: nothing counted
    wait_for_usage(&one.url, key, 260, Duration::ZERO).await;
    assert_eq!(usage_mode(&pool).await.2, 200, "deferred again");

    signal(&one.child, "-KILL");
    let _ = one.child.wait();
    let mut three = serve(&env);
    wait_for_usage(&three.url, key, 260, Duration::ZERO).await;
    assert_eq!(usage_mode(&pool).await.2, 260, "the next start folds what the killed process deferred");
    send_events(&three.url, key, "e", 40).await;
    assert_eq!(usage_mode(&pool).await.2, 260, "deferred by process three");
    // Stopped gracefully, an owner folds what it deferred before it exits.
    sigterm(&mut three.child);
    let (deferring, _, stored) = usage_mode(&pool).await;
    assert_eq!((deferring, stored), (0, 300), "folded at stop");
}

/// The owner's lock connection is terminated by the database, and another
/// process starts at once and takes the counters over. The first one's
/// deferred writes of the old epoch are refused (never acknowledged, so
/// sent again), it takes the counters over again itself, and every event
/// counts exactly once in both processes and in the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_lost_its_lock_is_fenced_and_counts_once() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let env = [("DATABASE_URL", db.url.as_str())];
    let mut one = serve(&env);
    let key = one.server_key.clone().expect("first start prints a server key");
    let key = key.as_str();
    metered_plan(&one.url, key).await;
    buy_plan(&one.url, key).await;
    send_events(&one.url, key, "a", 100).await;
    let (deferring, epoch, _) = usage_mode(&pool).await;
    assert!(deferring > 0);

    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'kelviq usage lock' AND datname = current_database()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one usage lock connection, terminated");
    let mut two = serve(&env);
    wait_for_mode(&pool, |_, now| now > epoch).await;
    // Whatever process one does meanwhile, each batch counts once.
    send_events(&one.url, key, "b", 100).await;
    send_events(&two.url, key, "c", 50).await;
    send_events(&one.url, key, "b", 100).await;
    wait_for_usage(&one.url, key, 250, Duration::from_secs(5)).await;
    wait_for_usage(&two.url, key, 250, Duration::from_secs(5)).await;
    sigterm(&mut one.child);
    sigterm(&mut two.child);
    let mut three = serve(&env);
    wait_for_usage(&three.url, key, 250, Duration::ZERO).await;
    sigterm(&mut three.child);
}

/// The fence itself: while a takeover's transaction is open, a deferred
/// write of the old epoch waits for it, and then stores nothing; the new
/// epoch's writes go through, and a transaction fenced on the old epoch
/// (a fold, or a group with ordered changes) is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_then_refuses_deferred_writes_of_the_old_epoch() {
    use kelviq_core::{Environment, Tenant};
    use kelviq_store::{EventRow, KeptConnection, StoreError};
    let db = TestDatabase::new(Backend::Postgres).await;
    let config = kelviq_server::Config {
        database_url: Some(db.url.clone()),
        data_dir: db.dir().join("data"),
        ..Default::default()
    };
    let store = kelviq_server::open_store(&config).await.unwrap();
    let now = chrono::Utc::now();
    let org = store.create_organization("Fence", "fence", now).await.unwrap();
    let tenant = Tenant { org_id: org.id, org_seq: org.seq, env: Environment::Sandbox };
    let one_share = |_: uuid::Uuid, _: Environment, _: &str, _: usize| 0usize;
    let mut w = store.begin(&tenant).await.unwrap();
    let (_, old) = w.take_usage(now, Some(1), &one_share).await.unwrap();
    w.commit().await.unwrap();

    let write = |epoch: i64, key: &'static str| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move {
            let adds = vec![("requests".to_string(), 0i64, 1i64)];
            let rows = [EventRow {
                tenant: &tenant,
                customer_id: "c",
                event_name: "e",
                key,
                at: now,
                resource_id: None,
                properties: "{}",
                unfolded: &adds,
            }];
            store.append_deferred_events(&mut KeptConnection::default(), &tenant, &rows, now, 0, epoch).await
        }
    };
    let mut takeover = store.begin(&tenant).await.unwrap();
    let (_, new) = takeover.take_usage(now, Some(1), &one_share).await.unwrap();
    assert!(new > old);
    let late = tokio::spawn(write(old, "late"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!late.is_finished(), "a deferred write of the old epoch waits for the takeover");
    takeover.commit().await.unwrap();
    assert!(matches!(late.await.unwrap(), Err(StoreError::Fenced)), "and is then refused");

    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let stored = |pool: sqlx::AnyPool| async move {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_events").fetch_one(&pool).await.unwrap();
        n
    };
    assert_eq!(stored(pool.clone()).await, 0, "the refused write stored nothing");
    assert!(write(new, "now").await.unwrap().is_empty(), "the new epoch's write is stored");
    assert_eq!(stored(pool.clone()).await, 1);

    let mut w = store.begin(&tenant).await.unwrap();
    assert!(matches!(w.fence_usage(0, old).await, Err(StoreError::Fenced)));
    let mut w = store.begin(&tenant).await.unwrap();
    w.fence_usage(0, new).await.unwrap();
    assert!(matches!(w.fence_usage(1, new).await, Err(StoreError::Fenced)), "a writer the epoch does not have");
}

/// `kelviq webhooks create|list|rotate|test|delete` on a server's database;
/// the running server delivers the test event the command queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("KELVIQ_DATA_DIR", data.to_str().unwrap()),
        ("KELVIQ_WEBHOOK_ALLOW_SUBNETS", "127.0.0.0/8"),
        ("KELVIQ_WEBHOOK_POLL_INTERVAL_MS", "50"),
    ];
    let _server = serve(&env);
    let rx = common::receiver::Receiver::start().await;
    let url = format!("{}/cli", rx.url);
    let (ok, out, err) = run(&env, &["webhooks", "create", &url, "--events", "webhook.test,order.created"]);
    assert!(ok, "{err}");
    let id = out.lines().find_map(|l| l.strip_prefix("endpoint: ")).unwrap().to_string();
    let secret = out.lines().find_map(|l| l.strip_prefix("signing secret: ")).unwrap().to_string();
    assert!(secret.starts_with("kq_whsec_"));
    let (ok, listed, _) = run(&env, &["webhooks", "list"]);
    assert!(ok && listed.contains(&id) && listed.contains("webhook.test,order.created"), "{listed}");
    assert!(!listed.contains("kq_whsec_"), "list never shows secrets");
    let (ok, out, err) = run(&env, &["webhooks", "rotate", &id]);
    assert!(ok, "{err}");
    let rotated = out.lines().find_map(|l| l.strip_prefix("signing secret: ")).unwrap().to_string();
    let (ok, _, err) = run(&env, &["webhooks", "test", &id]);
    assert!(ok, "{err}");
    let got = rx.wait_for("/cli", 1, Duration::from_secs(20)).await;
    assert!(kelviq_sdk::validate_event(&got[0].body, got[0].header_pairs(), rotated.as_str()).is_ok());
    let (ok, _, err) = run(&env, &["webhooks", "create", "ftp://example.com"]);
    assert!(!ok && err.contains("url"), "{err}");
    let (ok, _, err) = run(&env, &["webhooks", "delete", &id]);
    assert!(ok, "{err}");
    let (_, listed, _) = run(&env, &["webhooks", "list"]);
    assert!(!listed.contains(&id));
}
