//! What a plan grants for one feature: entitlement details, rollover and
//! usage alerts, validated.

use super::*;
use crate::catalog::FeatureType;
use crate::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// How a plan's entitlement reads to a buyer ("SSO", "1,000 calls a month",
/// "Unlimited seats", "Projects: 10"); `None` for a feature the plan turns
/// off.
pub fn entitlement_phrase(feature: &crate::catalog::Feature, details: &EntitlementDetails) -> Option<String> {
    use crate::catalog::FeatureType;
    let units = |n: i64| {
        let u = feature.feature_details.get("units");
        let key = if n == 1 { "singular" } else { "plural" };
        u.and_then(|u| u.get(key)).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| feature.name.clone())
    };
    let every = match details.reset.as_deref() {
        Some("EVERY_DAY") => " a day",
        Some("EVERY_WEEK") => " a week",
        Some("EVERY_28_DAYS") => " every 28 days",
        Some("EVERY_MONTH") => " a month",
        Some("EVERY_QUARTER") => " a quarter",
        Some("EVERY_YEAR") => " a year",
        _ => "",
    };
    match feature.feature_type {
        FeatureType::Boolean => (details.value == Value::Bool(true)).then(|| feature.name.clone()),
        FeatureType::Meter if details.has_unlimited_usage || details.value.is_null() => {
            Some(format!("Unlimited {}", units(2)))
        }
        FeatureType::Meter => {
            let n = details.value.as_i64()?;
            Some(format!("{} {}{every}", grouped(n), units(n)))
        }
        FeatureType::Customizable if details.has_unlimited_usage => Some(format!("{}: unlimited", feature.name)),
        FeatureType::Customizable => Some(format!("{}: {}", feature.name, grouped(details.value.as_i64()?))),
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod phrase_tests {
    use super::*;
    use crate::catalog::{Feature, FeatureType};
    use serde_json::json;

    fn feature(ty: FeatureType, units: Value) -> Feature {
        let t = chrono::DateTime::UNIX_EPOCH;
        Feature {
            id: uuid::Uuid::nil(),
            identifier: "f".into(),
            name: "API calls".into(),
            description: String::new(),
            feature_type: ty,
            feature_details: json!({ "units": units }),
            meter: None,
            metadata: json!({}),
            created_at: t,
            modified_at: t,
            archived_at: None,
        }
    }

    fn details(value: Value, unlimited: bool, reset: Option<&str>) -> EntitlementDetails {
        EntitlementDetails {
            value,
            has_unlimited_usage: unlimited,
            reset: reset.map(str::to_string),
            reset_time: None,
            hard_limit: true,
            rollover: None,
            usage_alerts: None,
        }
    }

    #[test]
    fn phrases() {
        let calls = feature(FeatureType::Meter, json!({"singular": "call", "plural": "calls"}));
        let p = |d| entitlement_phrase(&calls, &d);
        assert_eq!(p(details(json!(10000), false, Some("EVERY_MONTH"))).as_deref(), Some("10,000 calls a month"));
        assert_eq!(p(details(json!(1), false, Some("NEVER"))).as_deref(), Some("1 call"));
        assert_eq!(p(details(json!(null), true, None)).as_deref(), Some("Unlimited calls"));
        let sso = feature(FeatureType::Boolean, json!(null));
        assert_eq!(entitlement_phrase(&sso, &details(json!(true), false, None)).as_deref(), Some("API calls"));
        assert_eq!(entitlement_phrase(&sso, &details(json!(false), false, None)), None);
        let projects = feature(FeatureType::Customizable, json!(null));
        assert_eq!(
            entitlement_phrase(&projects, &details(json!(1234567), false, None)).as_deref(),
            Some("API calls: 1,234,567")
        );
        assert_eq!(grouped(-1000), "-1,000");
        assert_eq!(grouped(999), "999");
    }
}
