//! The merchant's hand on licenses (server key): list a customer's
//! licenses with their instances, change the limit, expiry or `enabled`,
//! regenerate the key (the old one stops at once), revoke one instance or
//! all of them. Each change is one unit of work under the license's lock.

use super::{event_object, holding, key_of};
use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::selling::finish;
use crate::state::AppState;
use crate::wire::licenses::{InstanceOut, LicenseOut};
use crate::wire::selling::Renderer;
use chrono::{DateTime, Utc};
use kelviq_core::events::OutboxEvent;
use kelviq_core::licenses::{key_hash, new_license_key, MAX_ACTIVATION_LIMIT};
use kelviq_core::timefmt::iso_seconds;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{InstanceRow, LicenseRow, Work};

fn not_found() -> ServiceError {
    ServiceError::NotFound("License not found.".into())
}

/// A license as the merchant sees it.
pub async fn view(
    state: &AppState,
    tenant: &Tenant,
    row: &LicenseRow,
    now: DateTime<Utc>,
) -> ServiceResult<LicenseOut> {
    let instances = state.store.license_instances(row.id, true).await?;
    let mut r = Renderer::new(state, tenant, now);
    let details = super::details(&mut r, row, &instances).await?;
    let active = |i: &InstanceRow| {
        let st = super::instance_state(row, i);
        i.deactivated_at.is_none() && !st.dead(now)
    };
    Ok(LicenseOut {
        details,
        customer_id: row.customer_id.clone(),
        subscription_id: row.subscription_id.map(|s| s.to_string()),
        order_id: row.order_id.clone(),
        disabled_reason: row.disabled_reason.clone(),
        heartbeat_ttl_seconds: row.heartbeat_ttl,
        reuse_instance_by_fingerprint: row.reuse_by_fingerprint,
        grace_days: row.grace_days,
        instances: instances
            .iter()
            .map(|i| InstanceOut {
                id: i.id.to_string(),
                name: i.name.clone(),
                fingerprint: i.fingerprint.clone(),
                metadata: i.metadata.clone(),
                activated_at: iso_seconds(i.activated_at),
                last_heartbeat_at: iso_seconds(i.last_heartbeat_at),
                last_seen_at: i.last_seen_at.map(iso_seconds),
                deactivated_at: i.deactivated_at.map(iso_seconds),
                deactivated_by: i.deactivated_by.clone(),
                active: active(i),
            })
            .collect(),
        created_on: iso_seconds(row.created_at),
        modified_on: iso_seconds(row.modified_at),
    })
}

pub async fn find(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<LicenseRow> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
    state.store.find_license(tenant, id).await?.ok_or_else(not_found)
}

/// Changes asked of a license.
#[derive(Debug, Default)]
pub struct LicenseChanges {
    pub enabled: Option<bool>,
    /// `Some(None)`: unlimited.
    pub activation_limit: Option<Option<i64>>,
    /// `Some(None)`: never expires.
    pub expires_on: Option<Option<String>>,
}

impl LicenseChanges {
    fn check(&self) -> Result<Option<Option<DateTime<Utc>>>, FieldErrors> {
        let mut errors = FieldErrors::new();
        if let Some(Some(n)) = self.activation_limit {
            if !(1..=i64::from(MAX_ACTIVATION_LIMIT)).contains(&n) {
                errors.add(
                    "activation_limit",
                    format!("Must be from 1 to {MAX_ACTIVATION_LIMIT}, or null for unlimited."),
                );
            }
        }
        let expires = match &self.expires_on {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => match DateTime::parse_from_rfc3339(text.trim()) {
                Ok(t) => Some(Some(t.with_timezone(&Utc))),
                Err(_) => {
                    errors.add("expires_on", "Must be an ISO 8601 date and time with a zone, or null.");
                    None
                }
            },
        };
        errors.into_result()?;
        Ok(expires)
    }
}

/// A license locked for a change, as it was before.
struct Changing {
    w: Work,
    row: LicenseRow,
    old_hash: String,
    was_enabled: bool,
    now: DateTime<Utc>,
}

