//! An environment's storefront settings (server key): what customers may do
//! in the portal and how the hosted checkout and portal look. The logo is an
//! image uploaded through `/media/` and attached here.

pub mod look;

use crate::error::{ServiceError, ServiceResult};
use crate::media;
use crate::state::AppState;
use kelviq_core::storefront::{
    check_brand_color, check_display_name, check_link, check_support_email, CancellationMode, Logo, StorefrontSettings,
};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::MediaOwner;

/// The media owner id of an environment's logo.
const LOGO_OWNER: &str = "logo";

/// A change to the settings: `None` is "not given", `Some(None)` "cleared".
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub allow_plan_changes: Option<bool>,
    pub allowed_plans: Option<Option<Vec<String>>>,
    pub allow_quantity_changes: Option<bool>,
    pub cancellation_mode: Option<String>,
    pub show_usage: Option<bool>,
    pub display_name: Option<Option<String>>,
    /// An upload's file key, or `Some(None)` to remove the logo.
    pub logo: Option<Option<String>>,
    pub brand_color: Option<Option<String>>,
    pub support_email: Option<Option<String>>,
    pub terms_url: Option<Option<String>>,
    pub privacy_url: Option<Option<String>>,
}

/// The environment's settings (the defaults when it has none).
pub async fn get(state: &AppState, tenant: &Tenant) -> ServiceResult<StorefrontSettings> {
    Ok(state.store.storefront_settings(tenant).await?.unwrap_or_default())
}

/// Sets an optional text field through its check, or records the error.
fn set(
    field: &str,
    change: Option<Option<String>>,
    target: &mut Option<String>,
    check: fn(&str) -> Result<String, &'static str>,
    errors: &mut FieldErrors,
) {
    match change {
        None => {}
        Some(None) => *target = None,
        Some(Some(v)) if v.trim().is_empty() => *target = None,
        Some(Some(v)) => match check(&v) {
            Ok(v) => *target = Some(v),
            Err(m) => errors.add(field, m),
        },
    }
}

pub async fn update(state: &AppState, tenant: &Tenant, change: SettingsChange) -> ServiceResult<StorefrontSettings> {
    let mut s = get(state, tenant).await?;
    let mut errors = FieldErrors::new();
    if let Some(v) = change.allow_plan_changes {
        s.allow_plan_changes = v;
    }
    if let Some(v) = change.allow_quantity_changes {
        s.allow_quantity_changes = v;
    }
    if let Some(v) = change.show_usage {
        s.show_usage = v;
    }
    if let Some(m) = change.cancellation_mode {
        match CancellationMode::parse(&m) {
            Some(m) => s.cancellation_mode = m,
            None => errors.add("cancellation_mode", "Must be AT_PERIOD_END, IMMEDIATELY or DISABLED."),
        }
    }
    match change.allowed_plans {
        None => {}
        Some(None) => s.allowed_plans = None,
        Some(Some(plans)) if plans.len() > 100 => errors.add("allowed_plans", "At most 100 plans."),
        Some(Some(plans)) => {
            let mut known = Vec::with_capacity(plans.len());
            for p in plans {
                let p = p.trim().to_string();
                if p.is_empty() || p.len() > 255 || p.chars().any(char::is_control) {
                    errors.add("allowed_plans", "Each entry must be a plan identifier.");
                } else if state.store.find_published_plan(tenant, &p).await?.is_none() {
                    errors.add("allowed_plans", format!("Plan \"{p}\" does not exist or is not published."));
                } else if !known.contains(&p) {
                    known.push(p);
                }
            }
            s.allowed_plans = Some(known);
        }
    }
    set("display_name", change.display_name, &mut s.display_name, check_display_name, &mut errors);
    set("brand_color", change.brand_color, &mut s.brand_color, check_brand_color, &mut errors);
    set("support_email", change.support_email, &mut s.support_email, check_support_email, &mut errors);
    set("terms_url", change.terms_url, &mut s.terms_url, check_link, &mut errors);
    set("privacy_url", change.privacy_url, &mut s.privacy_url, check_link, &mut errors);
    let upload = match &change.logo {
        Some(Some(key)) if !key.trim().is_empty() => {
            if errors.is_empty() {
                Some(
                    media::check_uploads(state, tenant, MediaOwner::BrandLogo, "logo", &[key.trim().to_string()])
                        .await?,
                )
            } else {
                None
            }
        }
        _ => None,
    };
    errors.into_result().map_err(ServiceError::Fields)?;
    let previous = state.store.list_media(tenant, MediaOwner::BrandLogo, LOGO_OWNER).await?;
    if let Some(uploads) = upload {
        media::attach(state, tenant, MediaOwner::BrandLogo, LOGO_OWNER, uploads).await?;
        let files = state.store.list_media(tenant, MediaOwner::BrandLogo, LOGO_OWNER).await?;
        let new = files.iter().find(|f| !previous.iter().any(|p| p.id == f.id));
        s.logo = new.map(|f| Logo { file_id: f.id, name: f.name.clone() });
    } else if matches!(change.logo, Some(None)) || matches!(&change.logo, Some(Some(k)) if k.trim().is_empty()) {
        s.logo = None;
    }
    state.store.put_storefront_settings(tenant, &s, state.clock.now()).await?;
    // The logo files the settings no longer name.
    let keep = s.logo.as_ref().map(|l| l.file_id);
    let root = state.config.media_dir();
    for old in previous.iter().filter(|f| Some(f.id) != keep) {
        let gone = state.store.delete_media(tenant, MediaOwner::BrandLogo, LOGO_OWNER, &old.id.to_string()).await?;
        media::remove_files(&root, std::iter::once(gone.storage_path.as_str())).await;
    }
    Ok(s)
}

/// The public address of the logo, relative to the server's root.
pub fn logo_path(s: &StorefrontSettings) -> Option<String> {
    s.logo.as_ref().map(|l| format!("/api/v1/media/public/{}/{}", l.file_id, media::percent_encode(&l.name)))
}
