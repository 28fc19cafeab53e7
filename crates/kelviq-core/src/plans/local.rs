//! Location-based prices: a price may carry fixed prices for buyers in some
//! countries (or a country group), in their currency, for each of its
//! charges; everything else (models, block sizes, tier bounds, trials, tax
//! behaviour) is the price's own.

use super::prices::{group_to_wire, parse_charge, FeatureRef};
use super::*;
use crate::money::currency_exponent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A price's fixed prices for buyers in some countries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalPrice {
    /// ISO 3166-1 codes (they win over `group`).
    #[serde(default)]
    pub countries: Vec<String>,
    /// A country group (`TIER_1` … `TIER_5`, as the environment defines them).
    #[serde(default)]
    pub group: Option<String>,
    pub currency: String,
    /// Only a buyer billed in the country whose price was shown pays it
    /// (else the checkout falls back to the price's own).
    #[serde(default = "strict_default")]
    pub strict_country: bool,
    /// One for each charge of the price (feature and charge period).
    pub charges: Vec<LocalCharge>,
}

fn strict_default() -> bool {
    true
}

/// A charge's local amount or tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalCharge {
    /// The feature's id (none: the plan's own charge).
    #[serde(default)]
    pub feature: Option<String>,
    #[serde(flatten)]
    pub charge: Charge,
}

/// The groups a country belongs to, by name.
pub type GroupOf<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Group names a local price may name.
const GROUPS: &[&str] = &["TIER_1", "TIER_2", "TIER_3", "TIER_4", "TIER_5"];

/// Reads a price's `localPrices` against its stored charge groups.
pub(super) fn parse_local_prices(
    value: &Value,
    groups: &[Value],
    features: &dyn Fn(&str) -> Option<FeatureRef>,
) -> Result<Vec<Value>, String> {
    let list = value.as_array().ok_or("localPrices must be a list")?;
    if list.len() > 250 {
        return Err("localPrices: at most 250".into());
    }
    let mut out = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for (i, l) in list.iter().enumerate() {
        let at = |m: String| format!("localPrices[{i}]: {m}");
        let o = l.as_object().ok_or_else(|| at("must be an object".into()))?;
        let get = |k: &str| o.get(k).filter(|v| !v.is_null());
        let mut countries = Vec::new();
        for c in get("countries").and_then(Value::as_array).cloned().unwrap_or_default() {
            let code = c.as_str().map(str::to_ascii_uppercase).filter(|c| crate::geo::country_name(c).is_some());
            let code = code.ok_or_else(|| at(format!("{c} is not an ISO 3166-1 alpha-2 country code")))?;
            countries.push(code);
        }
        let group = get("group").and_then(Value::as_str).map(str::to_string);
        if let Some(g) = group.as_deref().filter(|g| !GROUPS.contains(g)) {
            return Err(at(format!("group \"{g}\" is not one of {}", GROUPS.join(", "))));
        }
        if countries.is_empty() == group.is_none() {
            return Err(at("give countries or a group (one of the two)".into()));
        }
        for key in countries.iter().cloned().chain(group.clone()) {
            if taken.contains(&key) {
                return Err(at(format!("{key} has two local prices")));
            }
            taken.push(key);
        }
        let currency = get("currency").and_then(Value::as_str).map(str::to_ascii_uppercase).unwrap_or_default();
        let exp =
            currency_exponent(&currency).ok_or_else(|| at(format!("currency \"{currency}\" is not supported")))?;
        let given = get("charges").and_then(Value::as_array).cloned().unwrap_or_default();
        for c in &given {
            if let Some(key) = c.get("feature").and_then(Value::as_str).filter(|k| features(k).is_none()) {
                return Err(at(format!("feature \"{key}\" does not exist")));
            }
        }
        let mut charges = Vec::new();
        for g in groups {
            let feature = g["feature"].as_str();
            let model = g["price_model"].as_str().unwrap_or("FLAT");
            for main in g["charges"].as_array().into_iter().flatten() {
                let period = main["charge_period"].as_str().unwrap_or("");
                let local = given.iter().find(|c| {
                    let f = c.get("feature").and_then(Value::as_str).and_then(features).map(|f| f.id.to_string());
                    f.as_deref() == feature && c.get("charge_period").and_then(Value::as_str) == Some(period)
                });
                let what =
                    format!("{} {period}", feature.map_or("the plan's charge".into(), |f| format!("feature {f}")));
                let mut local = local.cloned().ok_or_else(|| at(format!("no local price for {what}")))?;
                if let (Some(b), Some(obj)) = (main.get("block_size"), local.get_mut("price_data")) {
                    obj["block_size"] = b.clone();
                }
                let (_, mut stored) = parse_charge(&local, model, exp).map_err(|m| at(format!("{what}: {m}")))?;
                let bounds = |c: &Value| -> Vec<Value> {
                    c["tiers"].as_array().map(|t| t.iter().map(|x| x["up_to"].clone()).collect()).unwrap_or_default()
                };
                if bounds(&stored) != bounds(main) {
                    return Err(at(format!("{what}: the tiers must end where the price's tiers end")));
                }
                if let Some(adv) = main.get("advanced") {
                    stored["advanced"] = adv.clone();
                }
                stored["feature"] = json!(feature);
                charges.push(stored);
            }
        }
        if given.len() != charges.len() {
            return Err(at("a charge the price does not have".into()));
        }
        let strict = get("strict_country").and_then(Value::as_bool).unwrap_or(true);
        out.push(json!({"countries": countries, "group": group, "currency": currency,
            "strict_country": strict, "charges": charges}));
    }
    Ok(out)
}

