//! License keys: activate, deactivate and validate (Kelviq's three calls),
//! heartbeats for floating seats, signed offline licence files and their
//! verification with no network, and the merchant's management calls (a
//! self-hosted kelviq server).
//!
//! ```no_run
//! # async fn run(client: kelviq_sdk::Kelviq) -> Result<(), kelviq_sdk::Error> {
//! let licenses = client.licenses();
//! let activated = licenses.activate("LIC-…", None, Some("laptop"), None).await?;
//! let verdict = licenses.validate("LIC-…", Some(&activated.instance_id)).await?;
//! assert!(verdict.valid);
//! # Ok(()) }
//! ```

use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::{Error, ErrorKind};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The customer of a license.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCustomer {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The product of a license's plan.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlanProduct {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub tax_code: Option<String>,
    pub created_on: Option<String>,
    pub modified_on: Option<String>,
}

/// The plan a license was bought with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlan {
    pub identifier: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub product: Option<LicensePlanProduct>,
    pub version: Option<i64>,
    pub is_latest: Option<bool>,
}

/// A license (`LicenseDetails`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDetails {
    pub id: String,
    pub license_key: String,
    pub activated_on: Option<String>,
    pub expires_on: Option<String>,
    pub activation_usage: i64,
    /// 0: unlimited.
    pub activation_limit: i64,
    pub enabled: bool,
    pub customer: Option<LicenseCustomer>,
    pub plan: Option<LicensePlan>,
    /// The purchase (the subscription's shape).
    pub subscription: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activated {
    pub instance_id: String,
    pub activated_at: String,
    pub expires_on: Option<String>,
    pub license: LicenseDetails,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deactivated {
    pub message: String,
    pub deactivated_at: String,
}

/// A validation's verdict. An unknown key or instance is a verdict too
/// (`INVALID_KEY`, `INSTANCE_NOT_FOUND`), not an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    pub code: String,
    pub detail: String,
    #[serde(default)]
    pub metadata: Value,
    pub license: Option<LicenseDetails>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub instance_id: String,
    pub last_heartbeat_at: String,
    pub next_heartbeat_due_at: Option<String>,
    pub heartbeat_ttl_seconds: Option<i64>,
}

/// A signed offline licence file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseFile {
    /// The file's text, to store with the application.
    pub certificate: String,
    pub issued_at: String,
    pub expires_at: String,
    pub ttl: i64,
    pub alg: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// Base64 of the 32-byte Ed25519 key.
    pub public_key: String,
    pub alg: String,
}

/// An instance, as the merchant sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub name: Option<String>,
    pub fingerprint: Option<String>,
    pub metadata: Value,
    pub activated_at: String,
    pub last_heartbeat_at: String,
    pub last_seen_at: Option<String>,
    pub deactivated_at: Option<String>,
    pub deactivated_by: Option<String>,
    pub active: bool,
}

/// A license with its instances, as the merchant sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct License {
    #[serde(flatten)]
    pub details: LicenseDetails,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub order_id: Option<String>,
    pub disabled_reason: Option<String>,
    pub heartbeat_ttl_seconds: Option<i64>,
    pub reuse_instance_by_fingerprint: bool,
    pub grace_days: i64,
    pub instances: Vec<Instance>,
    pub created_on: String,
    pub modified_on: String,
}

/// Changes to a license (`Some(None)`: unlimited, or never expires).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_limit: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<Option<String>>,
}

/// Why an offline file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a licence file, or a public key that is not one")]
    Malformed,
    #[error("the licence file's signature does not match: it was changed, or signed with another key")]
    BadSignature,
    #[error("the licence file expired at {0}")]
    Expired(String),
}

const BEGIN: &str = "-----BEGIN KELVIQ LICENSE FILE-----";
const END: &str = "-----END KELVIQ LICENSE FILE-----";

#[derive(Deserialize)]
struct Container {
    enc: String,
    sig: String,
    alg: String,
}

