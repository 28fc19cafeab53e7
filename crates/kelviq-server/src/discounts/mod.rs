//! Discount codes (server key): `POST/GET /discounts/`, `GET/PATCH/DELETE
//! /discounts/{id}/`. Checkout redeems them ([`redeem`]); a redemption keeps
//! the terms it was made with, so a change here applies to later ones.

pub mod redeem;

use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::discounts::{
    normalize_code, CurrencyAmount, Discount, DiscountDuration, DiscountValue, MIN_PERCENTAGE,
};
use kelviq_core::money::{currency_exponent, to_minor};
use kelviq_core::tax::parse_percentage;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::Store;
use serde_json::Value;

/// The longest name.
pub const MAX_NAME: usize = 100;
/// The most invoices a REPEATING code may cover.
pub const MAX_CYCLES: i64 = 1_000;
/// The most products, and plans, a code may be scoped to.
pub const MAX_SCOPE: usize = 100;

/// A fixed amount as given: a currency and an amount in major units.
#[derive(Debug, Clone)]
pub struct AmountIn {
    pub currency: Option<String>,
    pub amount: Option<Value>,
}

/// The fields of a new code or of a change (`None`: not given;
/// `Some(None)`: cleared).
#[derive(Debug, Default)]
pub struct DiscountFields {
    pub code: Option<String>,
    pub name: Option<String>,
    pub discount_type: Option<String>,
    pub percentage: Option<Value>,
    pub amounts: Option<Vec<AmountIn>>,
    pub duration: Option<String>,
    pub duration_in_cycles: Option<Option<i64>>,
    pub max_redemptions: Option<Option<i64>>,
    pub max_redemptions_per_customer: Option<Option<i64>>,
    pub starts_at: Option<Option<String>>,
    pub expires_at: Option<Option<String>>,
    pub products: Option<Vec<String>>,
    pub plans: Option<Vec<String>>,
    pub first_purchase_only: Option<bool>,
    pub minimum_amount: Option<Option<AmountIn>>,
}

fn amount(a: &AmountIn, field: &str, errors: &mut FieldErrors) -> Option<CurrencyAmount> {
    let currency = a.currency.as_deref().map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
    let Some(exp) = currency_exponent(&currency) else {
        errors.add(field, format!("\"{currency}\" is not a supported currency."));
        return None;
    };
    match a.amount.as_ref().map(|v| to_minor(v, exp)) {
        Some(Ok(m)) if m > 0 && m <= 100_000_000_000 => Some(CurrencyAmount { currency, minor: m }),
        Some(Ok(_)) => {
            errors.add(field, "Each amount must be greater than 0 and at most 1,000,000,000.");
            None
        }
        Some(Err(m)) => {
            errors.add(field, format!("amount {m}."));
            None
        }
        None => {
            errors.add(field, "Each amount needs a currency and an amount.");
            None
        }
    }
}

fn limit(value: Option<i64>, field: &str, errors: &mut FieldErrors) -> Option<u32> {
    match value {
        Some(n) if (1..=1_000_000_000).contains(&n) => Some(n as u32),
        Some(_) => {
            errors.add(field, "Ensure this value is from 1 to 1000000000.");
            None
        }
        None => None,
    }
}

fn instant(value: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    let v = value.filter(|v| !v.trim().is_empty())?;
    let t = crate::http::input::instant(v);
    if t.is_none() {
        errors.add(field, "Enter a date (YYYY-MM-DD) or an ISO 8601 datetime.");
    }
    t
}

fn text_field(value: &str, field: &str, max: usize, errors: &mut FieldErrors) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        errors.add(field, "This field may not be blank.");
    } else if v.chars().count() > max {
        errors.add(field, format!("Ensure this field has no more than {max} characters."));
    } else if v.chars().any(char::is_control) {
        errors.add(field, "Control characters are not allowed.");
    } else {
        return Some(v.to_string());
    }
    None
}

/// Checks the given fields into `d`, naming each bad one in `errors`
/// (not whether the products and plans exist).
pub fn check_fields(f: DiscountFields, d: &mut Discount, errors: &mut FieldErrors) {
    apply(f, d, errors)
}

