//! Plans: versioned offers of a product, with prices per currency and
//! per-feature entitlements. Validation of everything a plan version holds.

use crate::catalog::{identifier_or_slug, FeatureType};
use crate::money::{self, currency_exponent};
use crate::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// How often a price charges (the checkout enum, spec §4.8). `QUARTERLY`,
/// used by the catalog's price objects, is read as `THREE_MONTHS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargePeriod {
    OneTime,
    Daily,
    Weekly,
    TwentyEightDays,
    Monthly,
    ThreeMonths,
    SixMonths,
    Yearly,
}

impl ChargePeriod {
    pub const ALL: [ChargePeriod; 8] = [
        ChargePeriod::OneTime,
        ChargePeriod::Daily,
        ChargePeriod::Weekly,
        ChargePeriod::TwentyEightDays,
        ChargePeriod::Monthly,
        ChargePeriod::ThreeMonths,
        ChargePeriod::SixMonths,
        ChargePeriod::Yearly,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ONE_TIME" => ChargePeriod::OneTime,
            "DAILY" => ChargePeriod::Daily,
            "WEEKLY" => ChargePeriod::Weekly,
            "TWENTY_EIGHT_DAYS" => ChargePeriod::TwentyEightDays,
            "MONTHLY" => ChargePeriod::Monthly,
            "THREE_MONTHS" | "QUARTERLY" => ChargePeriod::ThreeMonths,
            "SIX_MONTHS" => ChargePeriod::SixMonths,
            "YEARLY" => ChargePeriod::Yearly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChargePeriod::OneTime => "ONE_TIME",
            ChargePeriod::Daily => "DAILY",
            ChargePeriod::Weekly => "WEEKLY",
            ChargePeriod::TwentyEightDays => "TWENTY_EIGHT_DAYS",
            ChargePeriod::Monthly => "MONTHLY",
            ChargePeriod::ThreeMonths => "THREE_MONTHS",
            ChargePeriod::SixMonths => "SIX_MONTHS",
            ChargePeriod::Yearly => "YEARLY",
        }
    }

    pub fn is_recurring(self) -> bool {
        self != ChargePeriod::OneTime
    }
}

pub const RESET_PERIODS: &[&str] =
    &["NEVER", "EVERY_DAY", "EVERY_WEEK", "EVERY_28_DAYS", "EVERY_MONTH", "EVERY_QUARTER", "EVERY_YEAR"];
/// Where a meter's periods are anchored: the calendar or the subscription start.
pub const RESET_TIMES: &[&str] = &["BEGINNING_OF_PERIOD", "SUBSCRIPTION_START"];

/// A validated new plan (version 1, a draft).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    pub identifier: String,
    pub identifier_generated: bool,
    pub name: String,
    pub product: String,
    pub fields: PlanFields,
}

/// What a plan version says about itself (everything but prices and entitlements).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanFields {
    /// The identifier of the plan this one inherits features from.
    #[serde(default)]
    pub parent: Option<String>,
    pub description: String,
    pub metadata: Value,
    pub is_visible: bool,
    pub license: Option<Value>,
    pub links: Vec<Value>,
    pub ordering: Option<i64>,
}

/// A validated plan patch; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanChanges {
    pub parent: Option<Option<String>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    pub is_visible: Option<bool>,
    pub license: Option<Option<Value>>,
    pub links: Option<Vec<Value>>,
    pub ordering: Option<Option<i64>>,
}

impl PlanChanges {
    pub fn is_empty(&self) -> bool {
        *self == PlanChanges::default()
    }

    pub fn apply(&self, name: &mut String, f: &mut PlanFields) {
        if let Some(p) = &self.parent {
            f.parent = p.clone();
        }
        if let Some(n) = &self.name {
            *name = n.clone();
        }
        if let Some(d) = &self.description {
            f.description = d.clone();
        }
        if let Some(m) = &self.metadata {
            f.metadata = m.clone();
        }
        if let Some(v) = self.is_visible {
            f.is_visible = v;
        }
        if let Some(l) = &self.license {
            f.license = l.clone();
        }
        if let Some(l) = &self.links {
            f.links = l.clone();
        }
        if let Some(o) = self.ordering {
            f.ordering = o;
        }
    }
}

/// The raw plan body fields, snake_case, as the wire type hands them over.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    /// `None`: not given; `Some(None)`: cleared.
    pub parent: Option<Option<String>>,
    pub name: Option<String>,
    pub identifier: Option<String>,
    pub product: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    pub is_visible: Option<bool>,
    pub license: Option<Value>,
    pub links: Option<Value>,
    pub ordering: Option<Value>,
}

fn check_name(name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() {
        errors.add("name", "This field may not be blank.");
    } else if name.chars().count() > 255 {
        errors.add("name", "Ensure this field has no more than 255 characters.");
    }
}

fn parse_metadata(m: Option<Value>, errors: &mut FieldErrors) -> Option<Value> {
    match m {
        None => None,
        Some(Value::Null) => Some(json!({})),
        Some(m @ Value::Object(_)) => Some(m),
        Some(_) => {
            errors.add("metadata", "Expected a JSON object.");
            None
        }
    }
}

