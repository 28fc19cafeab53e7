//! Activating, deactivating and heartbeating instances of a license: each
//! in one unit of work, under the license row's lock, so that the count of
//! live instances and the hourly count of activations are exact however
//! many calls race, on however many server processes.

use super::{access_ended_at, event_object, holding, instance_state, key_of, state_of};
use crate::clock::tenant_now;
use crate::error::ServiceError;
use crate::selling::finish;
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use kelviq_core::billing::Subscription;
use kelviq_core::events::OutboxEvent;
use kelviq_core::licenses::{key_hash, Validity};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{DocTable, InstanceRow, LicenseRow, StoreError, Work};
use serde_json::Value;

/// Why a license call is refused, in Kelviq's `{"error": "…"}` shape.
#[derive(Debug)]
pub enum Refusal {
    /// 404.
    NotFound(String),
    /// 403: the activation limit, an expired or disabled license.
    Forbidden(String),
    /// 429: too many activations and deactivations of the key this hour.
    TooMany(String),
}

#[derive(Debug)]
pub enum Failure {
    Refused(Refusal),
    Service(ServiceError),
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Failure::Service(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Service(ServiceError::Internal(e))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Service(e.into())
    }
}

type Result<T> = std::result::Result<T, Failure>;

const NOT_FOUND_KEY: &str = "Invalid license key or customer ID.";
const NOT_FOUND_INSTANCE: &str = "Invalid license key or instance ID.";
/// Actions that count against the hourly limit.
const COUNTED: [&str; 3] = ["ACTIVATED", "REUSED", "DEACTIVATED"];

/// `POST /license/activate/`, its fields checked.
#[derive(Debug, Clone)]
pub struct Activation {
    pub license_key: String,
    pub customer_id: Option<String>,
    pub instance_name: Option<String>,
    pub metadata: Value,
}

impl Activation {
    /// Checks the fields of an activation.
    pub fn new(
        license_key: Option<String>,
        customer_id: Option<String>,
        instance_name: Option<String>,
        metadata: Option<Value>,
    ) -> std::result::Result<Activation, FieldErrors> {
        let mut errors = FieldErrors::new();
        let license_key = required_key(license_key, &mut errors);
        let text = |v: Option<String>, field: &str, errors: &mut FieldErrors| {
            let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
            if v.chars().count() > 255 || v.chars().any(char::is_control) {
                errors.add(field, "Must be at most 255 characters, without control characters.");
                return None;
            }
            Some(v)
        };
        let customer_id = text(customer_id, "customer_id", &mut errors);
        let instance_name = text(instance_name, "instance_name", &mut errors);
        let metadata = match metadata {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(m @ Value::Object(_)) if m.to_string().len() <= 16_384 => m,
            Some(Value::Object(_)) => {
                errors.add("metadata", "Must be at most 16 KB of JSON.");
                Value::Null
            }
            Some(_) => {
                errors.add("metadata", "Expected a JSON object.");
                Value::Null
            }
        };
        if let Some(f) = metadata.get("fingerprint").filter(|f| !f.is_null()) {
            if !f.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 255) {
                errors.add("metadata", "fingerprint must be a string of 1 to 255 characters.");
            }
        }
        errors.into_result()?;
        Ok(Activation { license_key, customer_id, instance_name, metadata })
    }

    fn fingerprint(&self) -> Option<&str> {
        self.metadata.get("fingerprint").and_then(Value::as_str)
    }
}

/// A license key field: required, checked for size and control characters.
pub fn required_key(key: Option<String>, errors: &mut FieldErrors) -> String {
    match key.map(|k| k.trim().to_string()) {
        None => {
            errors.add("license_key", "This field is required.");
            String::new()
        }
        Some(k) if k.is_empty() => {
            errors.add("license_key", "This field may not be blank.");
            String::new()
        }
        Some(k) if k.len() > 128 || k.chars().any(char::is_control) => {
            errors.add("license_key", "Not a license key.");
            String::new()
        }
        Some(k) => k,
    }
}

/// An instance id field: a UUID (anything else names no instance).
pub fn instance_uuid(id: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(id.trim()).ok()
}

/// What an activation made (or found, for a known fingerprint).
pub struct Activated {
    pub license: LicenseRow,
    pub instance: InstanceRow,
    pub instances: Vec<InstanceRow>,
}

