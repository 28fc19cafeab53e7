//! Discount codes and promotions in a catalog file: codes keyed by their
//! code, promotions by their name, products by identifier. A promotion's
//! coupon codes are kept, so the same file gives every environment the
//! same codes. As for the rest of the catalog, apply changes only what
//! differs and deletes what the file does not have.

use super::{fail, str_field};
use crate::discounts::{self, AmountIn, DiscountFields};
use crate::promotions::{self, PromotionFields, WidgetFields};
use crate::wire::discounts::DiscountOut;
use crate::wire::promotions::PromotionOut;
use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use kelviq_core::casing::underscoreize;
use kelviq_core::discounts::{Discount, DiscountValue};
use kelviq_core::promotions::Promotion;
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

use super::ApplyMode;

/// What the file asks for, checked.
pub(super) struct Offers {
    discounts: Vec<Value>,
    promotions: Vec<Value>,
}

fn idents_to_ids(v: &Value, key: &str, ids: &HashMap<String, uuid::Uuid>) -> Vec<String> {
    let list = v.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .filter_map(Value::as_str)
        .map(|i| ids.get(i).map_or_else(|| i.to_string(), ToString::to_string))
        .collect()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
}

fn amount(v: &Value) -> AmountIn {
    AmountIn { currency: str_field(v, "currency"), amount: v.get("amount").cloned() }
}

/// Every field of a code, as the file has it (absent: the default).
fn discount_fields(v: &Value, product_ids: &HashMap<String, uuid::Uuid>) -> DiscountFields {
    let int = |k: &str| v.get(k).and_then(Value::as_i64);
    DiscountFields {
        code: str_field(v, "code"),
        name: Some(str_field(v, "name").or_else(|| str_field(v, "code")).unwrap_or_default()),
        discount_type: str_field(v, "discount_type"),
        percentage: v.get("percentage").cloned(),
        amounts: v.get("amounts").and_then(Value::as_array).map(|a| a.iter().map(amount).collect()),
        duration: Some(str_field(v, "duration").unwrap_or_else(|| "ONCE".into())),
        duration_in_cycles: Some(int("duration_in_cycles")),
        max_redemptions: Some(int("max_redemptions")),
        max_redemptions_per_customer: Some(int("max_redemptions_per_customer")),
        starts_at: Some(str_field(v, "starts_at")),
        expires_at: Some(str_field(v, "expires_at")),
        products: Some(idents_to_ids(v, "products", product_ids)),
        plans: Some(strings(v, "plans")),
        first_purchase_only: Some(v.get("first_purchase_only").and_then(Value::as_bool).unwrap_or(false)),
        minimum_amount: Some(v.get("minimum_amount").map(amount)),
    }
}

fn promotion_fields(v: &Value, product_ids: &HashMap<String, uuid::Uuid>) -> anyhow::Result<PromotionFields> {
    let pairs = |k: &str, key: &str| -> Vec<(Option<String>, Option<Value>)> {
        let list = v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
        list.iter().map(|e| (str_field(e, key), e.get("percentage").cloned())).collect()
    };
    let widgets: Option<Vec<WidgetFields>> = match v.get("widgets") {
        Some(w) => Some(serde_json::from_value(w.clone()).map_err(|e| anyhow!("widgets: {e}"))?),
        None => Some(Vec::new()),
    };
    let flag = |k: &str| Some(v.get(k).and_then(Value::as_bool).unwrap_or(true));
    Ok(PromotionFields {
        name: str_field(v, "name"),
        products: Some(idents_to_ids(v, "products", product_ids)),
        plans: Some(strings(v, "plans")),
        group_percentages: Some(pairs("group_percentages", "group")),
        country_overrides: Some(pairs("country_overrides", "country_code")),
        widgets,
        checks: [flag("vpn"), flag("tor"), flag("proxy"), flag("relay"), flag("crawler")],
        strict_country: flag("strict_country"),
    })
}

fn codes_of(v: &Value) -> BTreeMap<String, String> {
    let list = v.get("coupon_codes").and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .filter_map(|c| Some((str_field(c, "country_code")?.to_ascii_uppercase(), str_field(c, "code")?)))
        .collect()
}

