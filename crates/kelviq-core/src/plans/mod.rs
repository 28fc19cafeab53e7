//! Plans: versioned offers of a product, with prices per currency and
//! per-feature entitlements. Validation of everything a plan version holds.

mod entitlements;
mod local;
mod price;
mod prices;
#[cfg(test)]
mod tests;

pub use entitlements::*;
pub use local::*;
pub use price::*;
pub use prices::*;

use crate::catalog::identifier_or_slug;
use crate::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

pub(super) fn check_name(name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() {
        errors.add("name", "This field may not be blank.");
    } else if name.chars().count() > 255 {
        errors.add("name", "Ensure this field has no more than 255 characters.");
    }
}

pub(super) fn parse_metadata(m: Option<Value>, errors: &mut FieldErrors) -> Option<Value> {
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

/// `{enabled, activationLimit 1–10,000, activationLimitEnabled, durationUnit DAY|MONTH|YEAR, durationValue ≥ 1,
/// hasExpiry}` and ours: `reuseInstanceByFingerprint`, `heartbeatTtlSeconds` (≥ 60 or null), `graceDays` (0–365).
pub(super) fn parse_license(v: Value, errors: &mut FieldErrors) -> Option<Value> {
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
    if activation_limit.is_some_and(|n| n > i64::from(crate::licenses::MAX_ACTIVATION_LIMIT)) {
        errors.add("license", format!("activationLimit must be at most {}.", crate::licenses::MAX_ACTIVATION_LIMIT));
    }
    let reuse = flag("reuse_instance_by_fingerprint", errors);
    let heartbeat = positive("heartbeat_ttl_seconds", errors);
    if heartbeat.is_some_and(|t| t < i64::from(crate::licenses::MIN_HEARTBEAT_TTL_SECONDS) || t > 31_536_000) {
        errors.add("license", "heartbeatTtlSeconds must be between 60 and 31536000 (a year), or null.");
    }
    let grace_days = match o.get("grace_days") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().filter(|n| (0..=365).contains(n)) {
            Some(n) => n,
            None => {
                errors.add("license", "graceDays must be a whole number from 0 to 365.");
                0
            }
        },
    };
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
        "reuse_instance_by_fingerprint": reuse,
        "heartbeat_ttl_seconds": heartbeat,
        "grace_days": grace_days,
    }))
}

pub(super) fn parse_links(v: Value, errors: &mut FieldErrors) -> Vec<Value> {
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

pub(super) fn parse_ordering(v: Value, errors: &mut FieldErrors) -> Option<i64> {
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
    pub prices: Vec<Price>,
    pub entitlements: Vec<PlanEntitlement>,
    pub status: PlanStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl PlanVersion {
    /// Whether the plan sells a feature per unit (seats) for `period` in
    /// `currency`: a quantity the buyer chooses, billed in advance.
    pub fn sells_per_unit(&self, period: ChargePeriod, currency: &str) -> bool {
        self.prices.iter().filter(|p| p.enabled && p.is_paid() && p.currency.eq_ignore_ascii_case(currency)).any(|p| {
            p.charge_catalog_price.iter().any(|g| {
                g.feature.is_some()
                    && g.payment_type.as_deref() != Some("PAY_AS_YOU_GO")
                    && g.charge_for(period.as_str()).is_some()
            })
        })
    }

    /// Currencies with a PAID price, upper case, sorted.
    pub fn paid_currencies(&self) -> Vec<String> {
        let mut c: Vec<String> = self.prices.iter().filter(|p| p.is_paid()).map(|p| p.currency.clone()).collect();
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