async fn lock(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<Changing> {
    let now = tenant_now(state, tenant).await?;
    let id = find(state, tenant, id).await?.id;
    let mut w = state.store.begin(tenant).await?;
    let row = w.lock_license(id).await?.ok_or_else(not_found)?;
    Ok(Changing { old_hash: row.key_hash.clone(), was_enabled: row.enabled, row, w, now })
}

/// Writes a change, logs `actions` and tells what it did.
async fn commit(state: &AppState, tenant: &Tenant, c: Changing, actions: &[&str]) -> ServiceResult<LicenseOut> {
    let Changing { mut w, mut row, old_hash, was_enabled, now } = c;
    row.modified_at = now;
    w.update_license(&row, &old_hash).await?;
    for a in actions {
        w.log_license(row.id, a, None, now).await?;
    }
    if was_enabled && !row.enabled {
        let key = key_of(state, &row)?;
        let usage = holding(&row, &w.live_instances(row.id).await?, now);
        w.event(&OutboxEvent::new("license.disabled", event_object(&row, &key, None, usage), None, now)).await?;
    }
    finish(state, w).await?;
    state.licenses.cache.evict(&old_hash);
    state.licenses.cache.evict(&row.key_hash);
    view(state, tenant, &row, now).await
}

pub async fn update(state: &AppState, tenant: &Tenant, id: &str, changes: LicenseChanges) -> ServiceResult<LicenseOut> {
    let expires = changes.check().map_err(ServiceError::Fields)?;
    let mut c = lock(state, tenant, id).await?;
    let mut actions = Vec::new();
    if let Some(on) = changes.enabled.filter(|on| *on != c.row.enabled) {
        c.row.enabled = on;
        c.row.disabled_reason = (!on).then(|| "MERCHANT".to_string());
        actions.push(if on { "ENABLED" } else { "DISABLED" });
    }
    if let Some(limit) = changes.activation_limit {
        c.row.activation_limit = limit;
        actions.push("UPDATED");
    }
    if let Some(at) = expires {
        c.row.expires_at = at;
        actions.push("UPDATED");
    }
    actions.dedup();
    commit(state, tenant, c, &actions).await
}

/// A new key for the license; the old one stops validating at once.
pub async fn regenerate(state: &AppState, tenant: &Tenant, id: &str) -> ServiceResult<LicenseOut> {
    let key = new_license_key();
    let mut c = lock(state, tenant, id).await?;
    c.row.key_hash = key_hash(&key);
    c.row.key_sealed = state.webhooks.key.seal(&key);
    commit(state, tenant, c, &["REGENERATED"]).await
}

/// Ends one instance (`Some`) or every live instance (`None`) of a license.
pub async fn revoke(state: &AppState, tenant: &Tenant, id: &str, instance: Option<&str>) -> ServiceResult<LicenseOut> {
    let instance_missing = || ServiceError::NotFound("Instance not found.".into());
    let one = instance.map(|t| uuid::Uuid::parse_str(t).map_err(|_| instance_missing())).transpose()?;
    let mut c = lock(state, tenant, id).await?;
    let live = c.w.live_instances(c.row.id).await?;
    let ended: Vec<&InstanceRow> = match one {
        Some(i) => vec![live.iter().find(|l| l.id == i).ok_or_else(instance_missing)?],
        None => live.iter().collect(),
    };
    let key = key_of(state, &c.row)?;
    let mut usage = live.len() as i64;
    for i in ended {
        c.w.deactivate_instance(c.row.id, i.id, "MERCHANT", c.now).await?;
        c.w.log_license(c.row.id, "REVOKED", Some(i.id), c.now).await?;
        usage -= 1;
        let gone = InstanceRow { deactivated_at: Some(c.now), deactivated_by: Some("MERCHANT".into()), ..i.clone() };
        let object = event_object(&c.row, &key, Some(&gone), usage);
        c.w.event(&OutboxEvent::new("license.deactivated", object, None, c.now)).await?;
    }
    commit(state, tenant, c, if one.is_some() { &[] } else { &["RESET"] }).await
}

/// A page of licenses (a customer's, or every one).
pub async fn list(
    state: &AppState,
    tenant: &Tenant,
    customer_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<LicenseRow>), kelviq_store::StoreError> {
    state.store.list_licenses(tenant, customer_id, limit, offset).await
}