/// Checks the file's codes and promotions before anything is written:
/// their fields, and that what they name is in the file.
pub(super) fn check(
    discounts: &[Value],
    promotions: &[Value],
    products: &[String],
    plans: &[String],
) -> anyhow::Result<Offers> {
    let mut codes = Vec::new();
    for d in discounts {
        let code = str_field(d, "code").ok_or_else(|| anyhow!("a discount has no code"))?.to_ascii_uppercase();
        if codes.contains(&code) {
            bail!("discount {code} appears twice");
        }
        let mut scratch = Discount::new("", DiscountValue::Percentage { percentage: 0 }, Utc::now());
        let mut errors = FieldErrors::new();
        let fields = DiscountFields { products: None, plans: None, ..discount_fields(d, &HashMap::new()) };
        discounts::check_fields(fields, &mut scratch, &mut errors);
        errors.into_result().map_err(|e| fail(&format!("discount {code}"), e))?;
        for (key, known) in [("products", products), ("plans", plans)] {
            if let Some(missing) = strings(d, key).into_iter().find(|i| !known.contains(i)) {
                bail!("discount {code}: {key} names {missing:?}, which the file does not have");
            }
        }
        codes.push(code);
    }
    let mut names = Vec::new();
    for p in promotions {
        let name = str_field(p, "name").ok_or_else(|| anyhow!("a promotion has no name"))?;
        if names.contains(&name) {
            bail!("promotion {name:?} appears twice (promotions are matched by name)");
        }
        promotion_fields(p, &HashMap::new()).map_err(|e| anyhow!("promotion {name:?}: {e}"))?;
        for (key, known) in [("products", products), ("plans", plans)] {
            if let Some(missing) = strings(p, key).into_iter().find(|i| !known.contains(i)) {
                bail!("promotion {name:?}: {key} names {missing:?}, which the file does not have");
            }
        }
        names.push(name);
    }
    Ok(Offers { discounts: discounts.to_vec(), promotions: promotions.to_vec() })
}

async fn all_discounts(store: &Store, t: &Tenant) -> anyhow::Result<Vec<Discount>> {
    Ok(store.list_discounts(t, 100_000, 0).await?.1)
}

async fn all_promotions(store: &Store, t: &Tenant) -> anyhow::Result<Vec<Promotion>> {
    Ok(store.list_promotions(t, 100_000, 0).await?.1)
}

/// The environment's codes and promotions as file entries.
pub(super) async fn export(
    store: &Store,
    tenant: &Tenant,
    product_idents: &HashMap<uuid::Uuid, String>,
) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let ident = |id: &str| {
        uuid::Uuid::parse_str(id).ok().and_then(|u| product_idents.get(&u).cloned()).unwrap_or_else(|| id.to_string())
    };
    let mut discounts = Vec::new();
    for d in all_discounts(store, tenant).await? {
        let mut v = underscoreize(serde_json::to_value(DiscountOut::of(&d, d.modified_at))?);
        let m = v.as_object_mut().expect("an object");
        for k in ["id", "times_redeemed", "status", "created_on", "modified_on", "countries", "promotion_id"] {
            m.remove(k);
        }
        let products: Vec<String> = d.products.iter().map(|p| ident(&p.to_string())).collect();
        m.insert("products".into(), json!(products));
        discounts.push(v);
    }
    discounts.sort_by_key(|d| d["code"].as_str().unwrap_or_default().to_string());
    let mut promotions = Vec::new();
    for p in all_promotions(store, tenant).await? {
        let mut v = underscoreize(serde_json::to_value(PromotionOut::from(&p))?);
        let m = v.as_object_mut().expect("an object");
        for k in ["id", "created_on", "modified_on"] {
            m.remove(k);
        }
        let products: Vec<String> = p.products.iter().map(|id| ident(&id.to_string())).collect();
        m.insert("products".into(), json!(products));
        promotions.push(v);
    }
    promotions.sort_by_key(|p| p["name"].as_str().unwrap_or_default().to_string());
    Ok((discounts, promotions))
}

/// A code's terms, for comparing what is with what the file asks.
fn terms(d: &Discount) -> Discount {
    Discount {
        id: uuid::Uuid::nil(),
        times_redeemed: 0,
        created_at: DateTime::UNIX_EPOCH,
        modified_at: DateTime::UNIX_EPOCH,
        ..d.clone()
    }
}

