//! Webhooks: endpoints (their secrets sealed at rest), the dispatcher that
//! delivers the outbox's events to them, and the services behind the API.
//! The queue lives in the database (`kelviq_store::webhooks`); the rules
//! (signatures, schedule, verdicts, private addresses) in
//! `kelviq_core::webhooks`.

pub mod dispatcher;
pub mod endpoints;
pub mod send;
pub mod target;

use crate::config::{Config, WebhookSettings};
use kelviq_core::sealing::SecretKey;
use std::sync::Arc;

/// What the webhook services and the dispatcher share.
pub struct Webhooks {
    pub settings: WebhookSettings,
    /// Seals and opens the endpoints' signing secrets.
    pub key: SecretKey,
    /// Sends the attempts: no redirects, no proxy, the configured timeout,
    /// names resolved by [`target::GuardedResolver`].
    pub client: reqwest::Client,
}

impl Webhooks {
    pub fn new(config: &Config) -> anyhow::Result<Webhooks> {
        let settings = config.webhook_settings()?;
        let key = config.secret_key()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(10)))
            .pool_max_idle_per_host(settings.endpoint_concurrency)
            .user_agent(concat!("kelviq-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(target::GuardedResolver { allowed: Arc::new(settings.allowed.clone()) }))
            .build()?;
        Ok(Webhooks { settings, key, client })
    }
}
