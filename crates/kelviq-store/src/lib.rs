//! Kelviq's storage: one store over embedded SQLite or PostgreSQL.
//!
//! Both backends run the same SQL through sqlx's `Any` driver, so behaviour is
//! identical by construction; the few dialect differences (row locks, schema
//! auto-increment) are isolated in [`Backend`] and the per-backend migrations.
//! Every method that touches tenant data takes the [`Tenant`] first.
//!
//! SQLite runs in WAL mode with `synchronous=FULL` behind a single writer
//! connection, so a committed write is on disk before the caller answers.
//! The one exception to "everything through sqlx" is the usage journal's
//! append of plain events ([`EventJournal`], SQLite only), which runs on the
//! usage writer's own connection while it holds that writer's turn
//! ([`Store::write_turn`]); its stored rows are read back through sqlx. Its
//! commits are made durable by a separate sync of the log ([`WalSync`]),
//! which its caller waits for before answering.

mod catalog;
mod changes;
mod customers;
mod discounts;
mod due;
mod events;
mod filters;
mod held;
mod invoices;
mod keys;
mod licenses;
mod mail;
mod media;
mod migrations;
mod orgs;
mod payment_attempts;
mod payment_methods;
mod pending;
mod plans;
mod portal;
mod promotions;
mod providers;
mod selling;
mod storefront;
mod tax_rates;
mod usage;
mod webhooks;
mod work;
pub use work::Work;

pub use changes::{usage_wake_payload, Change, ChangeListener, CHANGES_CHANNEL, TOPIC_API_KEY};
pub use discounts::Taken as DiscountTaken;
pub use due::DuePosition;
pub use filters::Filter;
pub use keys::{ApiKey, KeyIdentity};
pub use licenses::{InstanceRow, LicenseRow, TOPIC_LICENSE};
pub use mail::Mail;
pub use media::{MediaChanges, MediaFile, MediaOwner, Upload};
pub use orgs::Organization;
pub use payment_attempts::PaymentAttempt;
pub use payment_methods::StoredPaymentMethod;
pub use portal::PortalSession;
pub use providers::ProviderRow;
pub use selling::{DocColumns, DocTable, TOPIC_CATALOG, TOPIC_ENTITLEMENTS, TOPIC_TEST_CLOCK};
pub use usage::journal::{EventJournal, JournalTx, WalSync};
pub use usage::owner::{HandoverListener, UsageLock, HANDOVER_CHANNEL, LOCK_APPLICATION};
pub use usage::{change_subject, AddRow, ChangeSubject, Counter, CounterChange, EventRow, StoredEvent, TOPIC_USAGE};
pub use webhooks::{AttemptRow, Claimed, EndpointChanges, EventQuery, Finished, LogRow, Outcome};

