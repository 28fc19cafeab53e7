//! A promotion's fields as given, checked one by one.

use crate::error::{ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use kelviq_core::promotions::{Banner, Checks, CountryGroup, Promotion};
use kelviq_core::tax::parse_percentage;
use kelviq_core::{FieldErrors, Tenant};
use serde_json::Value;

/// The longest name, and banner message.
pub const MAX_NAME: usize = 100;
pub const MAX_MESSAGE: usize = 1_000;

/// A banner's settings as given (`None`: the default's).
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetFields {
    /// BANNER.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub background_color: Option<String>,
    pub font_color: Option<String>,
    pub highlight_font_color: Option<String>,
    pub font_size: Option<String>,
    pub border_radius: Option<String>,
    pub placement: Option<String>,
    pub un_styled: Option<bool>,
    pub add_close_icon: Option<bool>,
    /// With `{country}`, `{country_flag}`, `{coupon_code}`, `{discount_percentage}`.
    pub country_message: Option<String>,
}

/// A new promotion's fields.
#[derive(Debug, Default)]
pub struct PromotionFields {
    pub name: Option<String>,
    pub products: Option<Vec<String>>,
    pub plans: Option<Vec<String>>,
    pub group_percentages: Option<Vec<(Option<String>, Option<Value>)>>,
    pub country_overrides: Option<Vec<(Option<String>, Option<Value>)>>,
    pub widgets: Option<Vec<WidgetFields>>,
    pub checks: [Option<bool>; 5],
    pub strict_country: Option<bool>,
}

/// A change: the name and banners, and whatever else was sent (refused).
#[derive(Debug, Default)]
pub struct PromotionChange {
    pub name: Option<String>,
    pub widgets: Option<Vec<WidgetFields>>,
    /// Targeting fields that were sent: they cannot change.
    pub fixed: Vec<&'static str>,
}

fn name(value: &str, errors: &mut FieldErrors) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        errors.add("name", "This field may not be blank.");
    } else if v.chars().count() > MAX_NAME {
        errors.add("name", format!("Ensure this field has no more than {MAX_NAME} characters."));
    } else if v.chars().any(char::is_control) {
        errors.add("name", "Control characters are not allowed.");
    } else {
        return Some(v.to_string());
    }
    None
}

/// ISO 3166-1 codes, upper-cased; an unknown one is named.
pub fn countries(given: Option<Vec<String>>, errors: &mut FieldErrors) -> Vec<String> {
    let mut out = Vec::new();
    for c in given.unwrap_or_default() {
        let code = c.trim().to_ascii_uppercase();
        if kelviq_core::geo::country_name(&code).is_none() {
            errors.add("countries", format!("\"{c}\" is not an ISO 3166-1 alpha-2 country code."));
        } else {
            out.push(code);
        }
    }
    if out.len() > 300 {
        errors.add("countries", "At most 300 countries.");
    }
    out
}