/// `{enabled, activationLimit ≥ 1, activationLimitEnabled, durationUnit DAY|MONTH|YEAR, durationValue ≥ 1, hasExpiry}`.
fn parse_license(v: Value, errors: &mut FieldErrors) -> Option<Value> {
    let Some(o) = v.as_object() else {
        if !v.is_null() {
            errors.add("license", "Expected a JSON object.");
        }
        return None;
    };
    let flag = |k: &str, errors: &mut FieldErrors| match o.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("license", format!("{} must be a boolean.", crate::casing::snake_to_camel(k)));
            false
        }
    };
    let enabled = flag("enabled", errors);
    let limit_enabled = flag("activation_limit_enabled", errors);
    let has_expiry = flag("has_expiry", errors);
    let positive = |k: &str, errors: &mut FieldErrors| match o.get(k) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|n| *n >= 1) {
            Some(n) => Some(n),
            None => {
                errors.add(
                    "license",
                    format!("{} must be a whole number of at least 1.", crate::casing::snake_to_camel(k)),
                );
                None
            }
        },
    };
    let activation_limit = positive("activation_limit", errors);
    let duration_value = positive("duration_value", errors);
    let duration_unit = match o.get("duration_unit") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if ["DAY", "MONTH", "YEAR"].contains(&u.as_str()) => Some(u.clone()),
        Some(_) => {
            errors.add("license", "durationUnit must be DAY, MONTH or YEAR.");
            None
        }
    };
    if limit_enabled && activation_limit.is_none() {
        errors.add("license", "activationLimit is required when activationLimitEnabled is true.");
    }
    if has_expiry && (duration_unit.is_none() || duration_value.is_none()) {
        errors.add("license", "durationUnit and durationValue are required when hasExpiry is true.");
    }
    Some(json!({
        "enabled": enabled,
        "activation_limit": activation_limit,
        "activation_limit_enabled": limit_enabled,
        "duration_unit": duration_unit,
        "duration_value": duration_value,
        "has_expiry": has_expiry,
    }))
}

fn parse_links(v: Value, errors: &mut FieldErrors) -> Vec<Value> {
    let Some(items) = v.as_array() else {
        if !v.is_null() {
            errors.add("links", "Expected a list of {name, url}.");
        }
        return Vec::new();
    };
    let mut links = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty());
        let url =
            item.get("url").and_then(Value::as_str).filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        match (name, url) {
            (Some(name), Some(url)) => links.push(json!({"name": name, "url": url})),
            _ => errors.add("links", format!("links[{i}] needs a name and an http(s) url.")),
        }
    }
    links
}

fn parse_ordering(v: Value, errors: &mut FieldErrors) -> Option<i64> {
    match v {
        Value::Null => None,
        v => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                errors.add("ordering", "A valid integer is required.");
                None
            }
        },
    }
}

impl NewPlan {
    pub fn parse(input: PlanInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = input.name.unwrap_or_else(|| {
            errors.add("name", "This field is required.");
            String::new()
        });
        if !errors.fields().contains_key("name") {
            check_name(&name, &mut errors);
        }
        let product = input.product.filter(|p| !p.is_empty()).unwrap_or_else(|| {
            errors.add("product", "This field is required.");
            String::new()
        });
        let (identifier, identifier_generated) = identifier_or_slug(input.identifier, &name, &mut errors);
        let metadata = parse_metadata(input.metadata, &mut errors).unwrap_or_else(|| json!({}));
        let license = input.license.and_then(|l| parse_license(l, &mut errors));
        let links = input.links.map(|l| parse_links(l, &mut errors)).unwrap_or_default();
        let ordering = input.ordering.and_then(|o| parse_ordering(o, &mut errors));
        errors.into_result()?;
        Ok(NewPlan {
            identifier,
            identifier_generated,
            name,
            product,
            fields: PlanFields {
                parent: input.parent.flatten().filter(|p| !p.is_empty()),
                description: input.description.unwrap_or_default(),
                metadata,
                is_visible: input.is_visible.unwrap_or(true),
                license,
                links,
                ordering,
            },
        })
    }
}

impl PlanChanges {
    /// `product` and `identifier` cannot change; naming them is an error.
    pub fn parse(input: PlanInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        if input.product.is_some() {
            errors.add("product", "A plan's product cannot be changed.");
        }
        if input.identifier.is_some() {
            errors.add("identifier", "A plan's identifier cannot be changed.");
        }
        if let Some(n) = &input.name {
            check_name(n, &mut errors);
        }
        let changes = PlanChanges {
            parent: input.parent.map(|p| p.filter(|p| !p.is_empty())),
            name: input.name,
            description: input.description,
            metadata: parse_metadata(input.metadata, &mut errors),
            is_visible: input.is_visible,
            license: input.license.map(|l| parse_license(l, &mut errors)),
            links: input.links.map(|l| parse_links(l, &mut errors)),
            ordering: input.ordering.map(|o| parse_ordering(o, &mut errors)),
        };
        errors.into_result()?;
        Ok(changes)
    }
}

/// An entitlement's configuration on a plan, as stored (snake_case keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitlementDetails {
    /// BOOLEAN: a boolean. CUSTOMIZABLE: a number. METER: the period limit, null when unlimited.
    pub value: Value,
    pub has_unlimited_usage: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_time: Option<String>,
    pub hard_limit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_alerts: Option<Value>,
}

