//! An environment's tax settings (server key): the tax behaviour of prices
//! that leave it UNSPECIFIED, and the B2B reverse charge.

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::tax::{country_code, TaxBehavior};
use kelviq_core::tax_ids::TaxSettings;
use kelviq_core::{FieldErrors, Tenant};

/// A change to the settings (`None`: not given; `Some(None)`: cleared).
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub default_tax_behavior: Option<Option<String>>,
    pub reverse_charge: Option<bool>,
    pub origin_country: Option<Option<String>>,
}

/// The environment's settings (the defaults when it has none).
pub async fn get(state: &AppState, tenant: &Tenant) -> ServiceResult<TaxSettings> {
    Ok(state.store.tax_settings(tenant).await?.unwrap_or_default())
}

pub async fn update(state: &AppState, tenant: &Tenant, change: SettingsChange) -> ServiceResult<TaxSettings> {
    let mut settings = get(state, tenant).await?;
    let mut errors = FieldErrors::new();
    match change.default_tax_behavior {
        Some(None) => settings.default_behavior = None,
        Some(Some(b)) => match TaxBehavior::parse(&b) {
            Some(_) if b != "UNSPECIFIED" => settings.default_behavior = Some(b),
            _ => errors.add("default_tax_behavior", "Must be EXCLUSIVE or INCLUSIVE (null: the server's default)."),
        },
        None => {}
    }
    if let Some(r) = change.reverse_charge {
        settings.reverse_charge = r;
    }
    match change.origin_country {
        Some(None) => settings.origin_country = None,
        Some(Some(c)) => match country_code(&c) {
            Some(c) => settings.origin_country = Some(c),
            None => errors.add("origin_country", "A two-letter ISO 3166-1 country code is required."),
        },
        None => {}
    }
    errors.into_result().map_err(ServiceError::Fields)?;
    state.store.put_tax_settings(tenant, &settings, state.clock.now()).await?;
    Ok(settings)
}

/// How a price's `taxBehavior` is applied: UNSPECIFIED follows the
/// environment's default, else the server's.
pub fn behavior(state: &AppState, settings: &TaxSettings, price: Option<&str>) -> TaxBehavior {
    price
        .and_then(TaxBehavior::parse)
        .or_else(|| settings.default_behavior.as_deref().and_then(TaxBehavior::parse))
        .or_else(|| TaxBehavior::parse(&state.config.default_tax_behavior))
        .unwrap_or(TaxBehavior::Exclusive)
}
