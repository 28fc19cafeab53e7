//! Configuration: defaults, then an optional TOML file, then `KELVIQ_*`
//! environment variables, then command-line flags; the later wins.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: String,
    /// `sqlite:///abs/path.db` or `postgres://user@host/db`. Unset: a SQLite
    /// file `kelviq.db` inside `data_dir`.
    pub database_url: Option<String>,
    /// Where the default database and other data live.
    pub data_dir: PathBuf,
    /// The externally visible base URL (for links the server hands out).
    /// Unset: taken from each request's Host header.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `kelviq_server=debug,info`.
    pub log_level: String,
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: usize,
    pub db_max_connections: u32,
    /// Binds each of the server's worker threads to its own CPU (of those
    /// the process may run on). For a machine or a container's CPU set given
    /// to kelviq: the kernel then cannot stack two busy workers on one CPU
    /// while another runs something else. Off by default: leave it off where
    /// the CPUs are shared with other busy processes or limited by a quota.
    pub pin_workers: bool,
    /// How long a SIGTERM waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// Largest file accepted by the media upload endpoint.
    pub media_max_bytes: u64,
    /// How long a resolved API key is trusted before it is looked up again.
    /// Revocations reach every server through the change feed within ~100 ms;
    /// this is the backstop should the feed be unreadable.
    pub key_cache_seconds: u64,
    /// After a failed renewal, how long the customer keeps access while the
    /// charge is retried; then the subscription is cancelled.
    pub grace_period_days: i64,
    /// How a price with `taxBehavior` UNSPECIFIED is taxed: EXCLUSIVE (tax
    /// added on top) or INCLUSIVE (the price includes it).
    pub default_tax_behavior: String,
    /// How many retries the grace period spreads evenly.
    pub renewal_retries: u32,
    /// Platform fee on each charge, in basis points (350 = 3.5 %).
    pub fee_base_bp: i64,
    /// Fixed platform fee per charge, in minor units of the charge's currency.
    pub fee_fixed_minor: i64,
    /// Extra platform fee on subscription charges, in basis points.
    pub fee_subscription_bp: i64,
    /// How often the scheduler looks for due renewals, trial ends and cancellations.
    pub scheduler_interval_ms: u64,
    /// SQLite: how often the counts of stored events are folded into the
    /// counter rows (until then they are in memory and in the event journal).
    pub usage_fold_interval_ms: u64,
    /// PostgreSQL: how many usage writers commit at once, each for its own
    /// share of the customers (SQLite has one writer).
    pub usage_writers: u32,
    /// How long usage rows stay in the change feed (one row per usage commit
    /// on PostgreSQL). A process that could not read the feed for most of
    /// this time builds every customer's state again.
    pub change_feed_usage_retention_seconds: u64,
    /// The key that seals stored secrets (webhook signing secrets): 64 hex
    /// digits or base64 of 32 bytes. Unset: read from `secret.key` in the
    /// data directory, made there on first start. Several processes on one
    /// PostgreSQL must share it.
    pub secret_key: Option<String>,
    /// Subnets webhooks may reach although they are private, e.g.
    /// `["127.0.0.0/8", "::1/128"]`; plain `http://` endpoints only here.
    pub webhook_allow_subnets: Vec<String>,
    /// How long an endpoint has to answer.
    pub webhook_timeout_ms: u64,
    /// The waits between attempts (`s`, `m`, `h`, `d`).
    pub webhook_retry_schedule: String,
    pub webhook_retry_jitter_percent: i64,
    /// An endpoint failing without a success this long is disabled …
    pub webhook_disable_after_hours: i64,
    /// … when at least this long lies between its first and last failure.
    pub webhook_disable_min_span_hours: i64,
    /// Most attempts in flight in this process, and to one endpoint.
    pub webhook_concurrency: usize,
    pub webhook_endpoint_concurrency: usize,
    /// How often the dispatcher looks for due deliveries it was not told of
    /// (this process is told of its own commits at once).
    pub webhook_poll_interval_ms: u64,
    /// How long events (and their delivery logs) are kept.
    pub event_retention_days: i64,
    /// Proxies (CIDR) whose `X-Forwarded-For` and country header are
    /// believed; empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
    /// A header a trusted proxy sets to the client's country (`CF-IPCountry`).
    pub geo_country_header: Option<String>,
    /// IP ranges to countries: Tor's `geoip` (`/usr/share/tor/geoip`) or a
    /// CSV of `start,end,country`; `geoip6_file` for Tor's IPv6 file.
    pub geoip_file: Option<PathBuf>,
    pub geoip6_file: Option<PathBuf>,
    /// Networks (one CIDR per line) a promotion treats as VPN, Tor, proxy
    /// or relay (Apple Private Relay) exits.
    pub vpn_networks_file: Option<PathBuf>,
    pub tor_networks_file: Option<PathBuf>,
    pub proxy_networks_file: Option<PathBuf>,
    pub relay_networks_file: Option<PathBuf>,
    /// How often those files are checked for changes (reloaded without a restart).
    pub geo_reload_interval_ms: u64,
    /// Successful activations and deactivations of one license key allowed
    /// per hour (429 beyond; refusals at the limit do not count); 0: no limit.
    pub license_activation_attempts_per_hour: u32,
    /// License calls made with a client key (validate, heartbeat, offline
    /// checkout) allowed per client address per minute, per server process;
    /// 0: no limit.
    pub license_client_requests_per_minute: u32,
    /// How long a customer portal link works.
    pub portal_session_minutes: u32,
    /// The SMTP server mail goes to: `smtps://user:pass@host:465` (TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtp://host:25`
    /// (plain, a local relay). Unset: mail is only kept in the outbox
    /// (`kelviq mail list`).
    pub smtp_url: Option<String>,
    /// The sender of the server's mail.
    pub mail_from: String,
    /// Stripe's API (a stand-in such as the repository's fake Stripe in tests).
    pub stripe_api_base: String,
    /// A charge made at the provider that no committed work used after
    /// this long (its request died) is refunded.
    pub payment_orphan_after_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("kelviq-data"),
            public_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            body_limit_bytes: 1024 * 1024,
            db_max_connections: 8,
            pin_workers: false,
            shutdown_grace_seconds: 30,
            key_cache_seconds: 60,
            media_max_bytes: 50 * 1024 * 1024,
            grace_period_days: 14,
            default_tax_behavior: "EXCLUSIVE".into(),
            renewal_retries: 8,
            fee_base_bp: 350,
            fee_fixed_minor: 30,
            fee_subscription_bp: 50,
            scheduler_interval_ms: 1000,
            usage_fold_interval_ms: 1000,
            usage_writers: 4,
            change_feed_usage_retention_seconds: 300,
            secret_key: None,
            webhook_allow_subnets: Vec::new(),
            webhook_timeout_ms: 15_000,
            webhook_retry_schedule: "5s,5m,30m,2h,5h,10h,10h".into(),
            webhook_retry_jitter_percent: 20,
            webhook_disable_after_hours: 120,
            webhook_disable_min_span_hours: 12,
            webhook_concurrency: 128,
            webhook_endpoint_concurrency: 16,
            webhook_poll_interval_ms: 1000,
            event_retention_days: 30,
            trusted_proxies: Vec::new(),
            geo_country_header: None,
            geoip_file: None,
            geoip6_file: None,
            vpn_networks_file: None,
            tor_networks_file: None,
            proxy_networks_file: None,
            relay_networks_file: None,
            geo_reload_interval_ms: 30_000,
            license_activation_attempts_per_hour: 60,
            license_client_requests_per_minute: 120,
            portal_session_minutes: 60,
            smtp_url: None,
            mail_from: "kelviq <no-reply@localhost>".into(),
            stripe_api_base: crate::providers::stripe::STRIPE_API.into(),
            payment_orphan_after_seconds: 600,
        }
    }
}