/// Validates `details` for a feature of type `ty`. Messages are prefixed with `at`.
pub fn parse_entitlement_details(
    ty: FeatureType,
    details: &Value,
    at: &str,
    errors: &mut FieldErrors,
) -> Option<EntitlementDetails> {
    let before = errors.fields().values().map(Vec::len).sum::<usize>();
    let mut err = |m: String| errors.add("details", format!("{at}{m}"));
    let Some(d) = details.as_object() else {
        err("details must be an object.".into());
        return None;
    };
    let get = |k: &str| d.get(k).filter(|v| !v.is_null());
    let unlimited = match get("has_unlimited_usage") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|| {
            err("hasUnlimitedUsage must be a boolean.".into());
            false
        }),
    };
    let hard_limit = match get("hard_limit") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|| {
            err("hardLimit must be a boolean.".into());
            false
        }),
    };
    let mut out = EntitlementDetails {
        value: Value::Null,
        has_unlimited_usage: unlimited,
        reset: None,
        reset_time: None,
        hard_limit,
        rollover: None,
        usage_alerts: None,
    };
    match ty {
        FeatureType::Boolean => match get("value").map(Value::as_bool) {
            None => out.value = Value::Bool(true),
            Some(Some(b)) => out.value = Value::Bool(b),
            Some(None) => err("value must be a boolean for a BOOLEAN feature.".into()),
        },
        FeatureType::Customizable => match get("value") {
            Some(v @ Value::Number(_)) => out.value = v.clone(),
            _ => err("value (a number) is required for a CUSTOMIZABLE feature.".into()),
        },
        FeatureType::Meter => {
            if unlimited {
                out.value = Value::Null;
            } else {
                match get("value").and_then(Value::as_i64).filter(|v| *v >= 0) {
                    Some(v) => out.value = json!(v),
                    None => {
                        err("value (a whole number, at least 0) is required unless hasUnlimitedUsage is true.".into())
                    }
                }
            }
            out.reset = Some(match get("reset").and_then(Value::as_str) {
                None if get("reset").is_none() => "EVERY_MONTH".to_string(),
                Some(r) if RESET_PERIODS.contains(&r) => r.to_string(),
                _ => {
                    err(format!("reset must be one of {}.", RESET_PERIODS.join(", ")));
                    String::new()
                }
            });
            out.reset_time = match get("reset_time") {
                None => Some("BEGINNING_OF_PERIOD".into()),
                Some(Value::String(t)) if RESET_TIMES.contains(&t.as_str()) => Some(t.clone()),
                Some(_) => {
                    err(format!("resetTime must be one of {}.", RESET_TIMES.join(", ")));
                    None
                }
            };
            if let Some(r) = get("rollover") {
                match parse_rollover(r) {
                    Ok(r) => out.rollover = r,
                    Err(m) => err(m),
                }
            }
            if let Some(a) = get("usage_alerts") {
                match parse_alerts(a, unlimited) {
                    Ok(a) => out.usage_alerts = a,
                    Err(m) => err(m),
                }
            }
        }
    }
    let after = errors.fields().values().map(Vec::len).sum::<usize>();
    (after == before).then_some(out)
}

/// `{enabled, percentage 0–100, limit ≥ 0 | null}`; a disabled rollover is dropped.
pub fn parse_rollover(r: &Value) -> Result<Option<Value>, String> {
    let o = r.as_object().ok_or("rollover must be an object.")?;
    if !o.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return Ok(None);
    }
    let pct = o.get("percentage").and_then(Value::as_i64).filter(|p| (0..=100).contains(p));
    let pct = pct.ok_or("rollover.percentage must be a whole number from 0 to 100.")?;
    let limit = match o.get("limit") {
        None | Some(Value::Null) => None,
        Some(l) => Some(l.as_i64().filter(|l| *l >= 0).ok_or("rollover.limit must be a whole number, at least 0.")?),
    };
    Ok(Some(json!({"enabled": true, "percentage": pct, "limit": limit})))
}

/// `{enabled, thresholds: [..], thresholdType: PERCENTAGE (1–100) | BALANCE (≥ 0)}`.
pub fn parse_alerts(a: &Value, unlimited: bool) -> Result<Option<Value>, String> {
    let o = a.as_object().ok_or("usageAlerts must be an object.")?;
    if !o.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
        return Ok(None);
    }
    let kind = o.get("threshold_type").and_then(Value::as_str).unwrap_or("PERCENTAGE");
    let thresholds: Vec<i64> = o
        .get("thresholds")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or("usageAlerts.thresholds must be a non-empty list of numbers.")?
        .iter()
        .map(|t| t.as_i64().ok_or("usageAlerts.thresholds must be whole numbers."))
        .collect::<Result<_, _>>()?;
    match kind {
        "PERCENTAGE" => {
            if unlimited {
                return Err("PERCENTAGE usage alerts need a finite limit.".into());
            }
            if thresholds.iter().any(|t| !(1..=100).contains(t)) {
                return Err("PERCENTAGE thresholds must be from 1 to 100.".into());
            }
        }
        "BALANCE" => {
            if thresholds.iter().any(|t| *t < 0) {
                return Err("BALANCE thresholds must be at least 0.".into());
            }
        }
        _ => return Err("usageAlerts.thresholdType must be PERCENTAGE or BALANCE.".into()),
    }
    let mut sorted = thresholds;
    sorted.sort_unstable();
    sorted.dedup();
    Ok(Some(json!({"enabled": true, "thresholds": sorted, "threshold_type": kind})))
}