/// The purchase state of a license, read before its work (a unit of work
/// waits for no other connection).
async fn access(state: &AppState, tenant: &Tenant, row: &LicenseRow) -> Result<Option<DateTime<Utc>>> {
    let Some(id) = row.subscription_id else { return Ok(None) };
    let s: Option<Subscription> = state.store.find_doc(DocTable::Subscriptions, tenant, &id.to_string()).await?;
    Ok(access_ended_at(s.as_ref()))
}

/// Locks the license of a key, and frees the slots of instances past their
/// heartbeat and a minute. The purchase state is read first.
async fn locked(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    not_found: &str,
    now: DateTime<Utc>,
) -> Result<(Work, LicenseRow, Vec<InstanceRow>, Option<DateTime<Utc>>)> {
    let hash = key_hash(key);
    let Some(peek) = state.store.find_license_by_hash(tenant, &hash).await? else {
        return Err(Failure::Refused(Refusal::NotFound(not_found.into())));
    };
    let ended = access(state, tenant, &peek).await?;
    let mut w = state.store.begin(tenant).await?;
    let Some(row) = w.lock_license_by_hash(&hash).await? else {
        return Err(Failure::Refused(Refusal::NotFound(not_found.into())));
    };
    let (mut live, mut reaped) = (Vec::new(), false);
    for i in w.live_instances(row.id).await? {
        if instance_state(&row, &i).reaped(now) {
            w.deactivate_instance(row.id, i.id, "HEARTBEAT", now).await?;
            w.log_license(row.id, "REAPED", Some(i.id), now).await?;
            reaped = true;
        } else {
            live.push(i);
        }
    }
    if reaped {
        w.license_changed(&row.key_hash, now).await?;
    }
    Ok((w, row, live, ended))
}

async fn within_hourly_limit(state: &AppState, w: &mut Work, row: &LicenseRow, now: DateTime<Utc>) -> Result<()> {
    let per_hour = state.config.license_activation_attempts_per_hour;
    if per_hour == 0 {
        return Ok(());
    }
    let done = w.license_actions_since(row.id, &COUNTED, now - Duration::hours(1)).await?;
    if done >= i64::from(per_hour) {
        return Err(Failure::Refused(Refusal::TooMany(format!(
            "This license was activated or deactivated {per_hour} times in the last hour; try again later."
        ))));
    }
    Ok(())
}

/// Activates an instance of a license (or returns the live instance with
/// the same fingerprint, when the plan reuses them).
pub async fn activate(state: &AppState, tenant: &Tenant, a: Activation) -> Result<Activated> {
    let now = tenant_now(state, tenant).await?;
    let (mut w, mut row, live, ended) = locked(state, tenant, &a.license_key, NOT_FOUND_KEY, now).await?;
    if a.customer_id.as_deref().is_some_and(|c| c != row.customer_id) {
        return Err(Failure::Refused(Refusal::NotFound(NOT_FOUND_KEY.into())));
    }
    let st = state_of(&row, ended);
    let reused = if row.reuse_by_fingerprint {
        a.fingerprint().and_then(|f| live.iter().find(|i| i.fingerprint.as_deref() == Some(f))).cloned()
    } else {
        None
    };
    st.may_activate(0, None, now).map_err(|r| Failure::Refused(Refusal::Forbidden(r.message())))?;
    within_hourly_limit(state, &mut w, &row, now).await?;
    let key = key_of(state, &row)?;
    if let Some(instance) = reused {
        w.log_license(row.id, "REUSED", Some(instance.id), now).await?;
        finish(state, w).await?;
        state.licenses.cache.evict(&row.key_hash);
        return Ok(Activated { license: row, instance, instances: live });
    }
    let limit = row.activation_limit.and_then(|n| u32::try_from(n).ok());
    let active = u32::try_from(live.len()).unwrap_or(u32::MAX);
    st.may_activate(active, limit, now).map_err(|r| Failure::Refused(Refusal::Forbidden(r.message())))?;
    let instance = InstanceRow {
        id: uuid::Uuid::new_v4(),
        license_id: row.id,
        name: a.instance_name.clone(),
        fingerprint: a.fingerprint().map(str::to_string),
        metadata: a.metadata.clone(),
        activated_at: now,
        last_heartbeat_at: now,
        last_seen_at: None,
        deactivated_at: None,
        deactivated_by: None,
    };
    w.insert_instance(&instance).await?;
    row.first_activated_at = row.first_activated_at.or(Some(now));
    row.modified_at = now;
    let hash = row.key_hash.clone();
    w.update_license(&row, &hash).await?;
    w.log_license(row.id, "ACTIVATED", Some(instance.id), now).await?;
    let mut instances = live;
    instances.push(instance.clone());
    let object = event_object(&row, &key, Some(&instance), holding(&row, &instances, now));
    w.event(&OutboxEvent::new("license.activated", object, None, now)).await?;
    finish(state, w).await?;
    state.licenses.cache.evict(&hash);
    Ok(Activated { license: row, instance, instances })
}