/// Environment variables this program reads (besides `DATABASE_URL`).
const KNOWN_ENV: &[&str] = &[
    "KELVIQ_CONFIG",
    "KELVIQ_LISTEN",
    "KELVIQ_DATABASE_URL",
    "KELVIQ_DATABASE_URL_FILE",
    "KELVIQ_DATA_DIR",
    "KELVIQ_PUBLIC_URL",
    "KELVIQ_LOG_FORMAT",
    "KELVIQ_LOG",
    "KELVIQ_BODY_LIMIT_BYTES",
    "KELVIQ_DB_MAX_CONNECTIONS",
    "KELVIQ_SHUTDOWN_GRACE_SECONDS",
    "KELVIQ_KEY_CACHE_SECONDS",
    "KELVIQ_MEDIA_MAX_BYTES",
    "KELVIQ_GRACE_PERIOD_DAYS",
    "KELVIQ_DEFAULT_TAX_BEHAVIOR",
    "KELVIQ_RENEWAL_RETRIES",
    "KELVIQ_FEE_BASE_BP",
    "KELVIQ_FEE_FIXED_MINOR",
    "KELVIQ_FEE_SUBSCRIPTION_BP",
    "KELVIQ_SCHEDULER_INTERVAL_MS",
    "KELVIQ_USAGE_FOLD_INTERVAL_MS",
    "KELVIQ_USAGE_WRITERS",
    "KELVIQ_CHANGE_FEED_USAGE_RETENTION_SECONDS",
    "KELVIQ_SECRET_KEY",
    "KELVIQ_SECRET_KEY_FILE",
    "KELVIQ_WEBHOOK_ALLOW_SUBNETS",
    "KELVIQ_WEBHOOK_TIMEOUT_MS",
    "KELVIQ_WEBHOOK_RETRY_SCHEDULE",
    "KELVIQ_WEBHOOK_RETRY_JITTER_PERCENT",
    "KELVIQ_WEBHOOK_DISABLE_AFTER_HOURS",
    "KELVIQ_WEBHOOK_DISABLE_MIN_SPAN_HOURS",
    "KELVIQ_WEBHOOK_CONCURRENCY",
    "KELVIQ_WEBHOOK_ENDPOINT_CONCURRENCY",
    "KELVIQ_WEBHOOK_POLL_INTERVAL_MS",
    "KELVIQ_EVENT_RETENTION_DAYS",
    "KELVIQ_TRUSTED_PROXIES",
    "KELVIQ_GEO_COUNTRY_HEADER",
    "KELVIQ_GEOIP_FILE",
    "KELVIQ_GEOIP6_FILE",
    "KELVIQ_VPN_NETWORKS_FILE",
    "KELVIQ_TOR_NETWORKS_FILE",
    "KELVIQ_PROXY_NETWORKS_FILE",
    "KELVIQ_RELAY_NETWORKS_FILE",
    "KELVIQ_GEO_RELOAD_INTERVAL_MS",
    "KELVIQ_LICENSE_ACTIVATION_ATTEMPTS_PER_HOUR",
    "KELVIQ_LICENSE_CLIENT_REQUESTS_PER_MINUTE",
    "KELVIQ_PIN_WORKERS",
    "KELVIQ_PORTAL_SESSION_MINUTES",
    "KELVIQ_SMTP_URL",
    "KELVIQ_MAIL_FROM",
    "KELVIQ_STRIPE_API_BASE",
    "KELVIQ_PAYMENT_ORPHAN_AFTER_SECONDS",
    // Read by the SDKs, not by the server; not a typo.
    "KELVIQ_ENV",
];