/// Checks the given fields into `d`, naming each bad one in `errors`.
fn apply(f: DiscountFields, d: &mut Discount, errors: &mut FieldErrors) {
    if let Some(code) = &f.code {
        match normalize_code(code) {
            Ok(c) => d.code = c,
            Err(m) => errors.add("code", m),
        }
    }
    if let Some(name) = &f.name {
        if let Some(n) = text_field(name, "name", MAX_NAME, errors) {
            d.name = n;
        }
    }
    let kind = f.discount_type.clone().or_else(|| {
        // A value given alone keeps (or implies) its type.
        match (&f.percentage, &f.amounts) {
            (Some(_), None) => Some("PERCENTAGE".into()),
            (None, Some(_)) => Some("FIXED".into()),
            _ => None,
        }
    });
    match kind.as_deref() {
        None => {}
        Some("PERCENTAGE") => match f.percentage.as_ref().map(parse_percentage) {
            Some(Ok(p)) if p >= MIN_PERCENTAGE => d.value = DiscountValue::Percentage { percentage: p },
            Some(Ok(_)) => errors.add("percentage", "Ensure this value is from 0.01 to 100."),
            Some(Err(m)) => errors.add("percentage", m),
            None => errors.add("percentage", "This field is required for a PERCENTAGE discount."),
        },
        Some("FIXED") => match &f.amounts {
            Some(list) if !list.is_empty() && list.len() <= 50 => {
                let amounts: Vec<CurrencyAmount> = list.iter().filter_map(|a| amount(a, "amounts", errors)).collect();
                let mut seen: Vec<&str> = amounts.iter().map(|a| a.currency.as_str()).collect();
                seen.sort_unstable();
                if seen.windows(2).any(|w| w[0] == w[1]) {
                    errors.add("amounts", "Give at most one amount per currency.");
                } else if amounts.len() == list.len() {
                    d.value = DiscountValue::Fixed { amounts };
                }
            }
            _ => errors.add("amounts", "A FIXED discount needs 1 to 50 amounts, one per currency."),
        },
        Some(other) => errors.add("discount_type", format!("\"{other}\" is not a valid choice (PERCENTAGE or FIXED).")),
    }
    let cycles = f.duration_in_cycles.flatten();
    match f.duration.as_deref() {
        None if cycles.is_some() && !matches!(d.duration, DiscountDuration::Repeating(_)) => {
            errors.add("duration_in_cycles", "Only a REPEATING discount has cycles.")
        }
        None => {
            if let (Some(n), DiscountDuration::Repeating(_)) = (cycles, d.duration) {
                match limit(Some(n), "duration_in_cycles", errors) {
                    Some(n) if i64::from(n) <= MAX_CYCLES => d.duration = DiscountDuration::Repeating(n),
                    Some(_) => {
                        errors.add("duration_in_cycles", format!("Ensure this value is from 1 to {MAX_CYCLES}."))
                    }
                    None => {}
                }
            }
        }
        Some("ONCE") | Some("FOREVER") if cycles.is_some() => {
            errors.add("duration_in_cycles", "Only a REPEATING discount has cycles.")
        }
        Some("ONCE") => d.duration = DiscountDuration::Once,
        Some("FOREVER") => d.duration = DiscountDuration::Forever,
        Some("REPEATING") => match cycles {
            Some(n) if (1..=MAX_CYCLES).contains(&n) => d.duration = DiscountDuration::Repeating(n as u32),
            Some(_) => errors.add("duration_in_cycles", format!("Ensure this value is from 1 to {MAX_CYCLES}.")),
            None => errors.add("duration_in_cycles", "This field is required for a REPEATING discount."),
        },
        Some(other) => {
            errors.add("duration", format!("\"{other}\" is not a valid choice (ONCE, REPEATING or FOREVER)."))
        }
    }
    if let Some(m) = f.max_redemptions {
        d.max_redemptions = limit(m, "max_redemptions", errors);
    }
    if let Some(m) = f.max_redemptions_per_customer {
        d.max_redemptions_per_customer = limit(m, "max_redemptions_per_customer", errors);
    }
    if let Some(s) = f.starts_at {
        d.starts_at = instant(s.as_deref(), "starts_at", errors);
    }
    if let Some(e) = f.expires_at {
        d.expires_at = instant(e.as_deref(), "expires_at", errors);
    }
    if let (Some(s), Some(e)) = (d.starts_at, d.expires_at) {
        if e <= s {
            errors.add("expires_at", "The end must be after the start.");
        }
    }
    if let Some(products) = f.products {
        if products.len() > MAX_SCOPE {
            errors.add("products", format!("At most {MAX_SCOPE} products."));
        }
        match products.iter().map(|p| uuid::Uuid::parse_str(p.trim())).collect::<Result<Vec<_>, _>>() {
            Ok(ids) => d.products = ids,
            Err(_) => errors.add("products", "Each product is a product's id (a UUID)."),
        }
    }
    if let Some(plans) = f.plans {
        if plans.len() > MAX_SCOPE {
            errors.add("plans", format!("At most {MAX_SCOPE} plans."));
        }
        let checked: Vec<String> = plans.iter().filter_map(|p| text_field(p, "plans", 200, errors)).collect();
        d.plans = checked;
    }
    if let Some(f) = f.first_purchase_only {
        d.first_purchase_only = f;
    }
    match f.minimum_amount {
        Some(None) => d.minimum_amount = None,
        Some(Some(m)) => d.minimum_amount = amount(&m, "minimum_amount", errors),
        None => {}
    }
}

