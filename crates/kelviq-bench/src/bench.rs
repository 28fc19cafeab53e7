//! Starts the server on a temporary database, loads customers with
//! subscriptions (through the store), and measures over HTTP the
//! entitlement check (against the same server's `/healthz` as the HTTP
//! floor), event ingestion (single events and 100-event batches, 1 %
//! duplicate keys) and resident memory.

use crate::loadgen::{load, Request, Run};
use chrono::Utc;
use kelviq_core::billing::Subscription;
use kelviq_core::customer::NewCustomer;
use kelviq_core::plans::ChargePeriod;
use kelviq_core::timefmt::report_timestamp;
use kelviq_core::{Clock, Environment, SystemClock, Tenant};
use kelviq_server::{bootstrap_demo, open_store, serve, AppState, Config};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub customers: u64,
    pub seconds: u64,
    pub connections: usize,
    /// Connections of the 100-event batches.
    pub batch_connections: usize,
    /// Measurements to run (empty: all).
    pub only: Vec<String>,
    /// Events the webhook measurement delivers.
    pub webhook_events: u64,
    /// Subscriptions the billing run renews at once.
    pub billing_subscriptions: u64,
    /// `None`: a temporary SQLite file.
    pub database_url: Option<String>,
    /// The configuration the server runs with (its tunables: usage writers,
    /// fold interval, pool size); the bench sets its own data directory,
    /// database and key cache.
    pub config: Config,
}

pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A fresh database for one run: a temporary SQLite file, or a new database
/// on the given PostgreSQL server (dropped afterwards).
struct BenchDb {
    url: Option<String>,
    drop: Option<(String, String)>,
}

async fn bench_db(url: Option<&str>) -> anyhow::Result<BenchDb> {
    let Some(url) = url.filter(|u| u.starts_with("postgres")) else { return Ok(BenchDb { url: None, drop: None }) };
    sqlx::any::install_default_drivers();
    let name = format!("kq_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
    admin.close().await;
    let mut u = url::Url::parse(url)?;
    u.set_path(&format!("/{name}"));
    Ok(BenchDb { url: Some(u.to_string()), drop: Some((url.to_string(), name)) })
}

impl BenchDb {
    async fn cleanup(&self) {
        if let Some((admin, name)) = &self.drop {
            if let Ok(pool) = sqlx::AnyPool::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                pool.close().await;
            }
        }
    }
}

pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = bench_db(options.database_url.as_deref()).await?;
    let result = run_on(&options, dir.path(), db.url.clone()).await;
    db.cleanup().await;
    result
}

