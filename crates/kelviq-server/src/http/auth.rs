//! Resolves presented API keys to tenants, with a short-lived cache so the hot
//! path does not touch the database on every request. Keys are stored hashed;
//! the stored hash is compared in constant time.

use kelviq_core::keys::{digest, hashes_match, KeyKind};
use kelviq_core::Tenant;
use kelviq_store::{Store, StoreError};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
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

/// A key's SHA-256 digest, the cache's key. It is already uniformly spread,
/// so its first eight bytes are its hash (SipHash over the hex form was a
/// measurable part of the entitlement check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest([u8; 32]);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(first));
    }
}

/// Passes [`Digest`]'s hash through.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Digest`; anything else still hashes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

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
            self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(&Digest(d));
        }
    }

    /// The identity behind `secret`, or `None` when it is unknown or revoked.
    pub async fn resolve(&self, store: &Store, secret: &str) -> Result<Option<Resolved>, StoreError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let d = Digest(digest(secret));
        if let Some(e) = self.entries.read().unwrap_or_else(|e| e.into_inner()).get(&d) {
            if e.at.elapsed() < self.ttl {
                return Ok((!e.revoked).then(|| e.resolved.clone()));
            }
        }
        let stored_hash = hex::encode(d.0);
        let found = store.find_key_identity(&stored_hash).await?;
        let found = found.filter(|i| hashes_match(&i.secret_hash, &stored_hash));
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let Some(identity) = found else {
            entries.remove(&d);
            return Ok(None);
        };
        if entries.len() > 10_000 {
            entries.retain(|_, e| e.at.elapsed() < self.ttl);
        }
        let resolved = Resolved { tenant: identity.tenant, kind: identity.kind };
        entries.insert(d, Entry { resolved: resolved.clone(), revoked: identity.revoked, at: Instant::now() });
        Ok((!identity.revoked).then_some(resolved))
    }
}