/// Products and plans a code is scoped to must exist in the environment.
async fn check_scope(store: &Store, tenant: &Tenant, d: &Discount, errors: &mut FieldErrors) -> ServiceResult<()> {
    for p in &d.products {
        if store.find_product(tenant, &p.to_string()).await?.is_none() {
            errors.add("products", format!("Product {p} does not exist."));
        }
    }
    for identifier in &d.plans {
        if store.find_plan(tenant, identifier, None).await?.is_none() {
            errors.add("plans", format!("Plan \"{identifier}\" does not exist."));
        }
    }
    Ok(())
}

pub async fn create(state: &AppState, tenant: &Tenant, f: DiscountFields) -> ServiceResult<Discount> {
    let now = tenant_now(state, tenant).await?;
    create_in(&state.store, tenant, f, now).await
}

/// Makes a code in a store.
pub async fn create_in(
    store: &Store,
    tenant: &Tenant,
    f: DiscountFields,
    now: DateTime<Utc>,
) -> ServiceResult<Discount> {
    let mut errors = FieldErrors::new();
    if f.code.is_none() {
        errors.add("code", "This field is required.");
    }
    if f.discount_type.is_none() && f.percentage.is_none() && f.amounts.is_none() {
        errors.add("discount_type", "This field is required.");
    }
    let mut d = Discount::new("", DiscountValue::Percentage { percentage: 0 }, now);
    apply(f, &mut d, &mut errors);
    if d.name.is_empty() {
        d.name = d.code.clone();
    }
    check_scope(store, tenant, &d, &mut errors).await?;
    errors.into_result().map_err(ServiceError::Fields)?;
    store.insert_discount(tenant, &d).await?;
    crate::http::reqlog::in_span(|| tracing::info!(discount = %d.id, code = %d.code, "discount created"));
    Ok(d)
}

/// Changes a code in a store (`d` as read); the code as changed.
pub async fn update_in(
    store: &Store,
    tenant: &Tenant,
    mut d: Discount,
    f: DiscountFields,
    now: DateTime<Utc>,
) -> ServiceResult<Discount> {
    let mut errors = FieldErrors::new();
    apply(f, &mut d, &mut errors);
    check_scope(store, tenant, &d, &mut errors).await?;
    errors.into_result().map_err(ServiceError::Fields)?;
    d.modified_at = now;
    store.update_discount(tenant, &d).await?;
    Ok(d)
}

pub async fn get(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<Discount> {
    state.store.find_discount(tenant, id).await?.ok_or_else(ServiceError::not_found)
}

/// A code made by API (a promotion's coupons change with their promotion).
async fn own(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<Discount> {
    let d = get(state, tenant, id).await?;
    if d.promotion_id.is_some() {
        return Err(ServiceError::BadRequest(
            "This code is a promotion's coupon: change or delete the promotion instead.".into(),
        ));
    }
    Ok(d)
}

pub async fn update(state: &AppState, tenant: &Tenant, id: uuid::Uuid, f: DiscountFields) -> ServiceResult<Discount> {
    let d = own(state, tenant, id).await?;
    update_in(&state.store, tenant, d, f, tenant_now(state, tenant).await?).await
}

pub async fn delete(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<()> {
    own(state, tenant, id).await?;
    let now = tenant_now(state, tenant).await?;
    Ok(state.store.delete_discount(tenant, id, now).await?)
}
