//! License keys: issued by purchases of plans whose `license` is enabled,
//! activated and deactivated by the customer's application (activations of
//! one key take turns under its row's lock), validated from memory
//! ([`cache`]), kept alive by heartbeats when the plan asks for them,
//! checked out as signed offline files ([`offline`]), and managed by the
//! merchant ([`admin`]).
//!
//! The key is stored sealed under the server's secret key and found by its
//! SHA-256 ([`kelviq_core::licenses::key_hash`]).

pub mod activation;
pub mod admin;
pub mod cache;
pub mod offline;
mod render;

pub use render::{details, subscription_licenses};

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{SubStatus, Subscription};
use kelviq_core::events::OutboxEvent;
use kelviq_core::licenses::{key_hash, new_license_key, InstanceState, LicensePolicy, LicenseState};
use kelviq_core::plans::PlanVersion;
use kelviq_core::timefmt::iso_seconds;
use kelviq_store::{InstanceRow, LicenseRow, Work};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// What the license service keeps in memory.
#[derive(Default)]
pub struct Licenses {
    /// Licenses validated recently, by key hash.
    pub cache: cache::Cache,
    /// Instances seen validating since the last write of `last_seen_at`.
    seen: Mutex<HashMap<uuid::Uuid, DateTime<Utc>>>,
    /// Client-key calls per address in the current minute.
    client_calls: Mutex<(i64, HashMap<IpAddr, u32>)>,
}

impl Licenses {
    /// Notes that an instance validated at `at` (written within a second).
    pub fn saw(&self, instance: uuid::Uuid, at: DateTime<Utc>) {
        lock(&self.seen).insert(instance, at);
    }

    /// Whether a client-key call from `ip` is within `per_minute` (0: no limit).
    pub fn client_call_allowed(&self, ip: Option<IpAddr>, per_minute: u32, now: DateTime<Utc>) -> bool {
        let Some(ip) = ip.filter(|_| per_minute > 0) else { return true };
        let minute = now.timestamp().div_euclid(60);
        let mut calls = lock(&self.client_calls);
        if calls.0 != minute {
            *calls = (minute, HashMap::new());
        }
        let n = calls.1.entry(ip).or_insert(0);
        *n += 1;
        *n <= per_minute
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the instances seen validating, every second, until `stop`.
pub fn spawn_seen_writer(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
                _ = stop.changed() => true,
            };
            let seen: Vec<_> = lock(&state.licenses.seen).drain().collect();
            if let Err(e) = state.store.touch_instances(&seen).await {
                tracing::warn!(error = %e, instances = seen.len(), "writing when license instances were last seen failed");
            }
            if stopping || *stop.borrow() {
                return;
            }
        }
    })
}

/// The key of a license, opened.
pub fn key_of(state: &AppState, row: &LicenseRow) -> ServiceResult<String> {
    state
        .webhooks
        .key
        .open(&row.key_sealed)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("license {}: {e}", row.id)))
}

/// When the purchase behind a license stopped (or stops) giving access.
pub fn access_ended_at(s: Option<&Subscription>) -> Option<DateTime<Utc>> {
    let s = s?;
    if s.status.grants() {
        return s.cancel_at;
    }
    match s.status {
        SubStatus::Superseded => None,
        _ => Some(s.ended_at.or(s.canceled_at).unwrap_or(s.modified_at)),
    }
}

/// What validation and activation judge a license by.
pub fn state_of(row: &LicenseRow, access_ended_at: Option<DateTime<Utc>>) -> LicenseState {
    LicenseState {
        enabled: row.enabled,
        expires_at: row.expires_at,
        access_ended_at,
        grace_days: u32::try_from(row.grace_days).unwrap_or(0),
    }
}

pub fn instance_state(row: &LicenseRow, i: &InstanceRow) -> InstanceState {
    InstanceState {
        last_heartbeat_at: i.last_heartbeat_at,
        heartbeat_ttl_seconds: row.heartbeat_ttl.and_then(|t| u32::try_from(t).ok()),
    }
}