/// The local prices in the API's shape.
pub(super) fn local_prices_to_wire(locals: &[LocalPrice]) -> Value {
    let list: Vec<Value> = locals
        .iter()
        .map(|l| {
            let exp = currency_exponent(&l.currency).unwrap_or(2);
            let charges: Vec<Value> = l
                .charges
                .iter()
                .map(|c| {
                    let group = json!({"charges": [serde_json::to_value(&c.charge).unwrap_or_default()]});
                    let mut wire = group_to_wire(&group, &l.currency, exp)["charges"][0].clone();
                    wire["feature"] = json!(c.feature);
                    wire
                })
                .collect();
            json!({"countries": l.countries, "group": l.group, "currency": l.currency,
                "strictCountry": l.strict_country, "charges": charges})
        })
        .collect();
    Value::Array(list)
}

impl Price {
    /// The local price for a buyer in `country`: by the country, else by its group.
    pub fn local_for(&self, country: &str, group_of: GroupOf<'_>) -> Option<&LocalPrice> {
        let country = country.to_ascii_uppercase();
        self.local_prices.iter().find(|l| l.countries.contains(&country)).or_else(|| {
            let group = group_of(&country)?;
            self.local_prices.iter().find(|l| l.group.as_deref() == Some(group.as_str()))
        })
    }

    /// This price as a buyer in `country` pays it (its local prices in place).
    pub fn localized(&self, local: &LocalPrice) -> Price {
        let mut p = self.clone();
        p.currency = local.currency.clone();
        p.local_prices = Vec::new();
        for g in p.charge_catalog_price.iter_mut() {
            for c in g.charges.iter_mut() {
                if let Some(l) =
                    local.charges.iter().find(|l| l.feature == g.feature && l.charge.charge_period == c.charge_period)
                {
                    (c.amount_minor, c.tiers) = (l.charge.amount_minor, l.charge.tiers.clone());
                }
            }
        }
        p
    }
}

/// What a plan costs a buyer in a country.
#[derive(Debug, Clone)]
pub struct Localized {
    pub plan: PlanVersion,
    /// Whether a local price applies, and whether it holds only for buyers billed there.
    pub local: Option<bool>,
}

impl PlanVersion {
    /// The plan as a buyer in `country` sees it: each price with a local
    /// price for the country has it in its place, first (so that it is the
    /// one quoted when no currency is asked for).
    pub fn localized(&self, country: Option<&str>, group_of: GroupOf<'_>) -> Localized {
        let Some(country) = country else { return Localized { plan: self.clone(), local: None } };
        let mut plan = self.clone();
        let mut local = None;
        let mut first = Vec::new();
        for p in &self.prices {
            if let Some(l) = p.enabled.then(|| p.local_for(country, group_of)).flatten() {
                first.push(p.localized(l));
                local = Some(local.unwrap_or(false) || l.strict_country);
            }
        }
        if !first.is_empty() {
            plan.prices.retain(|p| !first.iter().any(|f| f.currency == p.currency));
            first.append(&mut plan.prices);
            plan.prices = first;
        }
        Localized { plan, local }
    }
}
