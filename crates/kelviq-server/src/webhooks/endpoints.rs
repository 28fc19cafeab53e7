//! The services behind the webhook API: endpoints (with their secrets),
//! test events, resend and recover.

use super::target::check_url;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::webhooks::{new_secret, Endpoint, SignatureFormat, EVENT_TYPES, ROTATION_OVERLAP};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::EndpointChanges;

/// The longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// The most messages a second an endpoint may be limited to.
pub const MAX_RATE_LIMIT: i64 = 10_000;

/// The fields of a new endpoint or of a change (`None`: not given).
#[derive(Debug, Default)]
pub struct EndpointFields {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub rate_limit: Option<Option<i64>>,
    pub fifo: Option<bool>,
    pub signature_format: Option<String>,
}

fn checked(state: &AppState, f: EndpointFields, errors: &mut FieldErrors) -> EndpointChanges {
    let allowed = &state.webhooks.settings.allowed;
    let url = f.url.and_then(|u| match check_url(u.trim(), allowed) {
        Ok(_) => Some(u.trim().to_string()),
        Err(m) => {
            errors.add("url", m);
            None
        }
    });
    let description = f.description.and_then(|d| {
        if d.chars().count() > MAX_DESCRIPTION {
            errors.add("description", format!("Ensure this field has no more than {MAX_DESCRIPTION} characters."));
            None
        } else if d.chars().any(|c| c.is_control() && c != '\n') {
            errors.add("description", "Control characters are not allowed.");
            None
        } else {
            Some(d)
        }
    });
    let event_types = f.event_types.and_then(|types| {
        let mut kept: Vec<String> = Vec::new();
        for t in types {
            if !EVENT_TYPES.contains(&t.as_str()) {
                errors.add("eventTypes", format!("\"{}\" is not an event type.", t.escape_debug()));
                return None;
            }
            if !kept.contains(&t) {
                kept.push(t);
            }
        }
        Some(kept)
    });
    let rate_limit = match f.rate_limit {
        Some(Some(r)) if !(1..=MAX_RATE_LIMIT).contains(&r) => {
            errors.add("rateLimit", format!("Ensure this value is between 1 and {MAX_RATE_LIMIT}, or null."));
            None
        }
        other => other,
    };
    let signature_format = f.signature_format.and_then(|s| match SignatureFormat::parse(&s) {
        Some(f) => Some(f),
        None => {
            errors.add("signatureFormat", "Must be \"kelviq\" or \"standard\".");
            None
        }
    });
    EndpointChanges { url, description, event_types, enabled: f.enabled, rate_limit, fifo: f.fifo, signature_format }
}

/// Makes an endpoint; returns it with its secret (shown this once).
pub async fn create(state: &AppState, tenant: &Tenant, f: EndpointFields) -> ServiceResult<(Endpoint, String)> {
    let mut errors = FieldErrors::new();
    if f.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
        errors.add("url", "This field is required.");
    }
    let c = checked(state, f, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    let now = state.clock.now();
    let secret = new_secret();
    let endpoint = Endpoint {
        id: uuid::Uuid::new_v4(),
        url: c.url.expect("checked"),
        description: c.description.unwrap_or_default(),
        event_types: c.event_types.unwrap_or_default(),
        enabled: c.enabled.unwrap_or(true),
        disabled_reason: (c.enabled == Some(false)).then(|| "manual".to_string()),
        rate_limit: c.rate_limit.flatten(),
        fifo: c.fifo.unwrap_or(false),
        signature_format: c.signature_format.unwrap_or(SignatureFormat::Kelviq),
        secret: state.webhooks.key.seal(&secret),
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: now,
        modified_at: now,
    };
    state.store.insert_webhook_endpoint(tenant, &endpoint).await?;
    tracing::info!(org = %tenant.org_id, env = tenant.env.as_str(), endpoint = %endpoint.id, "webhook endpoint created");
    Ok((endpoint, secret))
}

pub async fn get(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<Endpoint> {
    state.store.find_webhook_endpoint(tenant, id).await?.ok_or_else(ServiceError::not_found)
}

pub async fn update(state: &AppState, tenant: &Tenant, id: uuid::Uuid, f: EndpointFields) -> ServiceResult<Endpoint> {
    let mut errors = FieldErrors::new();
    if f.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
        errors.add("url", "This field may not be blank.");
    }
    let changes = checked(state, f, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    Ok(state.store.update_webhook_endpoint(tenant, id, &changes, state.clock.now()).await?)
}

pub async fn delete(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<()> {
    Ok(state.store.delete_webhook_endpoint(tenant, id, state.clock.now()).await?)
}

/// A new secret signs from now on; in the standard format the one before
/// signs too for [`ROTATION_OVERLAP`].
pub async fn rotate(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<String> {
    let secret = new_secret();
    let now = state.clock.now();
    let sealed = state.webhooks.key.seal(&secret);
    state.store.rotate_webhook_secret(tenant, id, &sealed, now + ROTATION_OVERLAP, now).await?;
    tracing::info!(org = %tenant.org_id, env = tenant.env.as_str(), endpoint = %id, "webhook secret rotated");
    Ok(secret)
}

/// Sends a `webhook.test` event to this endpoint only; returns its id.
pub async fn send_test(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<uuid::Uuid> {
    let endpoint = get(state, tenant, id).await?;
    if !endpoint.enabled {
        return Err(ServiceError::field("enabled", "The endpoint is disabled; enable it first."));
    }
    let now = crate::clock::tenant_now(state, tenant).await?;
    let event = kelviq_core::events::webhook_test(&endpoint, tenant, now);
    state.store.send_event_to(tenant, id, &event).await?;
    Ok(event.id)
}

/// Queues an event again, to one endpoint or to every one that wants it.
pub async fn resend(
    state: &AppState,
    tenant: &Tenant,
    event: uuid::Uuid,
    endpoint: Option<uuid::Uuid>,
) -> ServiceResult<u64> {
    Ok(state.store.resend_event(tenant, event, endpoint, state.clock.now()).await? as u64)
}

/// Queues again every failed delivery to an endpoint of events since `since`.
pub async fn recover(state: &AppState, tenant: &Tenant, id: uuid::Uuid, since: DateTime<Utc>) -> ServiceResult<u64> {
    Ok(state.store.recover_deliveries(tenant, id, since, state.clock.now()).await?)
}