/// What a promotion targets, and its banners, for comparing.
fn targeting(p: &Promotion) -> Value {
    json!({"products": p.products, "plans": p.plans, "groups": p.group_percentages, "overrides": p.country_overrides,
        "checks": p.checks, "strict": p.strict_country})
}

/// Makes the environment's codes and promotions match the file.
pub(super) async fn apply(
    store: &Store,
    tenant: &Tenant,
    offers: Offers,
    mode: ApplyMode,
    now: DateTime<Utc>,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dry_run = mode == ApplyMode::DryRun;
    let product_ids: HashMap<String, uuid::Uuid> =
        super::all_products(store, tenant).await?.into_iter().map(|p| (p.identifier, p.id)).collect();
    let existing = all_discounts(store, tenant).await?;
    let mut wanted = Vec::new();
    for v in &offers.discounts {
        let code = str_field(v, "code").unwrap_or_default().to_ascii_uppercase();
        let fields = discount_fields(v, &product_ids);
        match existing.iter().find(|d| d.code == code) {
            Some(d) => {
                let mut candidate = d.clone();
                let mut errors = FieldErrors::new();
                discounts::check_fields(discount_fields(v, &product_ids), &mut candidate, &mut errors);
                if terms(&candidate) != terms(d) {
                    changes.push(format!("update discount {code}"));
                    if !dry_run {
                        discounts::update_in(store, tenant, d.clone(), fields, now)
                            .await
                            .map_err(|e| anyhow!("discount {code}: {e}"))?;
                    }
                }
            }
            None => {
                changes.push(format!("create discount {code}"));
                if !dry_run {
                    discounts::create_in(store, tenant, fields, now)
                        .await
                        .map_err(|e| anyhow!("discount {code}: {e}"))?;
                }
            }
        }
        wanted.push(code);
    }
    for d in existing.iter().filter(|d| !wanted.contains(&d.code)) {
        changes.push(format!("delete discount {}", d.code));
        if !dry_run {
            store.delete_discount(tenant, d.id, now).await?;
        }
    }

    let existing = all_promotions(store, tenant).await?;
    let mut wanted = Vec::new();
    for v in &offers.promotions {
        let name = str_field(v, "name").unwrap_or_default();
        let fields = promotion_fields(v, &product_ids)?;
        let codes = codes_of(v);
        let groups = promotions::groups_in(store, tenant).await.map_err(|e| anyhow!("{e}"))?;
        let desired = match promotions::fields::check_new(store, tenant, fields, &groups, now).await {
            Ok(p) => Some(p),
            Err(_) if dry_run => None,
            Err(e) => bail!("promotion {name:?}: {e}"),
        };
        let found = existing.iter().find(|p| p.name == name);
        let same_codes = |p: &Promotion| {
            codes.is_empty() || codes.iter().all(|(c, code)| p.countries.get(c).is_some_and(|o| o.code == *code))
        };
        match (found, desired) {
            (Some(p), Some(d)) if targeting(p) == targeting(&d) && same_codes(p) => {
                if p.banners != d.banners {
                    changes.push(format!("update promotion {name:?}"));
                    if !dry_run {
                        let changed = Promotion { banners: d.banners, modified_at: now, ..p.clone() };
                        store.update_promotion(tenant, &changed).await?;
                    }
                }
            }
            (found, _) => {
                if let Some(p) = found {
                    changes.push(format!("replace promotion {name:?} (what it targets changed)"));
                    if !dry_run {
                        store.delete_promotion(tenant, p.id, now).await?;
                    }
                } else {
                    changes.push(format!("create promotion {name:?}"));
                }
                if !dry_run {
                    let fields = promotion_fields(v, &product_ids)?;
                    promotions::create_in(store, tenant, fields, &codes, now)
                        .await
                        .map_err(|e| anyhow!("promotion {name:?}: {e}"))?;
                }
            }
        }
        wanted.push(name);
    }
    for p in existing.iter().filter(|p| !wanted.contains(&p.name)) {
        changes.push(format!("delete promotion {:?}", p.name));
        if !dry_run {
            store.delete_promotion(tenant, p.id, now).await?;
        }
    }
    Ok(())
}