/// Ends an instance at the customer's application's request.
pub async fn deactivate(state: &AppState, tenant: &Tenant, key: &str, instance_id: &str) -> Result<DateTime<Utc>> {
    let now = tenant_now(state, tenant).await?;
    let Some(id) = instance_uuid(instance_id) else {
        return Err(Failure::Refused(Refusal::NotFound(NOT_FOUND_INSTANCE.into())));
    };
    let (mut w, row, live, _) = locked(state, tenant, key, NOT_FOUND_INSTANCE, now).await?;
    let Some(instance) = live.iter().find(|i| i.id == id).cloned() else {
        // An instance reaped just now stays ended.
        finish(state, w).await?;
        return Err(Failure::Refused(Refusal::NotFound(NOT_FOUND_INSTANCE.into())));
    };
    within_hourly_limit(state, &mut w, &row, now).await?;
    w.deactivate_instance(row.id, id, "CUSTOMER", now).await?;
    w.log_license(row.id, "DEACTIVATED", Some(id), now).await?;
    w.license_changed(&row.key_hash, now).await?;
    let ended = InstanceRow { deactivated_at: Some(now), deactivated_by: Some("CUSTOMER".into()), ..instance };
    let key_text = key_of(state, &row)?;
    let object = event_object(&row, &key_text, Some(&ended), live.len() as i64 - 1);
    w.event(&OutboxEvent::new("license.deactivated", object, None, now)).await?;
    finish(state, w).await?;
    state.licenses.cache.evict(&row.key_hash);
    Ok(now)
}

/// A heartbeat recorded.
pub struct Beat {
    pub instance_id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub ttl: Option<i64>,
}

/// Records an instance's heartbeat. An instance already past its heartbeat
/// is ended (its slot freed) and refused: it must activate again.
pub async fn heartbeat(state: &AppState, tenant: &Tenant, key: &str, instance_id: &str) -> Result<Beat> {
    let now = tenant_now(state, tenant).await?;
    let Some(id) = instance_uuid(instance_id) else {
        return Err(Failure::Refused(Refusal::NotFound(NOT_FOUND_INSTANCE.into())));
    };
    let (mut w, row, live, ended) = locked(state, tenant, key, NOT_FOUND_INSTANCE, now).await?;
    let Some(instance) = live.iter().find(|i| i.id == id) else {
        finish(state, w).await?;
        state.licenses.cache.evict(&row.key_hash);
        return Err(Failure::Refused(Refusal::NotFound(NOT_FOUND_INSTANCE.into())));
    };
    let verdict = state_of(&row, ended).validate(Some(Some(instance_state(&row, instance))), now);
    if verdict == Validity::HeartbeatDead {
        w.deactivate_instance(row.id, id, "HEARTBEAT", now).await?;
        w.log_license(row.id, "REAPED", Some(id), now).await?;
        w.license_changed(&row.key_hash, now).await?;
        finish(state, w).await?;
        state.licenses.cache.evict(&row.key_hash);
        return Err(Failure::Refused(Refusal::NotFound(
            "This instance missed its heartbeat and was released; activate it again.".into(),
        )));
    }
    if !verdict.valid() {
        return Err(Failure::Refused(Refusal::Forbidden(match verdict {
            Validity::Disabled => "This license has been disabled.".into(),
            Validity::SubscriptionInactive => "The purchase of this license is no longer active.".into(),
            _ => "This license has expired.".into(),
        })));
    }
    w.beat(row.id, id, now).await?;
    w.license_changed(&row.key_hash, now).await?;
    finish(state, w).await?;
    state.licenses.cache.evict(&row.key_hash);
    Ok(Beat { instance_id: id, at: now, ttl: row.heartbeat_ttl })
}
