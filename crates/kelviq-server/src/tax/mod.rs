//! Tax rates of an environment (server key): a percentage for a country or
//! one of its regions. A billing address gets its region's rate, else its
//! country's (`kelviq_core::tax::rate_for`); invoices apply it per line.

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
pub mod settings;

use kelviq_core::billing::{Line, LineKind};
use kelviq_core::customer::BillingAddress;
use kelviq_core::tax::TaxBehavior;
use kelviq_core::tax::{country_code, parse_percentage, region_code, TaxRate};
use kelviq_core::tax_ids::{reverse_charge_note, reverse_charged, TaxSettings};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::Work;
use serde_json::Value;

/// The longest name.
pub const MAX_NAME: usize = 100;

/// The fields of a new rate or of a change (`None`: not given).
#[derive(Debug, Default)]
pub struct RateFields {
    pub name: Option<String>,
    pub country: Option<String>,
    /// `Some(None)` or `Some(Some(""))`: the whole country.
    pub region: Option<Option<String>>,
    pub percentage: Option<Value>,
}

/// Checks the given fields into `rate`, naming each bad one in `errors`.
fn apply(f: RateFields, rate: &mut TaxRate, errors: &mut FieldErrors) {
    if let Some(name) = f.name {
        let name = name.trim();
        if name.is_empty() {
            errors.add("name", "This field may not be blank.");
        } else if name.chars().count() > MAX_NAME {
            errors.add("name", format!("Ensure this field has no more than {MAX_NAME} characters."));
        } else if name.chars().any(char::is_control) {
            errors.add("name", "Control characters are not allowed.");
        } else {
            rate.name = name.to_string();
        }
    }
    if let Some(country) = f.country {
        match country_code(&country) {
            Some(c) => rate.country = c,
            None => errors.add("country", "A two-letter ISO 3166-1 country code is required."),
        }
    }
    match f.region {
        Some(None) => rate.region.clear(),
        Some(Some(r)) if r.trim().is_empty() => rate.region.clear(),
        Some(Some(r)) => match region_code(&r) {
            Some(r) => rate.region = r,
            None => errors
                .add("region", "A region code of 1 to 3 letters or digits (ISO 3166-2, after the dash) is required."),
        },
        None => {}
    }
    if let Some(p) = f.percentage {
        match parse_percentage(&p) {
            Ok(p) => rate.percentage = p,
            Err(m) => errors.add("percentage", m),
        }
    }
}

pub async fn create(state: &AppState, tenant: &Tenant, f: RateFields) -> ServiceResult<TaxRate> {
    let mut errors = FieldErrors::new();
    for (field, given) in
        [("name", f.name.is_some()), ("country", f.country.is_some()), ("percentage", f.percentage.is_some())]
    {
        if !given {
            errors.add(field, "This field is required.");
        }
    }
    let now = state.clock.now();
    let mut rate = TaxRate {
        id: uuid::Uuid::new_v4(),
        name: String::new(),
        country: String::new(),
        region: String::new(),
        percentage: 0,
        created_at: now,
        modified_at: now,
    };
    apply(f, &mut rate, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    state.store.insert_tax_rate(tenant, &rate).await?;
    Ok(rate)
}

pub async fn get(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<TaxRate> {
    state.store.find_tax_rate(tenant, id).await?.ok_or_else(ServiceError::not_found)
}

pub async fn update(state: &AppState, tenant: &Tenant, id: uuid::Uuid, f: RateFields) -> ServiceResult<TaxRate> {
    let mut rate = get(state, tenant, id).await?;
    let mut errors = FieldErrors::new();
    apply(f, &mut rate, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    rate.modified_at = state.clock.now();
    state.store.update_tax_rate(tenant, &rate).await?;
    Ok(rate)
}

pub async fn delete(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<()> {
    Ok(state.store.delete_tax_rate(tenant, id, state.clock.now()).await?)
}

/// How a price's `taxBehavior` is applied in an environment (UNSPECIFIED:
/// the environment's default, else the server's).
pub async fn behavior(state: &AppState, tenant: &Tenant, price: Option<&str>) -> ServiceResult<TaxBehavior> {
    Ok(settings::behavior(state, &settings::get(state, tenant).await?, price))
}

/// Taxes an invoice's lines at the rate of the billing address (its region's,
/// else its country's; none: no tax), adding a TAX line; a reverse-charged
/// buyer pays none, and the line says so. Returns how much the total grows
/// (exclusive tax; inclusive tax is taken out of the lines).
pub async fn tax_invoice(
    state: &AppState,
    w: &mut Work,
    address: Option<&BillingAddress>,
    price_behavior: Option<&str>,
    lines: &mut Vec<Line>,
) -> ServiceResult<i64> {
    let Some(country) = address.and_then(|a| a.country.as_deref()).filter(|c| !c.trim().is_empty()) else {
        return Ok(0);
    };
    let settings = w.tax_settings().await?.unwrap_or_default();
    if reverse_charge(&settings, country, address, lines) {
        return Ok(0);
    }
    let region = address.and_then(|a| a.state.as_deref());
    let Some(rate) = w.tax_rate_for(country, region).await? else { return Ok(0) };
    Ok(kelviq_core::tax::tax_lines(lines, &rate, settings::behavior(state, &settings, price_behavior)))
}

/// [`tax_invoice`] outside a unit of work (an upcoming invoice, a page).
pub async fn tax_preview(
    state: &AppState,
    tenant: &Tenant,
    address: Option<&BillingAddress>,
    price_behavior: Option<&str>,
    lines: &mut Vec<Line>,
) -> ServiceResult<i64> {
    let Some(country) = address.and_then(|a| a.country.as_deref()).and_then(country_code) else { return Ok(0) };
    let settings = settings::get(state, tenant).await?;
    if reverse_charge(&settings, &country, address, lines) {
        return Ok(0);
    }
    let (_, rates) = state.store.list_tax_rates(tenant, Some(&country), 1_000, 0).await?;
    let region = address.and_then(|a| a.state.as_deref());
    let Some(rate) = kelviq_core::tax::rate_for(&rates, &country, region) else { return Ok(0) };
    Ok(kelviq_core::tax::tax_lines(lines, rate, settings::behavior(state, &settings, price_behavior)))
}

/// Whether the buyer is reverse charged; if so, the lines get a TAX line of
/// nothing that says so.
fn reverse_charge(
    settings: &TaxSettings,
    country: &str,
    address: Option<&BillingAddress>,
    lines: &mut Vec<Line>,
) -> bool {
    let tax_id = address.and_then(|a| a.tax_id.as_deref());
    let origin = settings.origin_country.as_deref();
    match tax_id.filter(|_| reverse_charged(settings.reverse_charge, origin, country, tax_id)) {
        Some(id) => {
            lines.push(Line::of_kind(LineKind::Tax, reverse_charge_note(id), 0));
            true
        }
        None => false,
    }
}

/// Whether the environment taxes anything (a page says tax is added).
pub async fn any_rates(state: &AppState, tenant: &Tenant) -> ServiceResult<bool> {
    Ok(state.store.list_tax_rates(tenant, None, 1, 0).await?.0 > 0)
}