/// Checks an offline licence file with the environment's public key (base64,
/// from [`Licenses::public_key`]) at `now`, with no network; gives its
/// payload: `meta` (`issued`, `expiry`, `ttl`), `license`, `instance` and
/// `entitlements`.
pub fn verify_file(public_key: &str, file: &str, now: DateTime<Utc>) -> Result<Value, FileError> {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let key: [u8; 32] =
        BASE64.decode(public_key.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(FileError::Malformed)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| FileError::Malformed)?;
    let body = file.trim().strip_prefix(BEGIN).and_then(|b| b.strip_suffix(END)).ok_or(FileError::Malformed)?;
    let body: String = body.split_whitespace().collect();
    let container: Container =
        BASE64.decode(body).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(FileError::Malformed)?;
    if container.alg != "ed25519" {
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

pub struct Licenses<'a> {
    http: &'a Http,
}

impl<'a> Licenses<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        self.http.url(Host::Core, segments, true)
    }

    async fn post(&self, segments: &[&str], body: Value) -> Result<Value, Error> {
        self.http.request(Method::POST, self.url(segments), &[], Some(&body)).await
    }

    /// Activates an instance (201), or returns the live instance with the
    /// same `metadata.fingerprint` when the plan reuses them.
    pub async fn activate(
        &self,
        license_key: &str,
        customer_id: Option<&str>,
        instance_name: Option<&str>,
        metadata: Option<Value>,
    ) -> Result<Activated, Error> {
        let mut body = json!({ "license_key": license_key });
        if let Some(c) = customer_id {
            body["customer_id"] = json!(c);
        }
        if let Some(n) = instance_name {
            body["instance_name"] = json!(n);
        }
        if let Some(m) = metadata {
            body["metadata"] = m;
        }
        decode(self.post(&["license", "activate"], body).await?)
    }

    pub async fn deactivate(&self, license_key: &str, instance_id: &str) -> Result<Deactivated, Error> {
        let body = json!({ "license_key": license_key, "instance_id": instance_id });
        decode(self.post(&["license", "deactivate"], body).await?)
    }

    /// Validates a key (and an instance of it). Server or client key.
    pub async fn validate(&self, license_key: &str, instance_id: Option<&str>) -> Result<Validation, Error> {
        let mut body = json!({ "license_key": license_key });
        if let Some(i) = instance_id {
            body["instance_id"] = json!(i);
        }
        match self.post(&["license", "validate"], body).await {
            Ok(v) => decode(v),
            // An unknown key or instance: the verdict is in the 404's body.
            Err(e) if e.kind() == ErrorKind::NotFound => match e.details().and_then(|d| decode(d.clone()).ok()) {
                Some(verdict) => Ok(verdict),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Records a floating instance's heartbeat. Server or client key.
    pub async fn heartbeat(&self, license_key: &str, instance_id: &str) -> Result<Heartbeat, Error> {
        let body = json!({ "license_key": license_key, "instance_id": instance_id });
        decode(self.post(&["license", "heartbeat"], body).await?)
    }

    /// A signed offline licence file, good for `ttl_seconds` (1 hour to 1
    /// year; default 30 days). Server or client key.
    pub async fn checkout(
        &self,
        license_key: &str,
        instance_id: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<LicenseFile, Error> {
        let mut body = json!({ "license_key": license_key, "instance_id": instance_id });
        if let Some(t) = ttl_seconds {
            body["ttl"] = json!(t);
        }
        decode(self.post(&["license", "checkout"], body).await?)
    }

    /// The environment's key that signs licence files.
    pub async fn public_key(&self) -> Result<PublicKey, Error> {
        decode(self.http.request(Method::GET, self.url(&["license", "public-key"]), &[], None).await?)
    }

    /// A page of licenses (a customer's, with `customer_id`), oldest first.
    pub async fn list(&self, customer_id: Option<&str>, page: Option<u32>) -> Result<Page<License>, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(c) = customer_id {
            query.push(("customer_id", c.to_string()));
        }
        if let Some(p) = page {
            query.push(("page", p.to_string()));
        }
        decode(self.http.request(Method::GET, self.url(&["licenses"]), &query, None).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<License, Error> {
        decode(self.http.request(Method::GET, self.url(&["licenses", id]), &[], None).await?)
    }

    pub async fn update(&self, id: &str, changes: LicenseChanges) -> Result<License, Error> {
        let body = serde_json::to_value(&changes).expect("changes serialise");
        decode(self.http.request(Method::PATCH, self.url(&["licenses", id]), &[], Some(&body)).await?)
    }

    /// A new key; the old one stops validating at once.
    pub async fn regenerate(&self, id: &str) -> Result<License, Error> {
        decode(self.post(&["licenses", id, "regenerate"], json!({})).await?)
    }

    /// Ends every live instance.
    pub async fn reset(&self, id: &str) -> Result<License, Error> {
        decode(self.post(&["licenses", id, "reset"], json!({})).await?)
    }

    /// Ends one instance.
    pub async fn revoke_instance(&self, id: &str, instance_id: &str) -> Result<License, Error> {
        decode(
            self.http.request(Method::DELETE, self.url(&["licenses", id, "instances", instance_id]), &[], None).await?,
        )
    }
}