fn color(v: &str) -> bool {
    let hex = v.strip_prefix('#').unwrap_or("");
    matches!(hex.len(), 3 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A CSS length: `0`, or a number with `px`, `rem`, `em` or `%`.
fn length(v: &str) -> bool {
    let v = v.trim();
    let number = ["px", "rem", "em", "%"].iter().find_map(|u| v.strip_suffix(u)).unwrap_or(v);
    (v == "0" || number != v)
        && !number.is_empty()
        && number.len() <= 8
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn banner(w: WidgetFields, errors: &mut FieldErrors) -> Banner {
    let mut b = Banner::default();
    if w.kind.as_deref().is_some_and(|k| k != "BANNER") {
        errors.add("widgets", "The only widget type is BANNER.");
    }
    for (value, into, check, what) in [
        (w.background_color, &mut b.background_color, color as fn(&str) -> bool, "a colour like #3182CE"),
        (w.font_color, &mut b.font_color, color, "a colour like #F9F9F9"),
        (w.highlight_font_color, &mut b.highlight_font_color, color, "a colour like #DD5C64"),
        (w.font_size, &mut b.font_size, length, "a CSS length like 1rem"),
        (w.border_radius, &mut b.border_radius, length, "a CSS length like 4px"),
    ] {
        match value {
            Some(v) if check(&v) => *into = v.trim().to_string(),
            Some(v) => errors.add("widgets", format!("{v:?} is not {what}.")),
            None => {}
        }
    }
    match w.placement.as_deref() {
        Some(p @ ("top" | "bottom")) => b.placement = p.into(),
        Some(p) => errors.add("widgets", format!("placement {p:?} is not top or bottom.")),
        None => {}
    }
    b.un_styled = w.un_styled.unwrap_or(b.un_styled);
    b.add_close_icon = w.add_close_icon.unwrap_or(b.add_close_icon);
    if let Some(m) = w.country_message {
        if m.chars().count() > MAX_MESSAGE || m.chars().any(|c| c.is_control() && c != '\n') {
            errors.add("widgets", format!("countryMessage: at most {MAX_MESSAGE} characters, no control characters."));
        } else {
            b.country_message = m;
        }
    }
    b
}

fn banners(given: Option<Vec<WidgetFields>>, errors: &mut FieldErrors) -> Vec<Banner> {
    match given {
        None => vec![Banner::default()],
        Some(list) if list.len() > 1 => {
            errors.add("widgets", "A promotion has one BANNER widget.");
            Vec::new()
        }
        Some(list) => list.into_iter().map(|w| banner(w, errors)).collect(),
    }
}

fn percent(v: Option<&Value>, field: &str, errors: &mut FieldErrors) -> Option<i64> {
    match v.map(parse_percentage) {
        Some(Ok(p)) => Some(p),
        Some(Err(m)) => {
            errors.add(field, m);
            None
        }
        None => {
            errors.add(field, "Each entry needs a percentage (0 to 100).");
            None
        }
    }
}

/// Checks a new promotion's fields.
pub async fn check_new(
    store: &kelviq_store::Store,
    tenant: &Tenant,
    f: PromotionFields,
    groups: &[CountryGroup],
    now: DateTime<Utc>,
) -> ServiceResult<Promotion> {
    let mut errors = FieldErrors::new();
    let name = match &f.name {
        Some(n) => name(n, &mut errors),
        None => {
            errors.add("name", "This field is required.");
            None
        }
    };
    let mut products = Vec::new();
    for p in f.products.unwrap_or_default() {
        match uuid::Uuid::parse_str(p.trim()) {
            Ok(id) if store.find_product(tenant, &id.to_string()).await?.is_some() => products.push(id),
            _ => errors.add("products", format!("Product {p:?} does not exist.")),
        }
    }
    let mut plans = Vec::new();
    for p in f.plans.unwrap_or_default() {
        match store.find_published_plan(tenant, p.trim()).await? {
            Some(plan) => plans.push(plan.identifier),
            None => errors.add("plans", format!("Plan {p:?} does not exist or is not published.")),
        }
    }
    let mut group_percentages = Vec::new();
    for (group, pct) in f.group_percentages.unwrap_or_default() {
        let group = group.unwrap_or_default();
        if !groups.iter().any(|g| g.name == group) {
            errors.add("group_percentages", format!("{group:?} is not a country group."));
        } else if let Some(p) = percent(pct.as_ref(), "group_percentages", &mut errors) {
            group_percentages.push((group, p));
        }
    }
    let mut country_overrides = Vec::new();
    for (country, pct) in f.country_overrides.unwrap_or_default() {
        let code = country.unwrap_or_default().trim().to_ascii_uppercase();
        if kelviq_core::geo::country_name(&code).is_none() {
            errors.add("country_overrides", format!("{code:?} is not an ISO 3166-1 alpha-2 country code."));
        } else if let Some(p) = percent(pct.as_ref(), "country_overrides", &mut errors) {
            country_overrides.push((code, p));
        }
    }
    let banners = banners(f.widgets, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    let [vpn, tor, proxy, relay, crawler] = f.checks.map(|c| c.unwrap_or(true));
    Ok(Promotion {
        id: uuid::Uuid::new_v4(),
        name: name.unwrap_or_default(),
        products,
        plans,
        group_percentages,
        country_overrides,
        countries: Default::default(),
        banners,
        checks: Checks { vpn, tor, proxy, relay, crawler },
        strict_country: f.strict_country.unwrap_or(true),
        created_at: now,
        modified_at: now,
    })
}

/// Applies a change to the name and banners; anything else is refused.
pub fn apply_change(p: &mut Promotion, c: PromotionChange) -> ServiceResult<()> {
    let mut errors = FieldErrors::new();
    for field in &c.fixed {
        errors.add(field, "What a promotion targets cannot change once it is made; make a new one.");
    }
    if let Some(n) = &c.name {
        if let Some(n) = name(n, &mut errors) {
            p.name = n;
        }
    }
    if c.widgets.is_some() {
        p.banners = banners(c.widgets, &mut errors);
    }
    errors.into_result().map_err(ServiceError::Fields)
}