/// What a referenced feature is, for price validation.
#[derive(Debug, Clone)]
pub struct FeatureRef {
    pub id: uuid::Uuid,
    pub feature_type: FeatureType,
}

pub const PRICE_MODELS: &[&str] = &["FLAT", "PACKAGE", "TIERED", "VOLUME", "STAIRSTEP"];

/// Validates one price of a bulk replace and returns its stored form:
/// amounts as integer minor units (`amount_minor`, `flat_minor`) and unit
/// prices as micro-minor units (`unit_micro`).
pub fn parse_price(
    price: &Value,
    at: &str,
    features: &dyn Fn(&str) -> Option<FeatureRef>,
    errors: &mut FieldErrors,
) -> Option<Value> {
    let before = errors.fields().values().map(Vec::len).sum::<usize>();
    let mut err = |m: String| errors.add("prices", format!("{at}{m}"));
    let Some(p) = price.as_object() else {
        err("a price is an object.".into());
        return None;
    };
    let get = |k: &str| p.get(k).filter(|v| !v.is_null());
    let price_type = get("price_type").and_then(Value::as_str).unwrap_or("");
    if !["FREE", "PAID", "CUSTOM"].contains(&price_type) {
        err("priceType is required: FREE, PAID or CUSTOM.".into());
    }
    let currency = get("currency").and_then(Value::as_str).map(str::to_ascii_uppercase);
    let exp = match (&currency, price_type) {
        (Some(c), _) => match currency_exponent(c) {
            Some(e) => e,
            None => {
                err(format!("currency \"{c}\" is not a supported ISO 4217 code."));
                2
            }
        },
        (None, "PAID") => {
            err("currency is required for a PAID price.".into());
            2
        }
        (None, _) => 2,
    };
    let flag = |k: &str| get(k).and_then(Value::as_bool);
    let free_trial = flag("free_trial").unwrap_or(false);
    let trial_period = match get("trial_period") {
        None => {
            if free_trial {
                7
            } else {
                0
            }
        }
        Some(v) => match v.as_i64() {
            Some(d) if !free_trial || (1..=365).contains(&d) => d,
            _ => {
                err("trialPeriod must be from 1 to 365 days.".into());
                0
            }
        },
    };
    let tax_behavior = get("tax_behavior").and_then(Value::as_str).unwrap_or("UNSPECIFIED");
    if !["INCLUSIVE", "EXCLUSIVE", "UNSPECIFIED"].contains(&tax_behavior) {
        err("taxBehavior must be INCLUSIVE, EXCLUSIVE or UNSPECIFIED.".into());
    }
    let groups = match get("charge_catalog_price") {
        None => Vec::new(),
        Some(Value::Array(g)) => g.clone(),
        Some(_) => {
            err("chargeCatalogPrice must be a list.".into());
            Vec::new()
        }
    };
    if price_type != "PAID" && !groups.is_empty() {
        err(format!("a {price_type} price has no charges."));
    }
    if price_type == "PAID" && groups.is_empty() {
        err("a PAID price needs at least one charge.".into());
    }
    let mut stored_groups = Vec::new();
    let mut any_recurring = false;
    for (g, group) in groups.iter().enumerate() {
        match parse_charge_group(group, exp, features) {
            Ok((stored, recurring)) => {
                any_recurring |= recurring;
                stored_groups.push(stored);
            }
            Err(m) => err(format!("chargeCatalogPrice[{g}]: {m}")),
        }
    }
    if free_trial && !any_recurring {
        err("a free trial needs a recurring charge period.".into());
    }
    let after = errors.fields().values().map(Vec::len).sum::<usize>();
    (after == before).then(|| {
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "price_type": price_type,
            "currency": currency.unwrap_or_else(|| "USD".into()),
            "free_trial": free_trial,
            "trial_period": trial_period,
            "enabled": flag("enabled").unwrap_or(true),
            "tax_behavior": tax_behavior,
            "charge_catalog_price": stored_groups,
        })
    })
}