use kelviq_core::Tenant;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the string names the rule.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("invalid database url: {0}")]
    BadUrl(String),
    /// A rule checked inside a transaction was broken; nothing was written.
    #[error("invalid: {0}")]
    Invalid(kelviq_core::FieldErrors),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A deferred usage write of an epoch another process has taken over
    /// (see [`Work::fence_usage`]); nothing was written.
    #[error("usage counters were taken over by another process")]
    Fenced,
    /// The work ran on a payment whose outcome is not known yet (see
    /// [`Work::hold_commit`]); nothing was written.
    #[error("held for a payment still to be made")]
    Held,
    /// From the usage journal's own SQLite connection.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Every connection of the pool stayed busy for the acquire timeout.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
    }

    fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::BadUrl(format!(
                "unsupported scheme {scheme:?}: use sqlite:///path/to/kelviq.db or postgres://user@host/db"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Row lock for read-modify-write inside a transaction. SQLite needs none:
    /// its single writer connection already serialises write transactions.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// How long a PostgreSQL request waits for a pool connection before it is
/// refused as busy ([`StoreError::is_busy`]: 503 with `Retry-After`). No
/// task waits for a connection while it holds one ([`held`]), so a full
/// pool only means load, and a prompt refusal beats a queue that times out.
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The database, as one handle that is cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Pool for reads.
    read: AnyPool,
    /// Pool for writes: one connection on SQLite, the same pool as `read` on PostgreSQL.
    write: AnyPool,
    /// The SQLite file.
    path: Option<std::path::PathBuf>,
    /// Wakes other processes after usage commits (PostgreSQL).
    waker: changes::Waker,
    /// The usage tables' tenant numbers looked up so far.
    usage_tenants: UsageTenants,
    /// Wakes this process's webhook dispatcher.
    webhook_bell: WebhookBell,
}

/// Wakes the webhook dispatcher of this process when a commit queued
/// deliveries (other processes find them when they next look).
#[derive(Debug, Clone, Default)]
pub struct WebhookBell(std::sync::Arc<tokio::sync::Notify>);

impl WebhookBell {
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Waits for the next ring (a ring while nobody waits is kept for the next wait).
    pub async fn rung(&self) {
        self.0.notified().await
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). A missing SQLite file
    /// and its directory are created.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        match backend {
            Backend::Sqlite => {
                let (url, path) = prepare_sqlite_url(url)?;
                let read = sqlite_pool(max_connections.max(2), READ_CACHE_KIB, 1_000).connect(&url).await?;
                let write = sqlite_pool(1, WRITE_CACHE_KIB, WRITE_AUTOCHECKPOINT_PAGES).connect(&url).await?;
                Ok(Store {
                    backend,
                    read,
                    write,
                    path: Some(path),
                    waker: changes::Waker::default(),
                    usage_tenants: UsageTenants::default(),
                    webhook_bell: WebhookBell::default(),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections.max(2))
                    .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                let waker = changes::Waker::start(&pool);
                Ok(Store {
                    backend,
                    read: pool.clone(),
                    write: pool,
                    path: None,
                    waker,
                    usage_tenants: UsageTenants::default(),
                    webhook_bell: WebhookBell::default(),
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What wakes this process's webhook dispatcher.
    pub fn webhook_bell(&self) -> &WebhookBell {
        &self.webhook_bell
    }

    /// The pool for reads; never asked while this task holds a transaction
    /// (see [`held`]).
    #[track_caller]
    pub(crate) fn read_pool(&self) -> &AnyPool {
        held::assert_free("read");
        &self.read
    }

    /// The pool for writes; never asked while this task holds a transaction.
    #[track_caller]
    pub(crate) fn write_pool(&self) -> &AnyPool {
        held::assert_free("write");
        &self.write
    }

    /// Starts a write transaction. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a transaction that read first and wrote
    /// later would fail at once, not wait, when another process (the CLI
    /// beside a server) had written in between.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write_pool().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write_pool().begin().await?,
        })
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// SQLite: the usage writer's own connection (see [`EventJournal`]);
    /// `None` on PostgreSQL.
    pub fn open_journal(&self) -> Result<Option<EventJournal>> {
        self.path.as_deref().map(|path| EventJournal::open(path, self.usage_tenants.clone())).transpose()
    }

    /// SQLite: waits for the store's one write connection and keeps it until
    /// the turn is dropped, so that a write on another connection (the usage
    /// journal's) runs while the store writes nothing, in its turn with the
    /// store's own writes. On PostgreSQL, which has no such limit, it holds nothing.
    pub async fn write_turn(&self) -> Result<WriteTurn> {
        Ok(WriteTurn(match self.backend {
            Backend::Sqlite => Some(self.write_pool().acquire().await?),
            Backend::Postgres => None,
        }))
    }

    /// Runs the embedded migrations. Safe to call from several processes at
    /// once on PostgreSQL (the migrator holds an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_through(i64::MAX).await
    }

    /// Runs the embedded migrations up to and including `version` (tests of
    /// a migration write data in the shape before it).
    pub async fn migrate_through(&self, version: i64) -> Result<()> {
        let source = migrations::Embedded { backend: self.backend, through: version };
        let migrator = sqlx::migrate::Migrator::new(source).await?;
        migrator.run(self.write_pool()).await?;
        Ok(())
    }

    /// Refreshes the query planner's statistics (after a bulk load the
    /// planner would otherwise think the tables are empty and scan them). On
    /// PostgreSQL the tables are vacuumed too, so that autovacuum does not
    /// start on them right after the load.
    pub async fn analyze(&self) -> Result<()> {
        let statement = match self.backend {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "VACUUM (ANALYZE)",
        };
        sqlx::query(statement).execute(self.write_pool()).await?;
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.read_pool()).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
        self.waker.wake(None);
    }

    /// Whether [`Store::close`] has begun (the server is stopping).
    pub fn is_closed(&self) -> bool {
        self.read.is_closed() || self.write.is_closed()
    }
}

/// A connection one task keeps between its statements (a usage writer on
/// PostgreSQL). sqlx pings a pool's connection when it hands it out and
/// again when it is given back: a statement on a pool connection is three
/// round trips (`kelviq bench` on PostgreSQL, interleaved runs: single
/// events +20–27 %, 100-event batches +3–8 % on a kept one). A kept
/// connection is pinged only when it has been idle for [`PING_WHEN_IDLE`],
/// and given back to the pool after an error (the pool closes it if it is
/// broken) or with [`KeptConnection::release`].
#[derive(Debug, Default)]
pub struct KeptConnection(Option<(sqlx::pool::PoolConnection<sqlx::Any>, std::time::Instant)>);

/// A kept connection idle this long is pinged before it is used again.
const PING_WHEN_IDLE: Duration = Duration::from_secs(1);

impl KeptConnection {
    /// The kept connection, or one from the pool.
    async fn get(&mut self, pool: &AnyPool) -> Result<&mut sqlx::AnyConnection> {
        let stale = match &mut self.0 {
            Some((conn, used)) if used.elapsed() >= PING_WHEN_IDLE => conn.ping().await.is_err(),
            _ => false,
        };
        if stale {
            self.0 = None;
        }
        if self.0.is_none() {
            self.0 = Some((pool.acquire().await?, std::time::Instant::now()));
        }
        let (conn, _) = self.0.as_mut().expect("a connection was just kept");
        Ok(&mut **conn)
    }

    /// Notes the end of a statement: kept after a success, given back after an error.
    fn used<T>(&mut self, result: &std::result::Result<T, sqlx::Error>) {
        match (result, &mut self.0) {
            (Ok(_), Some((_, used))) => *used = std::time::Instant::now(),
            _ => self.0 = None,
        }
    }

    /// Gives the connection back to the pool (a task going idle).
    pub fn release(&mut self) {
        self.0 = None;
    }
}

/// Whether an error says the connection is gone (the server closed it,
/// restarted or is shutting down) rather than anything about the statement.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        // Class 08: connection exception; 57P01–57P03: the server is
        // shutting down, crashed, or cannot take connections yet.
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// See [`Store::write_turn`].
#[derive(Debug)]
pub struct WriteTurn(#[allow(dead_code)] Option<sqlx::pool::PoolConnection<sqlx::Any>>);

/// Page cache of each reading connection (SQLite's default).
const READ_CACHE_KIB: u32 = 2_000;
/// Page cache of the one writing connection: the pages that inserts and
/// counter updates touch stay in memory instead of being read again.
const WRITE_CACHE_KIB: u32 = 64_000;
/// The writing connection copies the log into the database file itself
/// only when the log passes this many pages (about 40 MB): the usage
/// journal's checkpoint thread copies it every 100 ms, without holding up a
/// commit. At SQLite's default (1,000 pages), a billing run's batch of 100
/// renewals made every commit a checkpoint.
const WRITE_AUTOCHECKPOINT_PAGES: u32 = 10_000;

fn sqlite_pool(max: u32, cache_kib: u32, autocheckpoint: u32) -> AnyPoolOptions {
    // A local file needs no liveness ping before each use (a round trip to
    // the connection's thread on every transaction).
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL".to_string(),
                    "PRAGMA synchronous = FULL".to_string(),
                    "PRAGMA foreign_keys = ON".to_string(),
                    "PRAGMA busy_timeout = 10000".to_string(),
                    "PRAGMA temp_store = MEMORY".to_string(),
                    format!("PRAGMA cache_size = -{cache_kib}"),
                    format!("PRAGMA wal_autocheckpoint = {autocheckpoint}"),
                ] {
                    sqlx::query(&pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
}

/// Ensures the SQLite file's directory exists and asks sqlx to create the
/// file; returns the URL for sqlx and the file's path.
fn prepare_sqlite_url(url: &str) -> Result<(String, std::path::PathBuf)> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::BadUrl("an in-memory SQLite database keeps nothing; give a file path".into()));
    }
    if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::BadUrl(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
    params.push("mode=rwc");
    Ok((format!("sqlite://{path}?{}", params.join("&")), path.into()))
}

/// The URL with every secret replaced by `***`, for logs, errors and
/// `kelviq config`: the password of the user part and a `password` query
/// parameter; a URL that does not parse (a password holding `/` or `#`)
/// loses everything between `://` and the last `@` instead.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.eq_ignore_ascii_case("password") { "***".to_string() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start + 3 => format!("{}***{}", &url[..start + 3], &url[at..]),
            _ => url.to_string(),
        },
    }
}

