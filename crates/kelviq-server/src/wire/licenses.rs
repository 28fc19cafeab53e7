//! Licenses as the API shows them: Kelviq's three answers (spec §1.7, the
//! Python SDK's `LicenseDetails` and its parts) and our additions
//! (heartbeat, offline files, the merchant's view with instances).

use crate::wire::selling::SubscriptionOut;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The customer a license belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCustomerOut {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The product of a license's plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlanProductOut {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub tax_code: Option<String>,
    pub created_on: Option<String>,
    pub modified_on: Option<String>,
}

/// The plan a license was bought with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicensePlanOut {
    pub identifier: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub product: Option<LicensePlanProductOut>,
    pub version: Option<i64>,
    pub is_latest: Option<bool>,
}

/// A license (`LicenseDetails`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDetailsOut {
    pub id: String,
    pub license_key: String,
    /// When it was first activated (ISO 8601), null before.
    pub activated_on: Option<String>,
    pub expires_on: Option<String>,
    /// Live instances (a floating one past its heartbeat and a minute is not counted).
    pub activation_usage: i64,
    /// 0: unlimited.
    pub activation_limit: i64,
    pub enabled: bool,
    pub customer: Option<LicenseCustomerOut>,
    pub plan: Option<LicensePlanOut>,
    pub subscription: Option<Box<SubscriptionOut>>,
}

/// A license as a subscription, an order or the portal lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionLicenseOut {
    pub id: String,
    pub license_key: String,
    pub activated_on: Option<String>,
    pub expires_on: Option<String>,
    pub activation_usage: i64,
    pub activation_limit: i64,
    pub enabled: bool,
}

/// `POST /license/activate/`: 201.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivateOut {
    pub instance_id: String,
    pub activated_at: String,
    pub expires_on: Option<String>,
    pub license: LicenseDetailsOut,
}

/// `POST /license/deactivate/`: 200.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeactivateOut {
    pub message: String,
    pub deactivated_at: String,
}

/// `POST /license/validate/`: 200, or 404 for an unknown key or instance
/// (`license` absent then).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOut {
    pub valid: bool,
    /// VALID, EXPIRED (valid while in grace), DISABLED, SUBSCRIPTION_INACTIVE,
    /// HEARTBEAT_DEAD, INSTANCE_NOT_FOUND, INVALID_KEY.
    pub code: String,
    pub detail: String,
    /// The instance's metadata (`{}` without an instance).
    pub metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseDetailsOut>,
}

/// `POST /license/heartbeat/`: 200.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatOut {
    pub instance_id: String,
    pub last_heartbeat_at: String,
    /// Null when the license needs no heartbeat.
    pub next_heartbeat_due_at: Option<String>,
    pub heartbeat_ttl_seconds: Option<i64>,
}

/// `POST /license/checkout/`: a signed offline licence file.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseFileOut {
    /// The file: `-----BEGIN KELVIQ LICENSE FILE-----`, base64, `-----END KELVIQ LICENSE FILE-----`.
    pub certificate: String,
    pub issued_at: String,
    pub expires_at: String,
    pub ttl: i64,
    /// `ed25519`.
    pub alg: String,
}

/// `GET /license/public-key/`: the environment's key that signs licence files.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyOut {
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub alg: String,
}

/// An instance, as the merchant sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceOut {
    pub id: String,
    pub name: Option<String>,
    pub fingerprint: Option<String>,
    pub metadata: Value,
    pub activated_at: String,
    pub last_heartbeat_at: String,
    pub last_seen_at: Option<String>,
    pub deactivated_at: Option<String>,
    /// CUSTOMER (the app deactivated it), MERCHANT (revoked or reset), HEARTBEAT (missed).
    pub deactivated_by: Option<String>,
    /// Live and, for a floating license, heartbeating.
    pub active: bool,
}

/// A license with its instances and policy, as the merchant sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseOut {
    #[serde(flatten)]
    pub details: LicenseDetailsOut,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub order_id: Option<String>,
    /// MERCHANT or REFUND when disabled.
    pub disabled_reason: Option<String>,
    pub heartbeat_ttl_seconds: Option<i64>,
    pub reuse_instance_by_fingerprint: bool,
    pub grace_days: i64,
    pub instances: Vec<InstanceOut>,
    pub created_on: String,
    pub modified_on: String,
}