fn parse_charge_group(
    group: &Value,
    exp: u32,
    features: &dyn Fn(&str) -> Option<FeatureRef>,
) -> Result<(Value, bool), String> {
    let o = group.as_object().ok_or("must be an object")?;
    let get = |k: &str| o.get(k).filter(|v| !v.is_null());
    let model = get("price_model").and_then(Value::as_str).unwrap_or("FLAT");
    if !PRICE_MODELS.contains(&model) {
        return Err(format!("priceModel must be one of {}", PRICE_MODELS.join(", ")));
    }
    let feature = match get("feature").and_then(Value::as_str) {
        None => None,
        Some(key) => Some(features(key).ok_or_else(|| format!("feature \"{key}\" does not exist"))?),
    };
    if feature.is_none() && model != "FLAT" {
        return Err(format!("a {model} price applies to a feature; give `feature`"));
    }
    if let Some(f) = &feature {
        if model != "FLAT" && f.feature_type != FeatureType::Meter {
            return Err(format!("{model} pricing needs a METER feature"));
        }
    }
    let payment = get("payment_type").and_then(Value::as_str).unwrap_or("ADVANCE_COMMITMENT");
    if !["ADVANCE_COMMITMENT", "PAY_AS_YOU_GO"].contains(&payment) {
        return Err("paymentType must be ADVANCE_COMMITMENT or PAY_AS_YOU_GO".into());
    }
    let rollover = match get("rollover") {
        Some(r) => parse_rollover(r)?,
        None => None,
    };
    let usage_alerts = match get("usage_alerts") {
        Some(a) => parse_alerts(a, get("has_unlimited_usage").and_then(Value::as_bool).unwrap_or(false))?,
        None => None,
    };
    if payment == "PAY_AS_YOU_GO" {
        if model == "STAIRSTEP" {
            return Err("PAY_AS_YOU_GO cannot use STAIRSTEP pricing".into());
        }
        if rollover.is_some() {
            return Err("PAY_AS_YOU_GO has no rollover".into());
        }
    }
    let reset = get("reset").and_then(Value::as_str).map(str::to_string);
    if reset.as_deref().is_some_and(|r| !RESET_PERIODS.contains(&r)) {
        return Err(format!("reset must be one of {}", RESET_PERIODS.join(", ")));
    }
    let charges =
        get("charges").and_then(Value::as_array).filter(|c| !c.is_empty()).ok_or("charges must be a non-empty list")?;
    let mut seen = Vec::new();
    let mut stored = Vec::new();
    let mut recurring = false;
    for (i, c) in charges.iter().enumerate() {
        let (period, charge) = parse_charge(c, model, exp).map_err(|m| format!("charges[{i}]: {m}"))?;
        if seen.contains(&period) {
            return Err(format!("charges[{i}]: charge period {} appears twice", period.as_str()));
        }
        if payment == "PAY_AS_YOU_GO" && period != ChargePeriod::Monthly {
            return Err("PAY_AS_YOU_GO prices are monthly only".into());
        }
        if feature.is_some() && period == ChargePeriod::OneTime && !["FLAT", "PACKAGE"].contains(&model) {
            return Err("a one-time charge for a feature can only be FLAT or PACKAGE".into());
        }
        recurring |= period.is_recurring();
        seen.push(period);
        stored.push(charge);
    }
    Ok((
        json!({
            "feature": feature.map(|f| f.id.to_string()),
            "price_model": model,
            "reset": reset,
            "reset_time": get("reset_time").cloned(),
            "has_unlimited_usage": get("has_unlimited_usage").and_then(Value::as_bool).unwrap_or(false),
            "payment_type": payment,
            "rollover": rollover,
            "usage_alerts": usage_alerts,
            "charges": stored,
        }),
        recurring,
    ))
}

fn parse_charge(c: &Value, model: &str, exp: u32) -> Result<(ChargePeriod, Value), String> {
    let o = c.as_object().ok_or("must be an object")?;
    let period_text = o.get("charge_period").and_then(Value::as_str).unwrap_or("");
    let period = ChargePeriod::parse(period_text).ok_or_else(|| {
        format!(
            "chargePeriod \"{period_text}\" is not one of {}",
            ChargePeriod::ALL.map(ChargePeriod::as_str).join(", ")
        )
    })?;
    let price_data = o.get("price_data").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = Map::new();
    out.insert("charge_period".into(), json!(period.as_str()));
    match model {
        "FLAT" | "PACKAGE" => {
            let amount = price_data.get("amount").ok_or("priceData.amount is required")?;
            let minor = money::to_minor(amount, exp).map_err(|m| format!("priceData.amount {m}"))?;
            out.insert("amount_minor".into(), json!(minor));
            if model == "PACKAGE" {
                let block = price_data.get("block_size").and_then(Value::as_u64).filter(|b| *b >= 1);
                out.insert(
                    "block_size".into(),
                    json!(block.ok_or("priceData.blockSize (at least 1) is required for PACKAGE")?),
                );
            }
        }
        _ => {
            let tiers = o
                .get("tiers")
                .and_then(Value::as_array)
                .filter(|t| !t.is_empty())
                .ok_or("tiers must be a non-empty list")?;
            let mut last: Option<u64> = None;
            let mut stored = Vec::new();
            for (i, t) in tiers.iter().enumerate() {
                let up_to = match t.get("up_to") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s == "inf" => None,
                    Some(v) => Some(
                        v.as_u64()
                            .filter(|u| *u >= 1)
                            .ok_or(format!("tiers[{i}].upTo must be a positive whole number or \"inf\""))?,
                    ),
                };
                let is_last = i + 1 == tiers.len();
                if up_to.is_none() != is_last {
                    return Err("only the last tier is unbounded (upTo \"inf\"), and it must be".into());
                }
                if let (Some(prev), Some(u)) = (last, up_to) {
                    if u <= prev {
                        return Err(format!("tiers[{i}].upTo must be greater than the tier before"));
                    }
                }
                last = up_to.or(last);
                let unit =
                    t.get("unit_amount").filter(|v| !v.is_null()).map(|v| money::to_micro_minor(v, exp)).transpose();
                let flat = t.get("flat_amount").filter(|v| !v.is_null()).map(|v| money::to_minor(v, exp)).transpose();
                let unit = unit.map_err(|m| format!("tiers[{i}].unitAmount {m}"))?.unwrap_or(0);
                let flat = flat.map_err(|m| format!("tiers[{i}].flatAmount {m}"))?.unwrap_or(0);
                stored.push(json!({"up_to": up_to, "unit_micro": unit, "flat_minor": flat}));
            }
            out.insert("tiers".into(), Value::Array(stored));
        }
    }
    if let Some(adv) = o.get("advanced").filter(|a| !a.is_null() && a.as_object().is_none_or(|m| !m.is_empty())) {
        let a = adv.as_object().ok_or("advanced must be an object")?;
        let min = a.get("min_quantity").and_then(Value::as_u64);
        let max = a.get("max_quantity").and_then(Value::as_u64);
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err("advanced.minQuantity is above maxQuantity".into());
            }
        }
        out.insert("advanced".into(), json!({"min_quantity": min, "max_quantity": max}));
    }
    Ok((period, Value::Object(out)))
}

