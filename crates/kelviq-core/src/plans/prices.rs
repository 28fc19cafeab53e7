//! A plan's prices: validated into their stored form (integer minor units),
//! and rendered back in the API's shape.

use super::*;
use crate::catalog::FeatureType;
use crate::money::{self, currency_exponent};
use crate::validation::FieldErrors;
use serde_json::{json, Map, Value};

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
) -> Option<Price> {
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
    let local_prices = match get("local_prices") {
        Some(v) if price_type == "PAID" => match super::local::parse_local_prices(v, &stored_groups, features) {
            Ok(l) => l,
            Err(m) => {
                err(m);
                Vec::new()
            }
        },
        Some(_) => {
            err(format!("a {price_type} price has no local prices."));
            Vec::new()
        }
        None => Vec::new(),
    };
    let after = errors.fields().values().map(Vec::len).sum::<usize>();
    if after != before {
        return None;
    }
    let stored = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "price_type": price_type,
        "currency": currency.unwrap_or_else(|| "USD".into()),
        "free_trial": free_trial,
        "trial_period": trial_period,
        "enabled": flag("enabled").unwrap_or(true),
        "tax_behavior": tax_behavior,
        "charge_catalog_price": stored_groups,
        "local_prices": local_prices,
    });
    match serde_json::from_value(stored) {
        Ok(price) => Some(price),
        Err(e) => {
            errors.add("prices", format!("{at}cannot be stored: {e}"));
            None
        }
    }
}

pub(super) fn parse_charge_group(
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
    // A free trial's usage is billed only where the price says so.
    let bill_trial_usage = match get("bill_trial_usage") {
        None => false,
        Some(Value::Bool(b)) if !*b || payment == "PAY_AS_YOU_GO" => *b,
        Some(Value::Bool(_)) => return Err("billTrialUsage applies to PAY_AS_YOU_GO charges only".into()),
        Some(_) => return Err("billTrialUsage must be true or false".into()),
    };
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
            "bill_trial_usage": bill_trial_usage,
            "rollover": rollover,
            "usage_alerts": usage_alerts,
            "charges": stored,
        }),
        recurring,
    ))
}

pub(super) fn parse_charge(c: &Value, model: &str, exp: u32) -> Result<(ChargePeriod, Value), String> {
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
pub fn price_to_wire(price: &Price) -> Value {
    let stored = &serde_json::to_value(price).unwrap_or_default();
    let currency = stored["currency"].as_str().unwrap_or("USD").to_string();
    let exp = currency_exponent(&currency).unwrap_or(2);
    let groups: Vec<Value> = stored["charge_catalog_price"]
        .as_array()
        .map(|g| g.iter().map(|group| group_to_wire(group, &currency, exp)).collect())
        .unwrap_or_default();
    let mut wire = json!({
        "id": stored["id"],
        "priceType": stored["price_type"],
        "currency": currency,
        "freeTrial": stored["free_trial"],
        "trialPeriod": stored["trial_period"],
        "enabled": stored["enabled"],
        "taxBehavior": stored["tax_behavior"],
        "chargeCatalogPrice": groups,
    });
    if !price.local_prices.is_empty() {
        wire["localPrices"] = super::local::local_prices_to_wire(&price.local_prices);
    }
    wire
}

pub(super) fn group_to_wire(group: &Value, currency: &str, exp: u32) -> Value {
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
        "billTrialUsage": group.get("bill_trial_usage").and_then(Value::as_bool).unwrap_or(false),
        "rollover": crate::casing::camelize(group.get("rollover").cloned().filter(|r| !r.is_null()).unwrap_or_else(|| json!({}))),
        "usageAlerts": crate::casing::camelize(group.get("usage_alerts").cloned().filter(|r| !r.is_null()).unwrap_or_else(|| json!({}))),
        "charges": charges,
    })
}

/// Rejects two PAID prices in one currency (a bulk replace is all or nothing).
pub fn check_price_currencies(prices: &[Price]) -> Result<(), FieldErrors> {
    let mut seen = Vec::new();
    for p in prices.iter().filter(|p| p.is_paid()) {
        let c = p.currency.as_str();
        if seen.contains(&c) {
            return Err(FieldErrors::single("prices", format!("Only one PAID price per currency: {c} appears twice.")));
        }
        seen.push(c);
    }
    Ok(())
}