/// Instances holding a slot at `now` (live, and not past heartbeat and a minute).
pub fn holding(row: &LicenseRow, instances: &[InstanceRow], now: DateTime<Utc>) -> i64 {
    instances.iter().filter(|i| i.deactivated_at.is_none() && !instance_state(row, i).reaped(now)).count() as i64
}

/// The outbox object of a license event (no secret but the key, which the
/// merchant's own webhook endpoint receives as the order's buyer does).
pub fn event_object(row: &LicenseRow, key: &str, instance: Option<&InstanceRow>, usage: i64) -> Value {
    json!({
        "id": row.id,
        "license_key": key,
        "customer_id": row.customer_id,
        "subscription_id": row.subscription_id,
        "order_id": row.order_id,
        "plan_id": row.plan_id,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "expires_on": row.expires_at.map(iso_seconds),
        "activation_limit": row.activation_limit.unwrap_or(0),
        "activation_usage": usage,
        "instance": instance.map(|i| json!({
            "id": i.id, "name": i.name, "fingerprint": i.fingerprint, "metadata": i.metadata,
            "activated_at": iso_seconds(i.activated_at),
            "deactivated_at": i.deactivated_at.map(iso_seconds),
        })),
    })
}

/// Issues the license a purchase of `plan` gives (none when the plan's
/// `license` is not enabled), inside the purchase's work.
pub async fn issue(
    state: &AppState,
    w: &mut Work,
    plan: &PlanVersion,
    s: &Subscription,
    order_id: &str,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let Some(policy) = LicensePolicy::of_plan(plan.fields.license.as_ref()) else { return Ok(()) };
    let key = new_license_key();
    let row = LicenseRow {
        id: uuid::Uuid::new_v4(),
        key_hash: key_hash(&key),
        key_sealed: state.webhooks.key.seal(&key),
        customer_id: s.customer_id.clone(),
        subscription_id: Some(s.id),
        order_id: Some(order_id.to_string()),
        plan_id: plan.id,
        activation_limit: policy.activation_limit.map(i64::from),
        heartbeat_ttl: policy.heartbeat_ttl_seconds.map(i64::from),
        reuse_by_fingerprint: policy.reuse_instance_by_fingerprint,
        grace_days: i64::from(policy.grace_days),
        enabled: true,
        disabled_reason: None,
        expires_at: policy.expires_at(now),
        first_activated_at: None,
        created_at: now,
        modified_at: now,
    };
    w.insert_license(&row).await?;
    w.log_license(row.id, "ISSUED", None, now).await?;
    w.event(&OutboxEvent::new("license.created", event_object(&row, &key, None, 0), None, now)).await?;
    Ok(())
}

/// A plan change that made a new subscription: its licenses go with it.
pub async fn follow_subscription(
    w: &mut Work,
    from: uuid::Uuid,
    to: uuid::Uuid,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    for mut l in w.lock_licenses_of_subscription(from).await? {
        l.subscription_id = Some(to);
        l.modified_at = now;
        let hash = l.key_hash.clone();
        w.update_license(&l, &hash).await?;
    }
    Ok(())
}

/// A full refund of the order that issued licenses disables them.
pub async fn disable_for_refund(
    state: &AppState,
    w: &mut Work,
    subscription_id: uuid::Uuid,
    order_id: &str,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    for mut l in w.lock_licenses_of_subscription(subscription_id).await? {
        if l.order_id.as_deref() != Some(order_id) || !l.enabled {
            continue;
        }
        (l.enabled, l.disabled_reason, l.modified_at) = (false, Some("REFUND".into()), now);
        let hash = l.key_hash.clone();
        w.update_license(&l, &hash).await?;
        w.log_license(l.id, "DISABLED", None, now).await?;
        let key = key_of(state, &l)?;
        let usage = holding(&l, &w.live_instances(l.id).await?, now);
        w.event(&OutboxEvent::new("license.disabled", event_object(&l, &key, None, usage), None, now)).await?;
    }
    Ok(())
}