// Row helpers shared by the modules.

pub(crate) fn uuid_col(row: &AnyRow, col: &str) -> Result<uuid::Uuid> {
    let s: String = row.try_get(col)?;
    uuid::Uuid::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn json_col(row: &AnyRow, col: &str) -> Result<serde_json::Value> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// The search text (empty: no filter) and its LIKE pattern, in which `%`
/// and `_` typed by the user match themselves.
pub(crate) fn search_binds(search: Option<&str>) -> (&str, String) {
    let search = search.map(str::trim).unwrap_or("");
    let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    (search, format!("%{escaped}%"))
}

/// Live rows of a tenant (`$1`, `$2`) matching a search (`$3`, pattern `$4`,
/// from [`search_binds`]) over the given column expressions, case-insensitively.
pub(crate) fn search_filter(columns: &[&str]) -> String {
    let likes: Vec<String> = columns.iter().map(|c| format!("LOWER({c}) LIKE $4 ESCAPE '\\'")).collect();
    format!("org_id = $1 AND environment = $2 AND archived_at IS NULL AND ($3 = '' OR {})", likes.join(" OR "))
}

pub(crate) fn tenant_binds(t: &Tenant) -> (String, &'static str) {
    (t.org_id.to_string(), t.env.as_str())
}

/// The usage tables (`usage_events`, `usage_counters`) name their tenant by a
/// number: the organisation's `seq` twice, plus 1 in production (migration
/// 0011). A statement on its own binds the organisation's id and the
/// environment's bit ([`usage_binds`]) and finds the number with
/// [`usage_tenant`]; a transaction and the SQLite journal bind the number,
/// looked up once per process ([`UsageTenants`]).
pub(crate) fn usage_binds(t: &Tenant) -> (String, i64) {
    (t.org_id.to_string(), environment_bit(t.env))
}

pub(crate) fn environment_bit(env: kelviq_core::Environment) -> i64 {
    match env {
        kelviq_core::Environment::Sandbox => 0,
        kelviq_core::Environment::Production => 1,
    }
}

/// The tenant's number, from the placeholders of the organisation's id and
/// the environment's bit: a subquery that runs once per statement.
pub(crate) fn usage_tenant(org: &str, env_bit: &str) -> String {
    format!("(SELECT seq * 2 + {env_bit} FROM organizations WHERE id = {org})")
}

/// The usage tables' numbers of the tenants looked up so far, shared by the
/// store's transactions and the SQLite journal (an organisation's number
/// never changes, so each is looked up once per process).
#[derive(Debug, Clone, Default)]
pub(crate) struct UsageTenants(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(uuid::Uuid, kelviq_core::Environment), i64>>>,
);

impl UsageTenants {
    pub(crate) fn get(&self, t: &Tenant) -> Option<i64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&(t.org_id, t.env)).copied()
    }

    pub(crate) fn insert(&self, t: &Tenant, number: i64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert((t.org_id, t.env), number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("sqlite:///tmp/x.db").unwrap(), Backend::Sqlite);
        assert!(Backend::from_url("mysql://x").is_err());
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(
            redact_url("postgres://u@h/db?password=s3cret&sslmode=off"),
            "postgres://u@h/db?password=***&sslmode=off"
        );
        assert_eq!(redact_url("postgres://u:pa/ss#word@h/db"), "postgres://***@h/db");
        let dir = std::env::temp_dir().join(format!("kq-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/sub/k.db?cache=shared", dir.display());
        let (prepared, path) = prepare_sqlite_url(&url).unwrap();
        assert!(prepared.ends_with("k.db?cache=shared&mode=rwc"), "{prepared}");
        assert_eq!(path, dir.join("sub/k.db"));
        assert!(dir.join("sub").is_dir());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
