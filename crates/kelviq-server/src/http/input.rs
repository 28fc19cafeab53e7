//! Reading request input, once: required text, charge periods, feature
//! quantities, URLs, instants and date ranges, currencies and amounts,
//! status and search filters, and a page of a document table. Each check
//! adds its message to the [`FieldErrors`] of the field it names.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Paging, DEFAULT_PAGE_SIZE};
use crate::state::AppState;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use kelviq_core::billing::FeatureQuantity;
use kelviq_core::money::{currency_exponent, to_minor};
use kelviq_core::plans::ChargePeriod;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{DocTable, Filter};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A required text field, trimmed: absent or blank is "This field is required.".
pub fn required<'a>(value: &'a Option<String>, field: &str, errors: &mut FieldErrors) -> Option<&'a str> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().any(char::is_control) => {
            errors.add(field, "Control characters are not allowed.");
            None
        }
        Some(v) => Some(v),
        None => {
            errors.add(field, "This field is required.");
            None
        }
    }
}

/// [`required`], owned; empty when it is missing (its error is recorded).
pub fn required_string(value: &Option<String>, field: &str, errors: &mut FieldErrors) -> String {
    required(value, field, errors).map(str::to_string).unwrap_or_default()
}

/// A feature quantity (seats and other purchased units).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FeatureQuantityIn {
    pub identifier: String,
    pub quantity: i64,
}

/// Validates requested feature quantities.
pub fn quantities(features: Option<Vec<FeatureQuantityIn>>, errors: &mut FieldErrors) -> Vec<FeatureQuantity> {
    let mut out: Vec<FeatureQuantity> = Vec::new();
    for f in features.unwrap_or_default() {
        if f.quantity < 0 {
            errors.add("features", format!("The quantity of {} must not be negative.", f.identifier));
        } else if out.iter().any(|o| o.identifier == f.identifier) {
            errors.add("features", format!("{} appears twice.", f.identifier));
        } else {
            out.push(FeatureQuantity { identifier: f.identifier, quantity: f.quantity as u64 });
        }
    }
    out
}

/// A required charge period (`chargePeriod`).
pub fn period(value: Option<&str>, errors: &mut FieldErrors) -> Option<ChargePeriod> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => {
            errors.add("charge_period", "This field is required.");
            None
        }
        Some(p) => match ChargePeriod::parse(p).filter(|_| p != "QUARTERLY") {
            Some(p) => Some(p),
            None => {
                errors.add("charge_period", format!("\"{p}\" is not a valid choice."));
                None
            }
        },
    }
}

/// An absolute http(s) URL with a host.
pub fn valid_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// An optional ISO 4217 currency code we support, upper-cased.
pub fn currency(value: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<String> {
    let c = value.map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty())?;
    if currency_exponent(&c).is_none() {
        errors.add(field, format!("\"{c}\" is not a supported currency."));
    }
    Some(c)
}

/// An amount in major units (`"12.50"` or `12.5`) as minor units of
/// `currency`, greater than zero.
/// `label` names the field in the message of an unreadable amount.
pub fn positive_amount(amount: &Value, currency: &str, label: &str) -> Result<i64, String> {
    match to_minor(amount, currency_exponent(currency).unwrap_or(2)) {
        Ok(m) if m > 0 => Ok(m),
        Ok(_) => Err("Ensure this value is greater than 0.".to_string()),
        Err(m) => Err(format!("{label} {m}.")),
    }
}

/// An optional ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country(value: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<String> {
    let c = value.map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty())?;
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.add(field, "Enter an ISO 3166-1 alpha-2 country code, e.g. US.");
    }
    Some(c)
}

/// A date (`YYYY-MM-DD`, the day's start) or a datetime (ISO 8601; naive is UTC).
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(d) = kelviq_core::timefmt::parse_date(s) {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&s.replace(' ', "T")) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

/// `start_date`/`end_date` as an inclusive range of days.
pub fn date_filters(
    column: &'static str,
    start: Option<&str>,
    end: Option<&str>,
    filters: &mut Vec<Filter>,
) -> ApiResult<()> {
    let parse = |field: &str, v: &str| -> ApiResult<NaiveDate> {
        kelviq_core::timefmt::parse_date(v).ok_or_else(|| ApiError::field(field, "Enter a valid date (YYYY-MM-DD)."))
    };
    let midnight = |d: NaiveDate| -> DateTime<Utc> { d.and_hms_opt(0, 0, 0).expect("midnight").and_utc() };
    if let Some(v) = start.filter(|v| !v.is_empty()) {
        filters.push(Filter::AtLeast(column, midnight(parse("start_date", v)?)));
    }
    if let Some(v) = end.filter(|v| !v.is_empty()) {
        filters.push(Filter::Before(column, midnight(parse("end_date", v)?) + Duration::days(1)));
    }
    Ok(())
}

/// A `status` filter, one of `allowed`.
pub fn status_filter(value: Option<&str>, allowed: &[&str], filters: &mut Vec<Filter>) -> ApiResult<()> {
    if let Some(s) = value.map(str::trim).filter(|s| !s.is_empty()) {
        if !allowed.contains(&s) {
            return Err(ApiError::field("status", format!("\"{s}\" is not a valid choice.")));
        }
        filters.push(Filter::Eq("status", s.to_string()));
    }
    Ok(())
}

/// What a `search` looks through.
#[derive(Debug, Clone, Copy)]
pub enum SearchScope {
    /// The document's own text.
    Document,
    /// For rows that only name their order (refunds, transactions): their
    /// text, and the order's customer's id, name and email too.
    WithOrderCustomer,
}

/// A `search` filter.
pub fn search_filter(value: Option<&str>, filters: &mut Vec<Filter>, scope: SearchScope) {
    if let Some(s) = value.map(str::trim).filter(|s| !s.is_empty()) {
        filters.push(match scope {
            SearchScope::Document => Filter::Search(s.to_string()),
            SearchScope::WithOrderCustomer => Filter::SearchWithOrderCustomer(s.to_string()),
        });
    }
}

/// One page of a document table (counted first, so that pages past the end resolve as DRF does).
pub async fn page_of<T: serde::de::DeserializeOwned>(
    state: &AppState,
    tenant: &Tenant,
    table: DocTable,
    filters: &[Filter],
    parts: &Parts,
) -> ApiResult<(Paging, u64, Vec<T>)> {
    let mut paging = Paging::from_parts(parts, DEFAULT_PAGE_SIZE)?;
    let total = state.store.count_docs(table, tenant, filters).await?;
    let (limit, offset) = paging.window(total as u64)?;
    let items = state.store.list_docs::<T>(table, tenant, filters, limit, offset).await?;
    Ok((paging, total as u64, items))
}
