//! The application state every handler, service and background loop shares.

use crate::config::Config;
use crate::http::auth::KeyCache;
use kelviq_core::{Clock, Environment};
use kelviq_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Everything a request handler may need. Cheap to clone: one shared
/// reference (handlers and extractors clone it several times per request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    pub keys: Arc<KeyCache>,
    /// In-memory entitlement state (see `entitlements`).
    pub entitlements: Arc<crate::usage::engine::Engine>,
    /// Sandbox test clock offsets per tenant, as last read or set.
    pub test_clocks: Arc<std::sync::RwLock<std::collections::HashMap<(uuid::Uuid, Environment), chrono::Duration>>>,
    /// This process's name in the change feed.
    pub origin: Arc<str>,
    /// The usage writer (group commit), started by `serve`.
    pub ingest: crate::usage::Ingest,
    /// Webhook settings, the secret key and the delivery client.
    pub webhooks: crate::webhooks::Webhooks,
    /// Where requests come from (see `geo`).
    pub geo: Arc<crate::geo::Geo>,
    /// Promotions the edge answer read recently.
    pub promotions: crate::promotions::edge::Cache,
    /// Licenses validated recently, instances seen, client-key call counts.
    pub licenses: crate::licenses::Licenses,
    /// Sends the server's mail (and keeps it in the outbox).
    pub mailer: crate::mail::Mailer,
}

impl AppState {
    /// The state for `config`. Panics when the secret key cannot be read or
    /// made, or the webhook settings are unusable: `Config::load` checks the
    /// settings, and `kelviq serve` and `kelviq webhooks` read the key first.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        let webhooks =
            crate::webhooks::Webhooks::new(&config).unwrap_or_else(|e| panic!("webhook settings or secret key: {e:#}"));
        let keys = Arc::new(KeyCache::new(Duration::from_secs(config.key_cache_seconds)));
        let geo = Arc::new(crate::geo::Geo::load(&config).unwrap_or_else(|e| panic!("geo files: {e:#}")));
        let mailer = crate::mail::Mailer::new(&config).unwrap_or_else(|e| panic!("mail settings: {e:#}"));
        Self(Arc::new(Shared {
            store,
            clock,
            config: Arc::new(config),
            keys,
            entitlements: Arc::default(),
            test_clocks: Arc::default(),
            origin: uuid::Uuid::new_v4().simple().to_string().into(),
            ingest: crate::usage::Ingest::default(),
            webhooks,
            geo,
            promotions: Default::default(),
            licenses: Default::default(),
            mailer,
        }))
    }
}
