//! Rust client for the Kelviq API, mirroring the official Python SDK.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kelviq_sdk::Error> {
//! let client = kelviq_sdk::Kelviq::builder()
//!     .access_token("sk_test_…")
//!     .base_url("http://127.0.0.1:8080")
//!     .build()?;
//! let customer = client.customers().retrieve("user-123").await?;
//! println!("{}", customer.customer_id);
//! # Ok(()) }
//! ```
//!
//! [`blocking::Kelviq`] offers the same modules without async.

pub mod blocking;
pub mod cache;
pub mod catalog;
pub mod customers;
pub mod discounts;
pub mod entitlements;
mod environment;
mod error;
mod http;
pub mod invoices;
pub mod licenses;
pub mod models;
pub mod offering;
pub mod plans;
pub mod portal;
pub mod promotions;
pub mod reporting;
pub mod selling;
pub mod tax_rates;
pub mod webhook_api;
pub mod webhooks;

pub use environment::{environment_from_env, hosts_for};
pub use error::{Error, ErrorKind};
pub use webhooks::{validate_event, WebhookVerificationError};

use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// Configures a client. `access_token` is required; everything else has the
/// Python SDK's defaults (production hosts, API v1, 10 s timeout).
#[derive(Clone, Default)]
pub struct KelviqBuilder {
    access_token: Option<String>,
    environment: Option<String>,
    base_url: Option<String>,
    edge_api_url: Option<String>,
    api_version: Option<String>,
    timeout: Option<Duration>,
    enable_cache: Option<bool>,
    cache_ttl: Option<Duration>,
    cache_store: Option<Arc<dyn cache::CacheStore>>,
}

impl std::fmt::Debug for dyn cache::CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheStore")
    }
}

impl KelviqBuilder {
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// `prod`/`production`, `sandbox` or `staging`; picks the Kelviq hosts
    /// unless both URLs are given. See [`environment_from_env`] for `KELVIQ_ENV`.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Core API host, e.g. `http://127.0.0.1:8080` for a self-hosted server.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Host for entitlement checks (the edge API).
    pub fn edge_api_url(mut self, url: impl Into<String>) -> Self {
        self.edge_api_url = Some(url.into());
        self
    }

    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cache entitlement answers (default on).
    pub fn enable_cache(mut self, enabled: bool) -> Self {
        self.enable_cache = Some(enabled);
        self
    }

    /// How long a cached answer is fresh (default 60 s).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// A shared L2 cache (and offline queue) store, e.g. [`cache::RedisStore`].
    pub fn cache_store(mut self, store: Arc<dyn cache::CacheStore>) -> Self {
        self.cache_store = Some(store);
        self
    }

    fn http(&self) -> Result<http::Http, Error> {
        let token = self
            .access_token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| Error::invalid_request("access_token is required", None))?;
        let environment = self.environment.as_deref().unwrap_or("prod");
        let (default_base, default_edge) = match hosts_for(environment) {
            Some(hosts) => hosts,
            None => {
                if self.base_url.is_none() || self.edge_api_url.is_none() {
                    tracing::warn!(environment, "unknown Kelviq environment; using the production hosts");
                }
                hosts_for("prod").expect("prod is known")
            }
        };
        let base = self.base_url.clone().unwrap_or_else(|| default_base.to_string());
        let edge = self.edge_api_url.clone().unwrap_or_else(|| default_edge.to_string());
        http::Http::new(
            &token,
            base.trim_end_matches('/'),
            edge.trim_end_matches('/'),
            self.api_version.as_deref().unwrap_or("v1"),
            self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        )
    }

    /// The async client.
    pub fn build(self) -> Result<Kelviq, Error> {
        let cache = cache::Cache::new(
            self.enable_cache.unwrap_or(true),
            self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL),
            self.cache_store.clone(),
        );
        Ok(Kelviq { http: Arc::new(self.http()?), cache: Arc::new(cache) })
    }

    /// The blocking client. Do not call its methods from inside an async runtime.
    pub fn build_blocking(self) -> Result<blocking::Kelviq, Error> {
        blocking::Kelviq::new(self.build()?)
    }
}

/// The async client. Cheap to clone; clones share one connection pool, cache and queue.
#[derive(Clone)]
pub struct Kelviq {
    http: Arc<http::Http>,
    cache: Arc<cache::Cache>,
}

impl std::fmt::Debug for Kelviq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kelviq").field("http", &self.http).finish_non_exhaustive()
    }
}

impl Kelviq {
    pub fn builder() -> KelviqBuilder {
        KelviqBuilder::default()
    }

    pub fn customers(&self) -> customers::Customers<'_> {
        customers::Customers::new(&self.http)
    }

    /// Webhook endpoints, events, resend and recover (a self-hosted kelviq server).
    pub fn webhooks(&self) -> webhook_api::Webhooks<'_> {
        webhook_api::Webhooks::new(&self.http)
    }

    /// Invoices, the upcoming invoice, void and pay (a self-hosted kelviq server).
    pub fn invoices(&self) -> invoices::Invoices<'_> {
        invoices::Invoices::new(&self.http)
    }

    /// Tax rates by country and region (a self-hosted kelviq server).
    pub fn tax_rates(&self) -> tax_rates::TaxRates<'_> {
        tax_rates::TaxRates::new(&self.http)
    }

    /// Discount codes (a self-hosted kelviq server).
    pub fn discounts(&self) -> discounts::Discounts<'_> {
        discounts::Discounts::new(&self.http)
    }

    /// License keys: activate, validate, heartbeats, offline files, management.
    pub fn licenses(&self) -> licenses::Licenses<'_> {
        licenses::Licenses::new(&self.http)
    }

    /// Customer portal sessions.
    pub fn portal(&self) -> portal::Portal<'_> {
        portal::Portal::new(&self.http)
    }

    /// Purchasing-power-parity promotions and their edge answer.
    pub fn promotions(&self) -> promotions::Promotions<'_> {
        promotions::Promotions::new(&self.http)
    }

    /// A product's offering, for pricing pages.
    pub fn offering(&self) -> offering::Offering<'_> {
        offering::Offering::new(&self.http)
    }

    pub fn catalog(&self) -> catalog::Catalog<'_> {
        catalog::Catalog::new(&self.http)
    }

    /// The entitlement check, cached (spec §5.1, §5.2).
    pub fn entitlements(&self) -> entitlements::Entitlements<'_> {
        entitlements::Entitlements::new(&self.http, &self.cache)
    }

    /// Usage and event reporting with the offline queue (spec §5.3).
    pub fn reporting(&self) -> reporting::Reporting<'_> {
        reporting::Reporting::new(&self.http, &self.cache)
    }

    pub fn checkout(&self) -> selling::Checkout<'_> {
        selling::Checkout::new(&self.http)
    }

    pub fn subscriptions(&self) -> selling::Subscriptions<'_> {
        selling::Subscriptions::new(&self.http)
    }

    pub fn charges(&self) -> selling::Charges<'_> {
        selling::Charges::new(&self.http)
    }

    pub fn refunds(&self) -> selling::Refunds<'_> {
        selling::Refunds::new(&self.http)
    }

    pub fn transactions(&self) -> selling::Transactions<'_> {
        selling::Transactions::new(&self.http)
    }

    pub fn payment_methods(&self) -> selling::PaymentMethods<'_> {
        selling::PaymentMethods::new(&self.http)
    }
}
