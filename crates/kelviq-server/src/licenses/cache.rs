//! Validation from memory: a license once read (its row, instances, the
//! state of its purchase and its `LicenseDetails` rendered to JSON) answers
//! every validation until it changes. Changes reach every process through
//! the change feed (topic `license`, the key's hash; the customer's
//! entitlement changes, which cover their subscriptions; catalog changes);
//! the process that made a change forgets the license at once.
//!
//! A read that began before a change is not kept: every forgetting bumps a
//! generation, and a read is kept only when none happened meanwhile.

use super::{access_ended_at, holding, instance_state, state_of};
use crate::error::ServiceResult;
use crate::state::AppState;
use crate::wire::selling::Renderer;
use chrono::{DateTime, Utc};
use kelviq_core::billing::Subscription;
use kelviq_core::licenses::{key_hash, Validity};
use kelviq_core::Tenant;
use kelviq_store::{DocTable, InstanceRow, LicenseRow};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The most licenses kept; past it the cache starts again empty.
const CAPACITY: usize = 200_000;

/// A license as validation needs it.
pub struct Entry {
    tenant: Tenant,
    pub row: LicenseRow,
    access_ended_at: Option<DateTime<Utc>>,
    /// Every instance, ended ones too (one ended for a missed heartbeat
    /// validates as HEARTBEAT_DEAD, not as unknown).
    instances: Vec<InstanceRow>,
    /// `LicenseDetails` as JSON, around its `activationUsage` number.
    before_usage: String,
    after_usage: String,
}

type CustomerKey = (uuid::Uuid, kelviq_core::Environment, String);

#[derive(Default)]
struct Kept {
    by_hash: HashMap<String, Arc<Entry>>,
    /// The hashes kept of each customer's licenses.
    by_customer: HashMap<CustomerKey, Vec<String>>,
}

#[derive(Default)]
pub struct Cache {
    kept: RwLock<Kept>,
    generation: AtomicU64,
}

fn customer_key(e: &Entry) -> CustomerKey {
    (e.tenant.org_id, e.tenant.env, e.row.customer_id.clone())
}

impl Cache {
    fn get(&self, hash: &str) -> Option<Arc<Entry>> {
        self.kept.read().unwrap_or_else(|e| e.into_inner()).by_hash.get(hash).cloned()
    }

    fn keep(&self, generation: u64, hash: String, entry: Arc<Entry>) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if kept.by_hash.len() >= CAPACITY {
            *kept = Kept::default();
        }
        kept.by_customer.entry(customer_key(&entry)).or_default().push(hash.clone());
        kept.by_hash.insert(hash, entry);
    }

    fn forgetting(&self) -> std::sync::RwLockWriteGuard<'_, Kept> {
        let kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        kept
    }

    /// Forgets the license of a key's hash.
    pub fn evict(&self, hash: &str) {
        let mut kept = self.forgetting();
        if let Some(e) = kept.by_hash.remove(hash) {
            let key = customer_key(&e);
            if let Some(hashes) = kept.by_customer.get_mut(&key) {
                hashes.retain(|h| h != hash);
                if hashes.is_empty() {
                    kept.by_customer.remove(&key);
                }
            }
        }
    }

    /// Forgets a customer's licenses (their purchases changed).
    pub fn evict_customer(&self, org: uuid::Uuid, env: kelviq_core::Environment, customer_id: &str) {
        let mut kept = self.forgetting();
        for hash in kept.by_customer.remove(&(org, env, customer_id.to_string())).unwrap_or_default() {
            kept.by_hash.remove(&hash);
        }
    }

    pub fn clear(&self) {
        *self.forgetting() = Kept::default();
    }
}

/// Reads a license into memory (None: no such key in the tenant).
async fn load(state: &AppState, tenant: &Tenant, hash: &str, now: DateTime<Utc>) -> ServiceResult<Option<Arc<Entry>>> {
    let generation = state.licenses.cache.generation.load(Ordering::Acquire);
    let Some(row) = state.store.find_license_by_hash(tenant, hash).await? else { return Ok(None) };
    let instances = state.store.license_instances(row.id, true).await?;
    let sub: Option<Subscription> = match row.subscription_id {
        Some(id) => state.store.find_doc(DocTable::Subscriptions, tenant, &id.to_string()).await?,
        None => None,
    };
    let mut r = Renderer::new(state, tenant, now);
    let mut details = super::details(&mut r, &row, &[]).await?;
    // A number no count reaches marks where the count goes.
    details.activation_usage = i64::MIN;
    let text = serde_json::to_string(&details).map_err(|e| anyhow::anyhow!("license details: {e}"))?;
    let mark = format!("\"activationUsage\":{}", i64::MIN);
    let at = text.find(&mark).ok_or_else(|| anyhow::anyhow!("license details without activationUsage"))?;
    let split = at + mark.len() - i64::MIN.to_string().len();
    let entry = Arc::new(Entry {
        tenant: tenant.clone(),
        access_ended_at: access_ended_at(sub.as_ref()),
        instances,
        before_usage: text[..split].to_string(),
        after_usage: text[at + mark.len()..].to_string(),
        row,
    });
    state.licenses.cache.keep(generation, hash.to_string(), entry.clone());
    Ok(Some(entry))
}