async fn run_on(options: &BenchOptions, dir: &std::path::Path, database_url: Option<String>) -> anyhow::Result<()> {
    let mut config = options.config.clone();
    config.data_dir = dir.to_path_buf();
    config.database_url = database_url;
    config.key_cache_seconds = 3600;
    // The webhook measurement's receiver listens on this machine.
    config.webhook_allow_subnets = vec!["127.0.0.0/8".into()];
    // The webhook backlog is written through a second store, as another
    // process would, and the dispatcher is woken when it is complete: it
    // must not find it by polling halfway.
    config.webhook_poll_interval_ms = 600_000;
    // The billing run calls the scheduler's loop itself, timed.
    config.scheduler_interval_ms = 3_600_000;
    // The promotions measurement resolves visitors behind a trusted proxy
    // through a generated range file.
    let promotions = options.only.iter().any(|o| o == "promotions");
    if promotions {
        let file = crate::promotions::write_ranges(dir)?;
        crate::promotions::time_lookups(&file)?;
        config.geoip_file = Some(file);
        config.trusted_proxies = vec!["127.0.0.0/8".into()];
    }
    let store = open_store(&config).await?;
    let backend = store.backend().name();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let boot = bootstrap_demo(&store, clock.as_ref())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the bench needs an empty database"))?;
    let tenant = Tenant { org_id: boot.org.id, org_seq: boot.org.seq, env: Environment::Sandbox };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let state = AppState::new(store.clone(), clock.clone(), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let key = boot.server_key.clone();

    println!(
        "kelviq bench on {backend}: {} customers, {} s per run, {} connections{}",
        options.customers,
        options.seconds,
        options.connections,
        if options.config.pin_workers { ", workers pinned to CPUs" } else { "" }
    );
    seed_catalog(&client, &base, &key).await?;
    let plan = store.find_published_plan(&tenant, "bench").await?.ok_or_else(|| anyhow::anyhow!("bench plan"))?;
    let loaded = Instant::now();
    load_customers(&store, clock.now(), &tenant, &plan, options.customers).await?;
    store.analyze().await?;
    println!("loaded {} customers with subscriptions in {:.1} s", options.customers, loaded.elapsed().as_secs_f64());

    // Resident memory of the engine: before and after every customer is in memory.
    let before = rss_bytes();
    let warm = Instant::now();
    warm_up(&client, &base, &key, options.customers).await?;
    let after = rss_bytes();
    if let (Some(b), Some(a)) = (before, after) {
        let per_100k = (a.saturating_sub(b)) as f64 * 100_000.0 / options.customers.max(1) as f64 / 1_048_576.0;
        println!(
            "entitlement state: {} customers in memory in {:.1} s; resident memory {:.0} MB → {:.0} MB: {:.1} MB per 100,000 customers",
            options.customers,
            warm.elapsed().as_secs_f64(),
            b as f64 / 1_048_576.0,
            a as f64 / 1_048_576.0,
            per_100k
        );
    }

    let n = options.customers;
    let wants = |m: &str| options.only.is_empty() || options.only.iter().any(|o| o == m);
    if wants("checks") {
        let floor = load(addr, None, options.connections, options.seconds, |_, _| Request {
            path: "/healthz".into(),
            body: None,
            items: 1,
            headers: String::new(),
        })
        .await;
        let checks = load(addr, Some(&key), options.connections, options.seconds, move |worker, i| {
            let c = (worker as u64 * 7919 + i * 104_729) % n;
            Request {
                path: format!("/api/v1/entitlements?customer_id=c{c}").into(),
                body: None,
                items: 1,
                headers: String::new(),
            }
        })
        .await;
        report("healthz (HTTP floor)", &floor);
        report("entitlement check", &checks);
        println!("  check throughput = {:.0} % of the floor", 100.0 * checks.rate() / floor.rate().max(1.0));
    }

    // 1 % of events are sent again (a client retrying: same key, same customer).
    fn dup(i: u64) -> u64 {
        if i % 100 == 99 {
            i - 1
        } else {
            i
        }
    }
    // Bodies are written directly: the load generator shares the machine.
    fn event(out: &mut String, customer: u64, key: &str, worker: usize, i: u64, ts: &str) {
        use std::fmt::Write;
        let _ = write!(
            out,
            r#"{{"customerId":"c{customer}","eventName":"api.call","idempotencyKey":"{key}{worker}-{i}","timestamp":"{ts}","properties":{{"tokens":10}}}}"#
        );
    }
    let ts = report_timestamp(Utc::now());
    if wants("events") {
        let t = ts.clone();
        let before = writer_totals(&client, &base).await;
        let single = load(addr, Some(&key), options.connections, options.seconds, move |worker, i| {
            let mut body = String::with_capacity(160);
            let i = dup(i);
            event(&mut body, (worker as u64 * 31 + i) % n, "w", worker, i, &t);
            Request { path: "/api/v1/report/event/".into(), body: Some(body), items: 1, headers: String::new() }
        })
        .await;
        report("raw events, one per request", &single);
        report_writer(&client, &base, before).await;
    }
    if wants("batches") {
        let before = writer_totals(&client, &base).await;
        let batched = load(addr, Some(&key), options.batch_connections, options.seconds, move |worker, i| {
            let mut body = String::with_capacity(100 * 160 + 16);
            body.push_str(r#"{"events":["#);
            for j in 0..100u64 {
                if j > 0 {
                    body.push(',');
                }
                let k = dup(i * 100 + j);
                event(&mut body, (worker as u64 * 131 + k) % n, "b", worker, k, &ts);
            }
            body.push_str("]}");
            Request {
                path: "/api/v1/report/events/batch/".into(),
                body: Some(body),
                items: 100,
                headers: String::new(),
            }
        })
        .await;
        report("raw events, 100 per request", &batched);
        report_writer(&client, &base, before).await;
    }
    // The billing run is measured only when asked for (it renews every
    // subscription it loads, once).
    if options.only.iter().any(|o| o == "billing") {
        crate::billing::run(&state, &client, &base, &key, &tenant, options.billing_subscriptions).await?;
    }
    if promotions {
        let (conns, secs) = (options.connections, options.seconds);
        crate::promotions::run(addr, &client, &base, &key, &boot.client_key, conns, secs).await?;
    }
    if options.only.iter().any(|o| o == "portal") {
        crate::portal::run(addr, &client, &base, &key, options.seconds).await?;
    }
    if options.only.iter().any(|o| o == "licenses") {
        crate::licenses::run(addr, &client, &base, &key, options.connections, options.seconds).await?;
    }
    if wants("webhooks") {
        let writer = open_store(&state.config).await?;
        crate::webhooks::run(&state, &writer, &base, &key, &tenant, options.webhook_events).await?;
        writer.close().await;
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// The usage writer's totals so far: (transactions, items, seconds, syncs,
/// seconds syncing), from the server's `/metrics`.
async fn writer_totals(client: &reqwest::Client, base: &str) -> [f64; 5] {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    [
        value("ingest_batch_size_count"),
        value("ingest_batch_size_sum"),
        value("ingest_batch_seconds_sum"),
        value("ingest_sync_seconds_count"),
        value("ingest_sync_seconds_sum"),
    ]
}

/// How the writer grouped a run's requests: transactions, items per
/// transaction, and the time each took; on SQLite, the syncs of the
/// journal's commits (each covers every commit before it).
async fn report_writer(client: &reqwest::Client, base: &str, before: [f64; 5]) {
    let now = writer_totals(client, base).await;
    let [t, i, s, syncs, synced] = std::array::from_fn(|k| now[k] - before[k]);
    if t > 0.0 {
        println!(
            "  usage writer: {t:.0} transactions, {:.1} items per transaction, {:.2} ms per transaction",
            i / t,
            s * 1000.0 / t
        );
    }
    if syncs > 0.0 {
        println!("  journal syncs: {syncs:.0}, {:.2} ms each", synced * 1000.0 / syncs);
    }
}

pub(crate) fn report(name: &str, r: &Run) {
    println!(
        "{name}: {:.0}/s ({} requests in {:.1} s, {} errors), latency p50 {:.2} ms, p99 {:.2} ms",
        r.rate(),
        r.requests,
        r.elapsed.as_secs_f64(),
        r.errors,
        r.percentile(0.5),
        r.percentile(0.99)
    );
    if let Some((server, load)) = r.cpu_per_request_us() {
        println!("  CPU per request in this process: server {server:.1} µs, load generator {load:.1} µs");
    }
    if let (Some(m), Some(others)) = (r.machine, r.others_cpu_per_request_us()) {
        let (busy, idle, steal) = m.shares();
        println!(
            "  machine: {busy:.0} % busy, {idle:.0} % idle, {steal:.0} % stolen; other processes {others:.1} µs CPU per request"
        );
    }
}

/// POSTs seed data to the server's API; anything but a 2xx is an error.
pub async fn seed_post(client: &reqwest::Client, base: &str, key: &str, path: &str, body: Value) -> anyhow::Result<()> {
    let res = client.post(format!("{base}/api/v1{path}")).bearer_auth(key).json(&body).send().await?;
    let url = res.url().clone();
    anyhow::ensure!(res.status().is_success(), "seeding {url}: {}", res.text().await.unwrap_or_default());
    Ok(())
}

async fn seed_catalog(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<()> {
    let post = |path: &'static str, body: Value| seed_post(client, base, key, path, body);
    let units = json!({"singular": "call", "plural": "calls"});
    post("/catalog/products/", json!({"name": "Bench", "identifier": "bench", "taxCode": "saas"})).await?;
    post("/catalog/features/", json!({"name": "SSO", "identifier": "sso", "featureType": "BOOLEAN"})).await?;
    post("/catalog/features/", json!({"name": "Calls", "identifier": "calls", "featureType": "METER",
        "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units},
        "meter": {"aggregation": {"function": "SUM", "field": "tokens"}, "filters": [[{"property": "event_name", "operator": "equals", "value": "api.call"}]]}})).await?;
    post("/catalog/features/", json!({"name": "Seats", "identifier": "seats", "featureType": "CUSTOMIZABLE"})).await?;
    post("/catalog/plans/", json!({"name": "Bench", "identifier": "bench", "product": "bench"})).await?;
    post(
        "/catalog/plans/bench/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD",
        "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]}]}]}),
    )
    .await?;
    post(
        "/catalog/plans/bench/features/",
        json!({"planEntitlements": [
        {"feature": "sso", "details": {"value": true}},
        {"feature": "calls", "details": {"value": 1_000_000_000, "reset": "EVERY_MONTH", "hardLimit": true}},
        {"feature": "seats", "details": {"value": 5}}]}),
    )
    .await?;
    post("/catalog/plans/bench/publish/", json!({})).await?;
    Ok(())
}

/// Customers `c0…` each with an active monthly subscription, written in large transactions.
async fn load_customers(
    store: &kelviq_store::Store,
    now: chrono::DateTime<Utc>,
    tenant: &Tenant,
    plan: &kelviq_core::plans::PlanVersion,
    n: u64,
) -> anyhow::Result<()> {
    let chunk = 5_000;
    let mut done = 0;
    while done < n {
        let mut w = store.begin(tenant).await?;
        for i in done..(done + chunk).min(n) {
            let c = w
                .insert_customer(
                    &NewCustomer {
                        customer_id: format!("c{i}"),
                        name: None,
                        email: None,
                        metadata: json!({}),
                        billing_address: None,
                    },
                    now,
                )
                .await?;
            let sub =
                Subscription::start(c.id, &c.customer_id, plan, ChargePeriod::Monthly, "USD", 1000, Vec::new(), now);
            w.put_subscription(&sub).await?;
        }
        w.commit().await?;
        done = (done + chunk).min(n);
        eprint!("\r  loading customers: {done}/{n}");
    }
    eprintln!();
    Ok(())
}

/// Brings every customer's entitlement state into the server's memory, as
/// their first checks do.
async fn warm_up(client: &reqwest::Client, base: &str, key: &str, n: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, key, next) = (client.clone(), base.to_string(), key.to_string(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let r = client
                        .get(format!("{base}/api/v1/entitlements/?customer_id=c{i}"))
                        .bearer_auth(&key)
                        .send()
                        .await?;
                    anyhow::ensure!(r.status().is_success(), "checking c{i}: {}", r.status());
                    if i % 10_000 == 0 {
                        eprint!("\r  loading entitlement state: {i}/{n}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    eprintln!("\r  loading entitlement state: {n}/{n}");
    Ok(())
}
