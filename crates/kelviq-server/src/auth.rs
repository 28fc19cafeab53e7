//! Resolves presented API keys to tenants, with a short-lived cache so the hot
//! path does not touch the database on every request. Keys are stored hashed;
//! the stored hash is compared in constant time.

use kelviq_core::keys::{hash, hashes_match};
use kelviq_store::{KeyIdentity, Store, StoreError};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Longest secret accepted; anything longer cannot be one of ours.
const MAX_SECRET_LEN: usize = 128;

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (KeyIdentity, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::new()) }
    }

    /// Forgets a key (by secret hash) so its next use is looked up again.
    pub fn evict(&self, secret_hash: &str) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(secret_hash);
    }

    /// The identity behind `secret`, or `None` when it is unknown or revoked.
    pub async fn resolve(&self, store: &Store, secret: &str) -> Result<Option<KeyIdentity>, StoreError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let digest = hash(secret);
        if let Some((identity, at)) = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            if at.elapsed() < self.ttl {
                return Ok(Some(identity.clone()).filter(|i| !i.revoked));
            }
        }
        let found = store.find_key_identity(&digest).await?;
        let found = found.filter(|i| hashes_match(&i.secret_hash, &digest));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match &found {
            Some(identity) => {
                if entries.len() > 10_000 {
                    entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
                }
                entries.insert(digest, (identity.clone(), Instant::now()));
            }
            None => {
                entries.remove(&digest);
            }
        }
        Ok(found.filter(|i| !i.revoked))
    }
}
