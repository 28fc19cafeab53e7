//! Test harness: starts the real server on 127.0.0.1:0 over a fresh SQLite
//! file or a fresh PostgreSQL database, with a demo tenant and its keys.
#![allow(dead_code)]

pub mod api;
pub mod process;
pub mod receiver;
pub mod smtp;

use chrono::{DateTime, Utc};
use kelviq_core::keys::{generate, KeyKind};
use kelviq_core::{Environment, ManualClock, Tenant};
use kelviq_server::{AppState, Config};
use kelviq_store::Store;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` as two tests, one per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The PostgreSQL server tests make their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("KELVIQ_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test; dropped again with it.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.path().join("kelviq.db").display()),
                pg_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let admin = postgres_admin_url();
                let name = format!("kq_test_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::AnyPool::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL must answer at {admin} for the Postgres tests: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
                pool.close().await;
                let mut url = url::Url::parse(&admin).expect("admin url");
                url.set_path(&format!("/{name}"));
                TestDatabase { url: url.to_string(), pg_name: Some(name), _dir: dir }
            }
        }
    }
}

impl TestDatabase {
    /// A temporary directory living as long as the database.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(pool) = sqlx::AnyPool::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

pub struct TestServer {
    pub backend: Backend,
    pub config: Config,
    pub base_url: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    /// The running server's state: lets a test step a worker once.
    pub state: AppState,
    pub tenant: Tenant,
    pub server_key: String,
    pub client_key: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDatabase,
}

type Served = tokio::task::JoinHandle<anyhow::Result<()>>;

/// A second server process on the same database: its own store, pool,
/// dispatcher and lease owner, and the test's clock. Its URL, and what stops it.
pub async fn second_process(s: &TestServer) -> (String, tokio::sync::oneshot::Sender<()>, Served) {
    let store = kelviq_server::open_store(&s.config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let second = AppState::new(store, s.clock.clone(), s.config.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kelviq_server::serve(second, listener, async move {
        let _ = stopped.await;
    }));
    (url, stop, task)
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z").unwrap().with_timezone(&Utc)
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        // `KELVIQ_TEST_LOG=debug cargo test …` shows the server's logs.
        if let Ok(filter) = std::env::var("KELVIQ_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();
        }
        let db = TestDatabase::new(backend).await;
        let mut config = Config {
            database_url: Some(db.url.clone()),
            data_dir: db.dir().join("data"),
            key_cache_seconds: 0,
            ..Config::default()
        };
        tweak(&mut config);
        let store = kelviq_server::open_store(&config).await.expect("open store");
        let clock = Arc::new(ManualClock::new(start_time()));
        let boot =
            kelviq_server::bootstrap_demo(&store, clock.as_ref()).await.expect("bootstrap").expect("empty database");
        let tenant = Tenant { org_id: boot.org.id, org_seq: boot.org.seq, env: Environment::Sandbox };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(store.clone(), clock.clone(), config.clone());
        let task = tokio::spawn(kelviq_server::serve(state.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            state,
            config,
            backend,
            base_url,
            store,
            clock,
            tenant,
            server_key: boot.server_key,
            client_key: boot.client_key,
            shutdown: Some(tx),
            task: Some(task),
            db,
        }
    }

    /// Stops the server and starts a new one on the same database, clock and
    /// port-less listener (a new address): what a process restart looks like.
    pub async fn restart(&mut self) {
        self.begin_shutdown();
        self.wait_stopped().await;
        let store = kelviq_server::open_store(&self.config).await.expect("reopen store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.base_url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(store.clone(), self.clock.clone(), self.config.clone());
        self.task = Some(tokio::spawn(kelviq_server::serve(state.clone(), listener, async move {
            let _ = rx.await;
        })));
        self.state = state;
        self.shutdown = Some(tx);
        self.store = store;
    }

    /// An SDK client with the given key.
    pub fn sdk_with(&self, key: &str) -> kelviq_sdk::Kelviq {
        kelviq_sdk::Kelviq::builder()
            .access_token(key)
            .base_url(&self.base_url)
            .edge_api_url(&self.base_url)
            .build()
            .expect("client")
    }

    /// An SDK client with the sandbox server key.
    pub fn sdk(&self) -> kelviq_sdk::Kelviq {
        self.sdk_with(&self.server_key)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Creates another organisation with a server key in `env`: another tenant.
    pub async fn other_tenant(&self, slug: &str, env: Environment) -> (Tenant, String) {
        let org = match self.store.find_organization_by_slug(slug).await.unwrap() {
            Some(org) => org,
            None => self.store.create_organization(slug, slug, start_time()).await.unwrap(),
        };
        let key = generate(KeyKind::Server, env);
        self.store.insert_api_key(org.id, env, KeyKind::Server, None, &key, start_time()).await.unwrap();
        (Tenant { org_id: org.id, org_seq: org.seq, env }, key.secret)
    }

    /// A server key for this organisation in another environment.
    pub async fn key_for(&self, kind: KeyKind, env: Environment) -> String {
        let key = generate(kind, env);
        self.store.insert_api_key(self.tenant.org_id, env, kind, None, &key, start_time()).await.unwrap();
        key.secret
    }

    /// Asks the server to shut down, without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// POSTs with the server key and returns the answer, which must be a success.
    pub async fn post_ok(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let res = http().post(self.url(path)).bearer_auth(&self.server_key).json(&body).send().await.unwrap();
        let status = res.status();
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.wait_stopped().await;
    }

    /// Waits for the server to finish (after [`TestServer::begin_shutdown`]).
    pub async fn wait_stopped(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A raw HTTP client for what the SDK would refuse to send.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}