impl Config {
    /// Reads `file` (if any) and then the environment on top of the defaults.
    /// Returns the config and warnings (unknown `KELVIQ_*` variables), to be
    /// logged once logging is set up.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        env_names: &[String],
    ) -> anyhow::Result<(Config, Vec<String>)> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        let mut warnings = Vec::new();
        for name in env_names {
            if name.starts_with("KELVIQ_") && !name.starts_with("KELVIQ_TEST_") && !KNOWN_ENV.contains(&name.as_str()) {
                warnings.push(format!("ignoring unknown environment variable {name}"));
            }
        }
        if let Some(v) = env("KELVIQ_LISTEN") {
            cfg.listen = v;
        }
        if let Some(path) = env("KELVIQ_DATABASE_URL_FILE") {
            let url =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("KELVIQ_DATABASE_URL_FILE {path}: {e}"))?;
            cfg.database_url = Some(url.trim().to_string());
        }
        if let Some(v) = env("KELVIQ_DATABASE_URL").or_else(|| env("DATABASE_URL")) {
            cfg.database_url = Some(v);
        }
        if let Some(v) = env("KELVIQ_DATA_DIR") {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("KELVIQ_PUBLIC_URL") {
            cfg.public_url = Some(v);
        }
        if let Some(v) = env("KELVIQ_LOG_FORMAT") {
            cfg.log_format = match v.to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => anyhow::bail!("KELVIQ_LOG_FORMAT={other}: use text or json"),
            };
        }
        if let Some(v) = env("KELVIQ_LOG") {
            cfg.log_level = v;
        }
        parse_env(env, "KELVIQ_BODY_LIMIT_BYTES", &mut cfg.body_limit_bytes)?;
        parse_env(env, "KELVIQ_DB_MAX_CONNECTIONS", &mut cfg.db_max_connections)?;
        parse_env(env, "KELVIQ_PIN_WORKERS", &mut cfg.pin_workers)?;
        parse_env(env, "KELVIQ_SHUTDOWN_GRACE_SECONDS", &mut cfg.shutdown_grace_seconds)?;
        parse_env(env, "KELVIQ_KEY_CACHE_SECONDS", &mut cfg.key_cache_seconds)?;
        parse_env(env, "KELVIQ_MEDIA_MAX_BYTES", &mut cfg.media_max_bytes)?;
        parse_env(env, "KELVIQ_GRACE_PERIOD_DAYS", &mut cfg.grace_period_days)?;
        if let Some(v) = env("KELVIQ_DEFAULT_TAX_BEHAVIOR") {
            let b = kelviq_core::tax::TaxBehavior::parse(&v)
                .ok_or_else(|| anyhow::anyhow!("KELVIQ_DEFAULT_TAX_BEHAVIOR={v}: EXCLUSIVE or INCLUSIVE"))?;
            cfg.default_tax_behavior =
                if b == kelviq_core::tax::TaxBehavior::Inclusive { "INCLUSIVE" } else { "EXCLUSIVE" }.into();
        }
        parse_env(env, "KELVIQ_RENEWAL_RETRIES", &mut cfg.renewal_retries)?;
        parse_env(env, "KELVIQ_FEE_BASE_BP", &mut cfg.fee_base_bp)?;
        parse_env(env, "KELVIQ_FEE_FIXED_MINOR", &mut cfg.fee_fixed_minor)?;
        parse_env(env, "KELVIQ_FEE_SUBSCRIPTION_BP", &mut cfg.fee_subscription_bp)?;
        parse_env(env, "KELVIQ_SCHEDULER_INTERVAL_MS", &mut cfg.scheduler_interval_ms)?;
        parse_env(env, "KELVIQ_USAGE_FOLD_INTERVAL_MS", &mut cfg.usage_fold_interval_ms)?;
        parse_env(env, "KELVIQ_USAGE_WRITERS", &mut cfg.usage_writers)?;
        parse_env(env, "KELVIQ_CHANGE_FEED_USAGE_RETENTION_SECONDS", &mut cfg.change_feed_usage_retention_seconds)?;
        if let Some(path) = env("KELVIQ_SECRET_KEY_FILE") {
            let key =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("KELVIQ_SECRET_KEY_FILE {path}: {e}"))?;
            cfg.secret_key = Some(key.trim().to_string());
        }
        if let Some(v) = env("KELVIQ_SECRET_KEY") {
            cfg.secret_key = Some(v.trim().to_string());
        }
        if let Some(v) = env("KELVIQ_WEBHOOK_ALLOW_SUBNETS") {
            cfg.webhook_allow_subnets =
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = env("KELVIQ_WEBHOOK_RETRY_SCHEDULE") {
            cfg.webhook_retry_schedule = v;
        }
        parse_env(env, "KELVIQ_WEBHOOK_TIMEOUT_MS", &mut cfg.webhook_timeout_ms)?;
        parse_env(env, "KELVIQ_WEBHOOK_RETRY_JITTER_PERCENT", &mut cfg.webhook_retry_jitter_percent)?;
        parse_env(env, "KELVIQ_WEBHOOK_DISABLE_AFTER_HOURS", &mut cfg.webhook_disable_after_hours)?;
        parse_env(env, "KELVIQ_WEBHOOK_DISABLE_MIN_SPAN_HOURS", &mut cfg.webhook_disable_min_span_hours)?;
        parse_env(env, "KELVIQ_WEBHOOK_CONCURRENCY", &mut cfg.webhook_concurrency)?;
        parse_env(env, "KELVIQ_WEBHOOK_ENDPOINT_CONCURRENCY", &mut cfg.webhook_endpoint_concurrency)?;
        parse_env(env, "KELVIQ_WEBHOOK_POLL_INTERVAL_MS", &mut cfg.webhook_poll_interval_ms)?;
        parse_env(env, "KELVIQ_EVENT_RETENTION_DAYS", &mut cfg.event_retention_days)?;
        if let Some(v) = env("KELVIQ_TRUSTED_PROXIES") {
            cfg.trusted_proxies = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = env("KELVIQ_GEO_COUNTRY_HEADER") {
            cfg.geo_country_header = Some(v).filter(|v| !v.trim().is_empty());
        }
        for (name, into) in [
            ("KELVIQ_GEOIP_FILE", &mut cfg.geoip_file),
            ("KELVIQ_GEOIP6_FILE", &mut cfg.geoip6_file),
            ("KELVIQ_VPN_NETWORKS_FILE", &mut cfg.vpn_networks_file),
            ("KELVIQ_TOR_NETWORKS_FILE", &mut cfg.tor_networks_file),
            ("KELVIQ_PROXY_NETWORKS_FILE", &mut cfg.proxy_networks_file),
            ("KELVIQ_RELAY_NETWORKS_FILE", &mut cfg.relay_networks_file),
        ] {
            if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                *into = Some(PathBuf::from(v));
            }
        }
        parse_env(env, "KELVIQ_GEO_RELOAD_INTERVAL_MS", &mut cfg.geo_reload_interval_ms)?;
        parse_env(env, "KELVIQ_LICENSE_ACTIVATION_ATTEMPTS_PER_HOUR", &mut cfg.license_activation_attempts_per_hour)?;
        parse_env(env, "KELVIQ_LICENSE_CLIENT_REQUESTS_PER_MINUTE", &mut cfg.license_client_requests_per_minute)?;
        parse_env(env, "KELVIQ_PORTAL_SESSION_MINUTES", &mut cfg.portal_session_minutes)?;
        if let Some(v) = env("KELVIQ_SMTP_URL").filter(|v| !v.trim().is_empty()) {
            cfg.smtp_url = Some(v);
        }
        if let Some(v) = env("KELVIQ_MAIL_FROM").filter(|v| !v.trim().is_empty()) {
            cfg.mail_from = v;
        }
        if let Some(v) = env("KELVIQ_STRIPE_API_BASE").filter(|v| !v.trim().is_empty()) {
            cfg.stripe_api_base = v.trim().to_string();
        }
        parse_env(env, "KELVIQ_PAYMENT_ORPHAN_AFTER_SECONDS", &mut cfg.payment_orphan_after_seconds)?;
        if !(cfg.stripe_api_base.starts_with("https://") || cfg.stripe_api_base.starts_with("http://")) {
            anyhow::bail!("stripe_api_base = {}: an http(s) URL", cfg.stripe_api_base);
        }
        cfg.webhook_settings()?;
        crate::mail::Mailer::new(&cfg)?;
        if cfg.change_feed_usage_retention_seconds < 2 {
            anyhow::bail!(
                "change_feed_usage_retention_seconds = {}: usage rows must stay in the change feed at least 2 s",
                cfg.change_feed_usage_retention_seconds
            );
        }
        Ok((cfg, warnings))
    }

    /// The database URL in force: the configured one, or the default SQLite
    /// file inside the data directory (as an absolute path).
    pub fn effective_database_url(&self) -> String {
        if let Some(url) = &self.database_url {
            return url.clone();
        }
        let dir = if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            std::env::current_dir().map(|d| d.join(&self.data_dir)).unwrap_or_else(|_| self.data_dir.clone())
        };
        format!("sqlite://{}", dir.join("kelviq.db").display())
    }

    /// The webhook settings, checked.
    pub fn webhook_settings(&self) -> anyhow::Result<WebhookSettings> {
        use kelviq_core::webhooks::{DisablePolicy, RetrySchedule, Subnet};
        let schedule = RetrySchedule::parse(&self.webhook_retry_schedule, self.webhook_retry_jitter_percent)
            .map_err(|e| anyhow::anyhow!("webhook_retry_schedule: {e}"))?;
        let allowed = self
            .webhook_allow_subnets
            .iter()
            .map(|s| Subnet::parse(s).map_err(|e| anyhow::anyhow!("webhook_allow_subnets: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !(1..=10 * 24).contains(&self.webhook_disable_after_hours) || self.webhook_disable_min_span_hours < 0 {
            anyhow::bail!("webhook_disable_after_hours is 1 to 240, webhook_disable_min_span_hours at least 0");
        }
        if !(100..=120_000).contains(&self.webhook_timeout_ms) {
            anyhow::bail!("webhook_timeout_ms is between 100 and 120000");
        }
        if self.webhook_concurrency == 0 || self.webhook_endpoint_concurrency == 0 {
            anyhow::bail!("webhook_concurrency and webhook_endpoint_concurrency are at least 1");
        }
        if !(1..=3650).contains(&self.event_retention_days) {
            anyhow::bail!("event_retention_days is between 1 and 3650");
        }
        Ok(WebhookSettings {
            schedule,
            allowed,
            disable: DisablePolicy {
                after: chrono::Duration::hours(self.webhook_disable_after_hours),
                min_span: chrono::Duration::hours(self.webhook_disable_min_span_hours),
            },
            timeout: std::time::Duration::from_millis(self.webhook_timeout_ms),
            concurrency: self.webhook_concurrency,
            endpoint_concurrency: self.webhook_endpoint_concurrency,
            poll_interval: std::time::Duration::from_millis(self.webhook_poll_interval_ms.max(10)),
            retention: chrono::Duration::days(self.event_retention_days),
        })
    }

    /// The key that seals stored secrets: the configured one, or the one in
    /// `secret.key` in the data directory (made on first use, readable by
    /// its owner only).
    pub fn secret_key(&self) -> anyhow::Result<kelviq_core::sealing::SecretKey> {
        use kelviq_core::sealing::SecretKey;
        if let Some(text) = &self.secret_key {
            return SecretKey::parse(text).map_err(|e| anyhow::anyhow!("secret_key: {e}"));
        }
        let path = self.data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => SecretKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", self.data_dir.display()))?;
                let key = SecretKey::generate();
                write_private(&path, &key.to_hex())?;
                // Two processes starting at once: whoever wrote first wins.
                let text = std::fs::read_to_string(&path)?;
                SecretKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Where uploaded files live.
    pub fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    /// The config as TOML, with secrets (database password, secret key) redacted.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.secret_key.is_some() {
            shown.secret_key = Some("***".into());
        }
        shown.database_url = Some(kelviq_store::redact_url(&self.effective_database_url()));
        shown.smtp_url = self.smtp_url.as_deref().map(kelviq_store::redact_url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

/// The checked webhook settings (see [`Config::webhook_settings`]).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub schedule: kelviq_core::webhooks::RetrySchedule,
    pub allowed: Vec<kelviq_core::webhooks::Subnet>,
    pub disable: kelviq_core::webhooks::DisablePolicy,
    pub timeout: std::time::Duration,
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    pub poll_interval: std::time::Duration,
    pub retention: chrono::Duration,
}

/// Creates `path` with `text`, readable by its owner only; an existing file is kept.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => Ok(f.write_all(text.as_bytes()).and_then(|_| f.sync_all())?),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

fn parse_env<T: std::str::FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str, into: &mut T) -> anyhow::Result<()>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = env(name) {
        *into = v.trim().parse().map_err(|e| anyhow::anyhow!("{name}={v}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// Every variable the loader reads is known, so none is warned about.
    #[test]
    fn every_variable_read_is_known() {
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        let mut rest = code;
        while let Some(at) = rest.find("\"KELVIQ_") {
            let name: String = rest[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            assert!(
                KNOWN_ENV.contains(&name.as_str()) || name == "KELVIQ_TEST_" || name == "KELVIQ_",
                "{name} is read but not in KNOWN_ENV"
            );
            rest = &rest[at + 1 + name.len()..];
        }
    }

    use super::*;
    use std::collections::HashMap;

    #[test]
    fn file_then_env_with_warnings_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kelviq.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nbody_limit_bytes = 10\n").unwrap();
        let vars: HashMap<&str, &str> = [
            ("KELVIQ_BODY_LIMIT_BYTES", "2048"),
            ("DATABASE_URL", "postgres://app:hunter2@db/kelviq"),
            ("KELVIQ_LSITEN", "typo"),
        ]
        .into();
        let names: Vec<String> = vars.keys().map(|k| k.to_string()).collect();
        let (cfg, warnings) = Config::load(Some(&file), &|k| vars.get(k).map(|v| v.to_string()), &names).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(cfg.body_limit_bytes, 2048);
        assert_eq!(warnings, ["ignoring unknown environment variable KELVIQ_LSITEN"]);
        let shown = cfg.redacted_toml();
        assert!(shown.contains("postgres://app:***@db/kelviq"), "{shown}");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |k: &str| (k == "KELVIQ_DB_MAX_CONNECTIONS").then(|| "many".to_string());
        assert!(Config::load(None, &bad, &[]).is_err());
        let short = |k: &str| (k == "KELVIQ_CHANGE_FEED_USAGE_RETENTION_SECONDS").then(|| "1".to_string());
        let refused = Config::load(None, &short, &[]).unwrap_err().to_string();
        assert!(refused.contains("change_feed_usage_retention_seconds"), "{refused}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "lisen = \"x\"").unwrap();
        assert!(Config::load(Some(&file), &|_| None, &[]).is_err(), "unknown keys in the file are errors");
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let cfg = Config { data_dir: "/var/lib/kelviq".into(), ..Config::default() };
        assert_eq!(cfg.effective_database_url(), "sqlite:///var/lib/kelviq/kelviq.db");
    }
}