/// The license of a key in a tenant, from memory when it is there.
pub async fn license(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    now: DateTime<Utc>,
) -> ServiceResult<Option<Arc<Entry>>> {
    let hash = key_hash(key);
    match state.licenses.cache.get(&hash) {
        Some(e) if e.tenant == *tenant => Ok(Some(e)),
        Some(_) => Ok(None),
        None => load(state, tenant, &hash, now).await,
    }
}

/// A validation's answer: its status (200, or 404 for an unknown key or
/// instance) and body (JSON).
pub struct Answer {
    pub found: bool,
    pub body: String,
    /// The verdict, for the offline checkout.
    pub validity: Validity,
    pub entry: Option<Arc<Entry>>,
}

fn detail(v: Validity, with_instance: bool, e: &Entry) -> Cow<'static, str> {
    match v {
        Validity::Valid if with_instance => "Instance ID valid for this license.".into(),
        Validity::Valid => "License key is valid.".into(),
        Validity::Expired { in_grace: true } => {
            let until = e.row.expires_at.map(|x| x + chrono::Duration::days(e.row.grace_days));
            format!(
                "This license has expired; it stays valid in its grace period until {}.",
                until.map(kelviq_core::timefmt::iso_seconds).unwrap_or_default()
            )
            .into()
        }
        Validity::Expired { in_grace: false } => "This license has expired.".into(),
        Validity::Disabled => "This license has been disabled.".into(),
        Validity::SubscriptionInactive => "The purchase of this license is no longer active.".into(),
        Validity::HeartbeatDead => "This instance missed its heartbeat; activate it again.".into(),
        Validity::InstanceNotFound => "Instance ID invalid for this license.".into(),
        Validity::InvalidKey => "License key not found.".into(),
    }
}

/// [`ValidateOut`] without its license, borrowed: the answer is written
/// without copying what it says.
#[derive(Serialize)]
struct Head<'a> {
    valid: bool,
    code: &'a str,
    detail: &'a str,
    metadata: &'a Value,
}

/// The answer's JSON: the head, then the license's cached JSON around its
/// activation count as of `now`, in one buffer of the right size.
fn body(v: Validity, detail: &str, metadata: &Value, license: Option<(&Entry, DateTime<Utc>)>) -> String {
    let head = Head { valid: v.valid(), code: v.code(), detail, metadata };
    let head = serde_json::to_string(&head).unwrap_or_default();
    let Some((e, now)) = license else { return head };
    let usage = holding(&e.row, &e.instances, now);
    let mut out = String::with_capacity(head.len() + e.before_usage.len() + e.after_usage.len() + 40);
    out.push_str(&head[..head.len() - 1]);
    out.push_str(",\"license\":");
    out.push_str(&e.before_usage);
    let _ = write!(out, "{usage}");
    out.push_str(&e.after_usage);
    out.push('}');
    out
}

/// Validates a key, and an instance of it when one is named.
pub async fn validate(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    instance_id: Option<&str>,
    now: DateTime<Utc>,
) -> ServiceResult<Answer> {
    let empty = Value::Object(Default::default());
    let Some(e) = license(state, tenant, key, now).await? else {
        let v = Validity::InvalidKey;
        let body = body(v, "License key not found.", &empty, None);
        return Ok(Answer { found: false, body, validity: v, entry: None });
    };
    let instance = instance_id
        .map(|id| uuid::Uuid::parse_str(id.trim()).ok().and_then(|id| e.instances.iter().find(|i| i.id == id)));
    let (verdict, metadata) = match instance {
        // Ended by the customer or the merchant: unknown. Ended for a missed heartbeat: dead.
        Some(Some(i)) if i.deactivated_at.is_some() && i.deactivated_by.as_deref() != Some("HEARTBEAT") => {
            (state_of(&e.row, e.access_ended_at).validate(Some(None), now), &empty)
        }
        Some(Some(i)) if i.deactivated_at.is_some() => (Validity::HeartbeatDead, &i.metadata),
        Some(Some(i)) => {
            state.licenses.saw(i.id, now);
            let st = state_of(&e.row, e.access_ended_at);
            (st.validate(Some(Some(instance_state(&e.row, i))), now), &i.metadata)
        }
        Some(None) => (state_of(&e.row, e.access_ended_at).validate(Some(None), now), &empty),
        None => (state_of(&e.row, e.access_ended_at).validate(None, now), &empty),
    };
    let found = verdict != Validity::InstanceNotFound;
    let text = detail(verdict, instance.is_some(), &e);
    let body = body(verdict, &text, metadata, found.then_some((&*e, now)));
    Ok(Answer { found, body, validity: verdict, entry: Some(e) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::licenses::ValidateOut;

    #[test]
    fn the_head_is_a_validate_out_without_its_license() {
        let metadata = serde_json::json!({"fingerprint": "m1"});
        for v in [Validity::Valid, Validity::HeartbeatDead, Validity::Expired { in_grace: true }] {
            let out = ValidateOut {
                valid: v.valid(),
                code: v.code().into(),
                detail: "A \"detail\".".into(),
                metadata: metadata.clone(),
                license: None,
            };
            assert_eq!(body(v, "A \"detail\".", &metadata, None), serde_json::to_string(&out).unwrap());
        }
    }
}
