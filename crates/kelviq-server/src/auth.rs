//! Resolves presented API keys to tenants, with a short-lived cache so the hot
//! path does not touch the database on every request. Keys are stored hashed;
//! the stored hash is compared in constant time.

use kelviq_core::keys::{digest, hashes_match, KeyKind};
use kelviq_core::Tenant;
use kelviq_store::{Store, StoreError};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Longest secret accepted; anything longer cannot be one of ours.
const MAX_SECRET_LEN: usize = 128;

/// Who a key speaks for.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub tenant: Tenant,
    pub kind: KeyKind,
}

/// A SHA-256 digest is already uniformly spread: its first eight bytes are
/// the table's hash (SipHash over the hex form was a measurable part of the
/// entitlement check).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

type Digest = [u8; 32];

#[derive(Debug, Clone)]
struct Entry {
    resolved: Resolved,
    revoked: bool,
    at: Instant,
}

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<Digest, Entry, BuildHasherDefault<DigestHasher>>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::default()) }
    }

    /// Forgets a key (by its stored secret hash, hex) so its next use is looked up again.
    pub fn evict(&self, secret_hash: &str) {
        let mut d = [0u8; 32];
        if hex::decode_to_slice(secret_hash, &mut d).is_ok() {
            self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(&d);
        }
    }

    /// The identity behind `secret`, or `None` when it is unknown or revoked.
    pub async fn resolve(&self, store: &Store, secret: &str) -> Result<Option<Resolved>, StoreError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let d = digest(secret);
        if let Some(e) = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(&d) {
            if e.at.elapsed() < self.ttl {
                return Ok((!e.revoked).then(|| e.resolved.clone()));
            }
        }
        let stored_hash = hex::encode(d);
        let found = store.find_key_identity(&stored_hash).await?;
        let found = found.filter(|i| hashes_match(&i.secret_hash, &stored_hash));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match &found {
            Some(identity) => {
                if entries.len() > 10_000 {
                    entries.retain(|_, e| e.at.elapsed() < self.ttl);
                }
                let resolved = Resolved { tenant: identity.tenant.clone(), kind: identity.kind };
                entries.insert(d, Entry { resolved, revoked: identity.revoked, at: Instant::now() });
            }
            None => {
                entries.remove(&d);
            }
        }
        Ok(found.filter(|i| !i.revoked).map(|i| Resolved { tenant: i.tenant, kind: i.kind }))
    }
}