/// The stored price rendered in the API's shape (camelCase, amounts as decimal numbers).
pub fn price_to_wire(stored: &Value) -> Value {
    let currency = stored["currency"].as_str().unwrap_or("USD").to_string();
    let exp = currency_exponent(&currency).unwrap_or(2);
    let groups: Vec<Value> = stored["charge_catalog_price"]
        .as_array()
        .map(|g| g.iter().map(|group| group_to_wire(group, &currency, exp)).collect())
        .unwrap_or_default();
    json!({
        "id": stored["id"],
        "priceType": stored["price_type"],
        "currency": currency,
        "freeTrial": stored["free_trial"],
        "trialPeriod": stored["trial_period"],
        "enabled": stored["enabled"],
        "taxBehavior": stored["tax_behavior"],
        "chargeCatalogPrice": groups,
    })
}

fn group_to_wire(group: &Value, currency: &str, exp: u32) -> Value {
    let charges: Vec<Value> = group["charges"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let mut price_data = Map::new();
                    if let Some(minor) = c["amount_minor"].as_i64() {
                        price_data.insert("amount".into(), money::minor_number(minor, exp));
                        if let Some(b) = c.get("block_size").filter(|b| !b.is_null()) {
                            price_data.insert("blockSize".into(), b.clone());
                        }
                    } else {
                        price_data.insert("currency".into(), json!(currency));
                    }
                    let tiers: Vec<Value> = c["tiers"]
                        .as_array()
                        .map(|ts| {
                            ts.iter()
                                .map(|t| {
                                    json!({
                                        "flatAmount": money::minor_number(t["flat_minor"].as_i64().unwrap_or(0), exp),
                                        "unitAmount": money::decimal_number(&money::micro_minor_to_decimal(t["unit_micro"].as_i64().unwrap_or(0), exp)),
                                        "upTo": if t["up_to"].is_null() { json!("inf") } else { t["up_to"].clone() },
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "chargePeriod": c["charge_period"],
                        "priceData": price_data,
                        "tiers": tiers,
                        "advanced": crate::casing::camelize(c.get("advanced").cloned().unwrap_or_else(|| json!({}))),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "feature": group["feature"],
        "priceModel": group["price_model"],
        "reset": group["reset"],
        "resetTime": group["reset_time"],
        "hasUnlimitedUsage": group["has_unlimited_usage"],
        "paymentType": group["payment_type"],
        "rollover": crate::casing::camelize(group.get("rollover").cloned().filter(|r| !r.is_null()).unwrap_or_else(|| json!({}))),
        "usageAlerts": crate::casing::camelize(group.get("usage_alerts").cloned().filter(|r| !r.is_null()).unwrap_or_else(|| json!({}))),
        "charges": charges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter_ref(key: &str) -> Option<FeatureRef> {
        match key {
            "api-calls" => Some(FeatureRef { id: uuid::Uuid::nil(), feature_type: FeatureType::Meter }),
            "sso" => Some(FeatureRef { id: uuid::Uuid::max(), feature_type: FeatureType::Boolean }),
            _ => None,
        }
    }

    fn price(v: Value) -> Result<Value, FieldErrors> {
        let mut e = FieldErrors::new();
        let out = parse_price(&crate::casing::underscoreize(v), "prices[0]: ", &meter_ref, &mut e);
        e.into_result().map(|_| out.unwrap())
    }

    #[test]
    fn prices_are_stored_in_minor_units_and_rendered_back() {
        let wire = json!({
            "priceType": "PAID", "currency": "usd", "freeTrial": true, "trialPeriod": 14, "taxBehavior": "EXCLUSIVE",
            "chargeCatalogPrice": [
                {"feature": null, "priceModel": "FLAT", "charges": [
                    {"chargePeriod": "MONTHLY", "priceData": {"amount": 29.99}},
                    {"chargePeriod": "YEARLY", "priceData": {"amount": 299}}]},
                {"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "charges": [
                    {"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"}, "tiers": [
                        {"flatAmount": 0, "unitAmount": 0, "upTo": 1000},
                        {"flatAmount": 5, "unitAmount": 0.001, "upTo": "inf"}]}]}
            ]
        });
        let stored = price(wire).unwrap();
        assert_eq!(stored["currency"], "USD");
        assert_eq!(stored["charge_catalog_price"][0]["charges"][0]["amount_minor"], 2999);
        assert_eq!(stored["charge_catalog_price"][0]["charges"][1]["amount_minor"], 29900);
        assert_eq!(stored["charge_catalog_price"][1]["charges"][0]["tiers"][1]["unit_micro"], 100_000);
        assert_eq!(stored["charge_catalog_price"][1]["feature"], uuid::Uuid::nil().to_string());
        let back = price_to_wire(&stored);
        assert_eq!(back["chargeCatalogPrice"][0]["charges"][0]["priceData"]["amount"], json!(29.99));
        assert_eq!(back["chargeCatalogPrice"][0]["charges"][1]["priceData"]["amount"], json!(299.0));
        assert_eq!(back["chargeCatalogPrice"][1]["charges"][0]["tiers"][1]["unitAmount"], json!(0.001));
        assert_eq!(back["chargeCatalogPrice"][1]["charges"][0]["tiers"][1]["upTo"], "inf");
        assert_eq!(back["trialPeriod"], 14);
    }

    #[test]
    fn price_rules() {
        let flat = |amount: Value| json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": amount}}]}]});
        assert!(price(flat(json!(10))).is_ok());
        assert!(price(flat(json!(10.001))).is_err(), "more decimals than USD has");
        assert!(price(flat(json!(-1))).is_err());
        let bad = [
            json!({"priceType": "PAID", "chargeCatalogPrice": []}),
            json!({"priceType": "NOPE"}),
            json!({"priceType": "PAID", "currency": "XYZ", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "FREE", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "freeTrial": true, "chargeCatalogPrice": [{"charges": [{"chargePeriod": "ONE_TIME", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 400, "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}, {"chargePeriod": "MONTHLY", "priceData": {"amount": 2}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "FORTNIGHTLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "sso", "priceModel": "VOLUME", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "nope", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": 100, "unitAmount": 1}, {"upTo": 50, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": 100, "unitAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "STAIRSTEP", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "flatAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "FLAT", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "YEARLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "ONE_TIME", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
            json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "PACKAGE", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
            json!({"priceType": "PAID", "currency": "JPY", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10.5}}]}]}),
        ];
        for b in bad {
            let e = price(b.clone()).unwrap_err();
            assert!(e.fields().contains_key("prices"), "{b}: {e}");
        }
        assert!(price(json!({"priceType": "FREE"})).is_ok());
        assert!(price(json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"priceModel": "FLAT", "charges": [{"chargePeriod": "QUARTERLY", "priceData": {"amount": 1}}]}]})).is_ok());
    }

    #[test]
    fn entitlement_details() {
        let mut e = FieldErrors::new();
        let d = parse_entitlement_details(
            FeatureType::Meter,
            &json!({"value": 10000, "reset": "EVERY_MONTH", "hard_limit": true,
            "rollover": {"enabled": true, "percentage": 50, "limit": 750},
            "usage_alerts": {"enabled": true, "thresholds": [90, 75], "threshold_type": "PERCENTAGE"}}),
            "",
            &mut e,
        )
        .unwrap();
        assert!(e.is_empty());
        assert_eq!((d.value.clone(), d.hard_limit, d.reset.as_deref()), (json!(10000), true, Some("EVERY_MONTH")));
        assert_eq!(d.usage_alerts.unwrap()["thresholds"], json!([75, 90]));
        let unlimited =
            parse_entitlement_details(FeatureType::Meter, &json!({"has_unlimited_usage": true}), "", &mut e).unwrap();
        assert_eq!((unlimited.value, unlimited.reset.as_deref()), (Value::Null, Some("EVERY_MONTH")));
        assert_eq!(parse_entitlement_details(FeatureType::Boolean, &json!({}), "", &mut e).unwrap().value, json!(true));
        assert!(e.is_empty());
        for (ty, bad) in [
            (FeatureType::Meter, json!({})),
            (FeatureType::Meter, json!({"value": -1})),
            (FeatureType::Meter, json!({"value": 5, "reset": "HOURLY"})),
            (FeatureType::Meter, json!({"value": 5, "rollover": {"enabled": true, "percentage": 150}})),
            (
                FeatureType::Meter,
                json!({"has_unlimited_usage": true, "usage_alerts": {"enabled": true, "thresholds": [50]}}),
            ),
            (
                FeatureType::Meter,
                json!({"value": 5, "usage_alerts": {"enabled": true, "thresholds": [0], "threshold_type": "PERCENTAGE"}}),
            ),
            (FeatureType::Boolean, json!({"value": 3})),
            (FeatureType::Customizable, json!({"value": "x"})),
            (FeatureType::Customizable, json!({})),
        ] {
            let mut e = FieldErrors::new();
            assert!(parse_entitlement_details(ty, &bad, "", &mut e).is_none(), "{bad}");
            assert!(e.fields().contains_key("details"), "{bad}");
        }
    }

    #[test]
    fn inheritance_resolution() {
        let f = |n: u128| uuid::Uuid::from_u128(n);
        let details = |v: i64| EntitlementDetails {
            value: json!(v),
            has_unlimited_usage: false,
            reset: None,
            reset_time: None,
            hard_limit: false,
            rollover: None,
            usage_alerts: None,
        };
        let starter = [
            PlanEntitlement { feature_id: f(1), details: details(1000) },
            PlanEntitlement { feature_id: f(2), details: details(1) },
        ];
        let starter = resolve_entitlements(&starter, &[]);
        assert!(starter.iter().all(|e| !e.inherited && !e.overridden));
        let pro_own = [
            PlanEntitlement { feature_id: f(1), details: details(100_000) },
            PlanEntitlement { feature_id: f(3), details: details(1) },
        ];
        let pro = resolve_entitlements(&pro_own, &starter);
        let summary: Vec<(u128, i64, bool, bool)> = pro
            .iter()
            .map(|e| (e.feature_id.as_u128(), e.details.value.as_i64().unwrap(), e.inherited, e.overridden))
            .collect();
        assert_eq!(summary, [(1, 100_000, false, true), (2, 1, true, false), (3, 1, false, false)]);
        // A grandchild inherits the child's override as an inherited value.
        let enterprise = resolve_entitlements(&[], &pro);
        assert!(enterprise.iter().all(|e| e.inherited));
        assert_eq!(enterprise[0].details.value, json!(100_000));
    }

    #[test]
    fn plans() {
        let p = NewPlan::parse(PlanInput {
            name: Some("Pro Monthly".into()),
            product: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.identifier.as_str(), p.fields.is_visible), ("pro-monthly", true));
        let e = NewPlan::parse(PlanInput {
            license: Some(json!({"enabled": true, "activation_limit_enabled": true})),
            links: Some(json!([{"name": "x", "url": "ftp://x"}])),
            ordering: Some(json!("first")),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["license", "links", "name", "ordering", "product"]);
        assert!(ChargePeriod::parse("QUARTERLY") == Some(ChargePeriod::ThreeMonths));
    }
}

/// Where a plan version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    /// The newest version, being edited; not offered yet.
    Draft,
    /// The version on offer (`isLatest`). At most one per plan.
    Published,
    /// Published once, replaced by a newer publication.
    Superseded,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Draft => "draft",
            PlanStatus::Published => "published",
            PlanStatus::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(PlanStatus::Draft),
            "published" => Some(PlanStatus::Published),
            "superseded" => Some(PlanStatus::Superseded),
            _ => None,
        }
    }
}

