//! Offline licence files (`POST /license/checkout/`) and the public key that
//! checks them (`GET /license/public-key/`). Each environment signs with its
//! own Ed25519 key, derived from the server's secret key, so every process
//! of a deployment signs alike and one tenant's files do not verify under
//! another's key. The format is [`kelviq_core::licenses::offline`].

use super::activation::{instance_uuid, Failure, Refusal};
use super::cache;
use crate::clock::tenant_now;
use crate::state::AppState;
use crate::wire::licenses::{LicenseFileOut, PublicKeyOut};
use kelviq_core::licenses::offline::{self, Meta};
use kelviq_core::timefmt::iso_seconds;
use kelviq_core::Tenant;
use serde_json::{json, Value};

fn signing_key(state: &AppState, tenant: &Tenant) -> ed25519_dalek::SigningKey {
    let purpose = format!("kelviq/license-files/v1/{}/{}", tenant.org_id, tenant.env.as_str());
    offline::signing_key(&state.webhooks.key.derive(&purpose))
}

pub fn public_key(state: &AppState, tenant: &Tenant) -> PublicKeyOut {
    PublicKeyOut { public_key: offline::public_key_text(&signing_key(state, tenant)), alg: offline::ALG.into() }
}

/// Signs a file for a valid license and one of its live instances: the
/// license's details and the customer's entitlements now, for `ttl` seconds.
pub async fn checkout(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    instance_id: &str,
    ttl: i64,
) -> Result<LicenseFileOut, Failure> {
    let now = tenant_now(state, tenant).await?;
    let not_found = || Failure::Refused(Refusal::NotFound("Invalid license key or instance ID.".into()));
    instance_uuid(instance_id).ok_or_else(not_found)?;
    let answer = cache::validate(state, tenant, key, Some(instance_id), now).await?;
    if !answer.found {
        return Err(not_found());
    }
    let body: Value = serde_json::from_str(&answer.body).map_err(|e| anyhow::anyhow!("validation answer: {e}"))?;
    if !answer.validity.valid() {
        let detail = body["detail"].as_str().unwrap_or("This license is not valid.").to_string();
        return Err(Failure::Refused(Refusal::Forbidden(detail)));
    }
    let entry = answer.entry.ok_or_else(|| anyhow::anyhow!("a found license without its entry"))?;
    let entitlements = match crate::usage::engine::load(state, tenant, &entry.row.customer_id).await? {
        Some(c) => c.rows(now).iter().map(crate::usage::engine::Row::to_wire).collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let meta = Meta::new(now, ttl);
    let payload = json!({
        "meta": meta,
        "license": body["license"],
        "instance": {"id": instance_id.trim().to_ascii_lowercase(), "metadata": body["metadata"]},
        "entitlements": entitlements,
    });
    Ok(LicenseFileOut {
        certificate: offline::sign(&signing_key(state, tenant), &payload),
        issued_at: iso_seconds(now),
        expires_at: meta.expiry,
        ttl,
        alg: offline::ALG.into(),
    })
}
