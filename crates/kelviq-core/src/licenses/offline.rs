//! Offline licence files: a licence's details and entitlements at one
//! moment, signed with Ed25519 so that an application can check them with
//! no network, until the file expires.
//!
//! The file is text:
//!
//! ```text
//! -----BEGIN KELVIQ LICENSE FILE-----
//! <base64 of {"enc": <base64 of the payload JSON>, "sig": <base64 signature>, "alg": "ed25519"}, 64 per line>
//! -----END KELVIQ LICENSE FILE-----
//! ```
//!
//! The signature covers the bytes `license/` followed by `enc` as written,
//! so nothing is re-serialised before checking. The payload holds `meta`
//! (`issued`, `expiry`, `ttl`), `license`, `instance` and `entitlements`.
//! Each tenant (organisation and environment) signs with its own key,
//! derived from the server's secret key, so every process signs alike.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ALG: &str = "ed25519";
pub const BEGIN: &str = "-----BEGIN KELVIQ LICENSE FILE-----";
pub const END: &str = "-----END KELVIQ LICENSE FILE-----";
/// Shortest, longest and default lifetime of a file, in seconds.
pub const MIN_TTL_SECONDS: i64 = 3_600;
pub const MAX_TTL_SECONDS: i64 = 365 * 86_400;
pub const DEFAULT_TTL_SECONDS: i64 = 30 * 86_400;

/// The lifetime asked for, checked (None: the default).
pub fn ttl(asked: Option<i64>) -> Result<i64, String> {
    match asked {
        None => Ok(DEFAULT_TTL_SECONDS),
        Some(t) if (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&t) => Ok(t),
        Some(_) => Err(format!("Must be between {MIN_TTL_SECONDS} (1 hour) and {MAX_TTL_SECONDS} (1 year) seconds.")),
    }
}

/// The signing key of one tenant, from 32 bytes derived for it.
pub fn signing_key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

/// The public key as `GET /license/public-key/` shows it: base64 of its 32 bytes.
pub fn public_key_text(key: &SigningKey) -> String {
    BASE64.encode(key.verifying_key().as_bytes())
}

#[derive(Debug, Serialize, Deserialize)]
struct Container {
    enc: String,
    sig: String,
    alg: String,
}

/// The `meta` part of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// ISO 8601, whole seconds.
    pub issued: String,
    pub expiry: String,
    pub ttl: i64,
}

impl Meta {
    pub fn new(issued: DateTime<Utc>, ttl: i64) -> Meta {
        let expiry = issued + chrono::Duration::seconds(ttl);
        Meta { issued: crate::timefmt::iso_seconds(issued), expiry: crate::timefmt::iso_seconds(expiry), ttl }
    }
}

/// Signs a payload (which must hold `meta`) into a file.
pub fn sign(key: &SigningKey, payload: &Value) -> String {
    let enc = BASE64.encode(payload.to_string());
    let sig = key.sign(format!("license/{enc}").as_bytes());
    let container = Container { enc, sig: BASE64.encode(sig.to_bytes()), alg: ALG.into() };
    let body = BASE64.encode(serde_json::to_vec(&container).expect("a container serialises"));
    let mut out = String::with_capacity(body.len() + 100);
    out.push_str(BEGIN);
    out.push('\n');
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a licence file")]
    Malformed,
    #[error("the licence file's signature does not match: it was changed, or signed with another key")]
    BadSignature,
    #[error("the licence file expired at {0}")]
    Expired(String),
}

/// Checks a file against a tenant's public key (base64 of 32 bytes) at
/// `now`, and gives its payload.
pub fn verify(public_key: &str, file: &str, now: DateTime<Utc>) -> Result<Value, FileError> {
    let key: [u8; 32] =
        BASE64.decode(public_key.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(FileError::Malformed)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| FileError::Malformed)?;
    let body = file.trim().strip_prefix(BEGIN).and_then(|b| b.strip_suffix(END)).ok_or(FileError::Malformed)?;
    let body: String = body.split_whitespace().collect();
    let container: Container =
        BASE64.decode(body).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(FileError::Malformed)?;
    if container.alg != ALG {
        return Err(FileError::Malformed);
    }
    let sig: [u8; 64] =
        BASE64.decode(&container.sig).ok().and_then(|b| b.try_into().ok()).ok_or(FileError::BadSignature)?;
    key.verify(format!("license/{}", container.enc).as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| FileError::BadSignature)?;
    let payload: Value =
        BASE64.decode(&container.enc).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(FileError::Malformed)?;
    let expiry = payload.pointer("/meta/expiry").and_then(Value::as_str).ok_or(FileError::Malformed)?;
    let at = DateTime::parse_from_rfc3339(expiry).map_err(|_| FileError::Malformed)?;
    if now >= at {
        return Err(FileError::Expired(expiry.to_string()));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(h: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().and_hms_opt(h, 0, 0).unwrap().and_utc()
    }

    fn signed() -> (SigningKey, String) {
        let key = signing_key(&[7; 32]);
        let meta = Meta::new(at(0), 3_600);
        let file = sign(&key, &json!({"meta": meta, "license": {"licenseKey": "LIC-1"}, "entitlements": []}));
        (key, file)
    }

    #[test]
    fn a_signed_file_verifies_until_it_expires() {
        let (key, file) = signed();
        assert!(file.starts_with(BEGIN) && file.trim_end().ends_with(END));
        assert!(file.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        let public = public_key_text(&key);
        let payload = verify(&public, &file, at(0)).unwrap();
        assert_eq!(payload["license"]["licenseKey"], "LIC-1");
        assert_eq!(payload["meta"]["expiry"], "2026-03-01T01:00:00Z");
        assert_eq!(verify(&public, &file, at(1)), Err(FileError::Expired("2026-03-01T01:00:00Z".into())));
        let other = public_key_text(&signing_key(&[8; 32]));
        assert_eq!(verify(&other, &file, at(0)), Err(FileError::BadSignature));
    }

    #[test]
    fn any_changed_byte_of_the_body_is_refused() {
        let (key, file) = signed();
        let public = public_key_text(&key);
        let start = BEGIN.len() + 1;
        let end = file.len() - END.len() - 2;
        for i in start..end {
            let mut bytes = file.clone().into_bytes();
            if bytes[i] == b'\n' {
                continue;
            }
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed == file {
                continue;
            }
            assert!(verify(&public, &changed, at(0)).is_err(), "byte {i} changed and still verified");
        }
    }

    #[test]
    fn lifetimes() {
        assert_eq!(ttl(None), Ok(DEFAULT_TTL_SECONDS));
        assert_eq!(ttl(Some(3_600)), Ok(3_600));
        assert!(ttl(Some(3_599)).is_err() && ttl(Some(MAX_TTL_SECONDS + 1)).is_err());
    }
}
