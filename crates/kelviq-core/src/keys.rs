//! API keys: how they look, how they are stored (hashed), how they are compared
//! (in constant time).
//!
//! A key is `<kind>_<env>_<40 random alphanumerics>`, e.g. `sk_test_…` for a
//! sandbox server key and `ck_live_…` for a production client key. Only the
//! SHA-256 of the whole secret is stored, plus a short display prefix.

use crate::Environment;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Backend key: full API access within its environment.
    Server,
    /// Public key for browsers and apps: may only read entitlements.
    Client,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Server => "server",
            KeyKind::Client => "client",
        }
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "server" => Ok(KeyKind::Server),
            "client" => Ok(KeyKind::Client),
            other => Err(format!("unknown key kind {other:?}: use server or client")),
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Length of the random part of a key.
const SECRET_LEN: usize = 40;
/// How many leading characters of a key are kept in clear for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;

/// A freshly minted key. The secret exists only here and in what is shown to
/// the user once; storage keeps `hash` and `prefix`.
#[derive(Debug)]
pub struct NewKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate(kind: KeyKind, env: Environment) -> NewKey {
    let kind_part = match kind {
        KeyKind::Server => "sk",
        KeyKind::Client => "ck",
    };
    let env_part = match env {
        Environment::Sandbox => "test",
        Environment::Production => "live",
    };
    let secret = format!("{kind_part}_{env_part}_{}", crate::ids::random_alphanumeric(SECRET_LEN));
    NewKey { hash: hash(&secret), prefix: secret[..DISPLAY_PREFIX_LEN].to_string(), secret }
}

/// The stored form of a key: lower-case hex SHA-256 of the secret.
pub fn hash(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// The SHA-256 digest of a secret, whose hex form is [`hash`].
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two stored hashes without leaking where they first differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_kind_and_environment_and_hash_stably() {
        let k = generate(KeyKind::Server, Environment::Sandbox);
        assert!(k.secret.starts_with("sk_test_"));
        assert_eq!(k.secret.len(), 8 + SECRET_LEN);
        assert_eq!(k.prefix, &k.secret[..12]);
        assert_eq!(k.hash, hash(&k.secret));
        assert!(hashes_match(&k.hash, &hash(&k.secret)));
        assert!(!hashes_match(&k.hash, &hash("sk_test_other")));
        let c = generate(KeyKind::Client, Environment::Production);
        assert!(c.secret.starts_with("ck_live_"));
        assert_ne!(generate(KeyKind::Server, Environment::Sandbox).secret, k.secret);
    }
}