/// One feature granted by a plan version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntitlement {
    pub feature_id: uuid::Uuid,
    pub details: EntitlementDetails,
}

/// One version of a plan, with its prices and entitlements.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanVersion {
    pub id: uuid::Uuid,
    pub identifier: String,
    pub version: i64,
    pub product_id: uuid::Uuid,
    pub name: String,
    pub fields: PlanFields,
    /// Stored prices (see [`parse_price`]).
    pub prices: Vec<Value>,
    pub entitlements: Vec<PlanEntitlement>,
    pub status: PlanStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl PlanVersion {
    /// Currencies with a PAID price, upper case, sorted.
    pub fn paid_currencies(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .prices
            .iter()
            .filter(|p| p["price_type"] == "PAID")
            .filter_map(|p| p["currency"].as_str().map(str::to_string))
            .collect();
        c.sort();
        c.dedup();
        c
    }

    /// Why this draft cannot replace `published` (if given), or `Ok`.
    pub fn check_publishable(&self, published: Option<&PlanVersion>) -> Result<(), String> {
        if self.prices.is_empty() {
            return Err("Add a price before publishing the plan.".into());
        }
        if let Some(p) = published {
            let have = self.paid_currencies();
            let missing: Vec<String> = p.paid_currencies().into_iter().filter(|c| !have.contains(c)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "The new version has no PAID price in {}, which the published version offers.",
                    missing.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// A feature as a plan grants it once inheritance is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveEntitlement {
    pub feature_id: uuid::Uuid,
    pub details: EntitlementDetails,
    /// The value comes from an ancestor plan and follows it.
    pub inherited: bool,
    /// The plan sets its own value for a feature an ancestor also grants.
    pub overridden: bool,
}

/// A plan's own entitlements laid over its parent's resolved ones: the
/// parent's features first (in its order), each inherited unless the plan
/// has its own row for it, then the plan's own additions.
pub fn resolve_entitlements(own: &[PlanEntitlement], parent: &[EffectiveEntitlement]) -> Vec<EffectiveEntitlement> {
    let mut out: Vec<EffectiveEntitlement> = parent
        .iter()
        .map(|p| match own.iter().find(|o| o.feature_id == p.feature_id) {
            Some(o) => EffectiveEntitlement {
                feature_id: o.feature_id,
                details: o.details.clone(),
                inherited: false,
                overridden: true,
            },
            None => EffectiveEntitlement { inherited: true, overridden: false, ..p.clone() },
        })
        .collect();
    for o in own {
        if !parent.iter().any(|p| p.feature_id == o.feature_id) {
            out.push(EffectiveEntitlement {
                feature_id: o.feature_id,
                details: o.details.clone(),
                inherited: false,
                overridden: false,
            });
        }
    }
    out
}

/// Rejects two PAID prices in one currency (a bulk replace is all or nothing).
pub fn check_price_currencies(prices: &[Value]) -> Result<(), FieldErrors> {
    let mut seen = Vec::new();
    for p in prices.iter().filter(|p| p["price_type"] == "PAID") {
        let c = p["currency"].as_str().unwrap_or("");
        if seen.contains(&c) {
            return Err(FieldErrors::single("prices", format!("Only one PAID price per currency: {c} appears twice.")));
        }
        seen.push(c);
    }
    Ok(())
}
