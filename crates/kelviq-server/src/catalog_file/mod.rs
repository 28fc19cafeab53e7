//! Catalog as code: `kelviq catalog export` writes an environment's catalog
//! (products, features, plans with prices and entitlements, discount codes
//! and promotions, see [`offers`]) as TOML keyed by identifiers; `kelviq catalog apply` makes an environment match such a file.
//!
//! Apply validates the whole file before it writes anything, then changes
//! only what differs, so applying the same file twice changes nothing. Like
//! Terraform, what the environment has and the file does not is archived.
//! Plans are exported at their published version (or their draft when never
//! published); apply publishes a plan the file marks `published`.

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use kelviq_core::casing::underscoreize;
use kelviq_core::catalog::{Feature, FeatureChanges, NewFeature, NewProduct, Product, ProductChanges, ProductSettings};
use kelviq_core::plans::{
    check_price_currencies, parse_entitlement_details, parse_price, price_to_wire, FeatureRef, NewPlan,
    PlanEntitlement, PlanFields, PlanInput, PlanStatus, PlanVersion, Price,
};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::Store;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

mod offers;

/// Drops nulls, empty tables and empty lists: TOML has no null, and absent means default.
fn tidy(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: Map<String, Value> = m.into_iter().filter_map(|(k, v)| tidy(v).map(|v| (k, v))).collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(tidy).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other => Some(other),
    }
}

async fn all_products(store: &Store, t: &Tenant) -> anyhow::Result<Vec<Product>> {
    let n = store.count_products(t, None).await?;
    Ok(store.list_products(t, None, n.max(1), 0).await?)
}

async fn all_features(store: &Store, t: &Tenant) -> anyhow::Result<Vec<Feature>> {
    let n = store.count_features(t, None).await?;
    Ok(store.list_features(t, None, n.max(1), 0).await?)
}

/// Each plan at the version a file describes: published, else its draft.
async fn all_plans(store: &Store, t: &Tenant) -> anyhow::Result<Vec<PlanVersion>> {
    let n = store.count_plans(t).await?;
    let mut out = Vec::new();
    for p in store.list_plans(t, n.max(1), 0).await? {
        out.push(store.inheritable_plan(t, &p.identifier).await?.unwrap_or(p));
    }
    Ok(out)
}

/// Parents before children, then by identifier.
fn parents_first<T>(mut items: Vec<T>, key: impl Fn(&T) -> (String, Option<String>)) -> Vec<T> {
    items.sort_by_key(|i| key(i).0);
    let mut out: Vec<T> = Vec::new();
    let mut placed: Vec<String> = Vec::new();
    while !items.is_empty() {
        let ready = items.iter().position(|i| match key(i).1 {
            Some(p) => placed.contains(&p) || !items.iter().any(|o| key(o).0 == p),
            None => true,
        });
        let i = items.remove(ready.unwrap_or(0));
        placed.push(key(&i).0);
        out.push(i);
    }
    out
}

fn price_for_file(stored: &Price, idents: &HashMap<String, String>) -> Value {
    let mut v = underscoreize(price_to_wire(stored));
    if let Some(m) = v.as_object_mut() {
        m.remove("id");
    }
    for group in v["charge_catalog_price"].as_array_mut().into_iter().flatten() {
        if let Some(id) = group["feature"].as_str() {
            group["feature"] = json!(idents.get(id).cloned().unwrap_or_else(|| id.to_string()));
        }
    }
    for local in v["local_prices"].as_array_mut().into_iter().flatten() {
        for charge in local["charges"].as_array_mut().into_iter().flatten() {
            if let Some(id) = charge["feature"].as_str() {
                charge["feature"] = json!(idents.get(id).cloned().unwrap_or_else(|| id.to_string()));
            }
        }
    }
    v
}

/// The tenant's catalog as a TOML document.
pub async fn export(store: &Store, tenant: &Tenant) -> anyhow::Result<String> {
    let products = all_products(store, tenant).await?;
    let features = all_features(store, tenant).await?;
    let product_idents: HashMap<uuid::Uuid, String> = products.iter().map(|p| (p.id, p.identifier.clone())).collect();
    let feature_idents: HashMap<String, String> =
        features.iter().map(|f| (f.id.to_string(), f.identifier.clone())).collect();
    let mut products_out = Vec::new();
    let mut sorted = products.clone();
    sorted.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    for p in sorted {
        products_out.push(json!({
            "identifier": p.identifier, "name": p.name, "description": p.description, "tax_code": p.tax_code,
            "settings": {"vpn": p.settings.vpn, "tor": p.settings.tor, "proxy": p.settings.proxy,
                         "currency": p.settings.currency, "product_url": p.settings.product_url},
        }));
    }
    let mut features_out = Vec::new();
    let mut sorted = features.clone();
    sorted.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    for f in sorted {
        features_out.push(json!({
            "identifier": f.identifier, "name": f.name, "description": f.description,
            "type": f.feature_type.as_str(), "details": f.feature_details, "meter": f.meter, "metadata": f.metadata,
        }));
    }
    let plans = parents_first(all_plans(store, tenant).await?, |p| (p.identifier.clone(), p.fields.parent.clone()));
    let mut plans_out = Vec::new();
    for p in plans {
        let entitlements: Vec<Value> = p
            .entitlements
            .iter()
            .map(|e| {
                let mut row = serde_json::to_value(&e.details).expect("details serialise");
                let ident =
                    feature_idents.get(&e.feature_id.to_string()).cloned().unwrap_or_else(|| e.feature_id.to_string());
                row["feature"] = json!(ident);
                row
            })
            .collect();
        plans_out.push(json!({
            "identifier": p.identifier, "name": p.name,
            "product": product_idents.get(&p.product_id).cloned().unwrap_or_else(|| p.product_id.to_string()),
            "parent": p.fields.parent, "published": p.status == PlanStatus::Published,
            "description": p.fields.description, "is_visible": p.fields.is_visible, "metadata": p.fields.metadata,
            "license": p.fields.license, "links": p.fields.links, "ordering": p.fields.ordering,
            "prices": p.prices.iter().map(|pr| price_for_file(pr, &feature_idents)).collect::<Vec<_>>(),
            "features": entitlements,
        }));
    }
    let (discounts_out, promotions_out) = offers::export(store, tenant, &product_idents).await?;
    let doc = json!({"products": products_out, "features": features_out, "plans": plans_out,
        "discounts": discounts_out, "promotions": promotions_out});
    let doc = tidy(doc).unwrap_or_else(|| json!({}));
    let body = toml::to_string_pretty(&doc).context("rendering the catalog as TOML")?;
    Ok(format!(
        "# kelviq catalog ({} environment). Apply with `kelviq catalog apply FILE`.\n# Plans are shown at their published version; `published = false` marks a plan never published.\n\n{body}",
        tenant.env
    ))
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// A plan as the file wants it.
struct DesiredPlan {
    identifier: String,
    product: String,
    name: String,
    fields: PlanFields,
    published: bool,
    /// As written in the file; parsed once the features they name exist.
    raw_prices: Vec<Value>,
    entitlements: Vec<PlanEntitlement>,
}

fn without_ids(prices: &[Price]) -> Vec<Price> {
    prices
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.id = None;
            p
        })
        .collect()
}

fn fail(what: &str, errors: FieldErrors) -> anyhow::Error {
    anyhow!("{what}: {errors}")
}

/// Whether `apply` writes, or only says what it would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    Write,
    DryRun,
}

/// Makes the tenant's catalog match `text`. Returns the changes made (or, in
/// a dry run, the changes it would make).
pub async fn apply(
    store: &Store,
    tenant: &Tenant,
    text: &str,
    mode: ApplyMode,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let dry_run = mode == ApplyMode::DryRun;
    let doc: Value = toml::from_str::<toml::Value>(text)
        .context("the file is not valid TOML")
        .and_then(|v| serde_json::to_value(v).context("reading the TOML"))?;
    let list = |k: &str| doc.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut changes = Vec::new();

    // 1. Validate everything before writing anything.
    let mut products = Vec::new();
    for p in list("products") {
        let ident = str_field(&p, "identifier").ok_or_else(|| anyhow!("a product has no identifier"))?;
        let new = NewProduct::parse(
            str_field(&p, "name"),
            Some(ident.clone()),
            str_field(&p, "description"),
            str_field(&p, "tax_code"),
        )
        .map_err(|e| fail(&format!("product {ident}"), e))?;
        let settings = match p.get("settings").and_then(Value::as_object) {
            Some(patch) => {
                ProductSettings::default().patched(patch).map_err(|e| fail(&format!("product {ident} settings"), e))?
            }
            None => ProductSettings::default(),
        };
        products.push((new, settings));
    }
    let mut features = Vec::new();
    for f in list("features") {
        let ident = str_field(&f, "identifier").ok_or_else(|| anyhow!("a feature has no identifier"))?;
        let new = NewFeature::parse(
            str_field(&f, "name"),
            Some(ident.clone()),
            str_field(&f, "description"),
            str_field(&f, "type"),
            f.get("details").cloned(),
            f.get("meter").cloned(),
            f.get("metadata").cloned(),
        )
        .map_err(|e| fail(&format!("feature {ident}"), e))?;
        features.push(new);
    }
    // Feature identifiers → what prices and entitlements refer to.
    let mut feature_refs: HashMap<String, FeatureRef> = HashMap::new();
    for f in all_features(store, tenant).await? {
        feature_refs.insert(f.identifier.clone(), FeatureRef { id: f.id, feature_type: f.feature_type });
    }
    for f in &features {
        feature_refs
            .entry(f.identifier.clone())
            .or_insert(FeatureRef { id: uuid::Uuid::nil(), feature_type: f.feature_type });
    }
    let file_plan_idents: Vec<String> = list("plans").iter().filter_map(|p| str_field(p, "identifier")).collect();
    let file_product_idents: Vec<String> = products.iter().map(|(n, _)| n.identifier.clone()).collect();
    let offers = offers::check(&list("discounts"), &list("promotions"), &file_product_idents, &file_plan_idents)?;
    let mut plans = Vec::new();
    for p in list("plans") {
        let ident = str_field(&p, "identifier").ok_or_else(|| anyhow!("a plan has no identifier"))?;
        let input = PlanInput {
            parent: Some(str_field(&p, "parent")),
            name: str_field(&p, "name"),
            identifier: Some(ident.clone()),
            product: str_field(&p, "product"),
            description: str_field(&p, "description"),
            metadata: p.get("metadata").cloned(),
            is_visible: p.get("is_visible").and_then(Value::as_bool),
            license: p.get("license").cloned(),
            links: p.get("links").cloned(),
            ordering: p.get("ordering").cloned(),
        };
        let new = NewPlan::parse(input).map_err(|e| fail(&format!("plan {ident}"), e))?;
        if let Some(parent) = &new.fields.parent {
            if !file_plan_idents.contains(parent) {
                bail!("plan {ident}: parent {parent} is not in the file");
            }
        }
        let mut errors = FieldErrors::new();
        let lookup = |k: &str| feature_refs.get(k).cloned();
        let raw_prices = p.get("prices").and_then(Value::as_array).cloned().unwrap_or_default();
        let prices: Vec<Price> = raw_prices
            .iter()
            .enumerate()
            .filter_map(|(i, pr)| parse_price(pr, &format!("prices[{i}]: "), &lookup, &mut errors))
            .collect();
        errors.into_result().map_err(|e| fail(&format!("plan {ident}"), e))?;
        // Parsed here only to refuse a bad file before anything is written; they are
        // parsed again once the features they name exist (see `apply_plan`).
        check_price_currencies(&prices).map_err(|e| fail(&format!("plan {ident}"), e))?;
        let mut entitlements = Vec::new();
        for (i, row) in p.get("features").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate() {
            let key = str_field(row, "feature").ok_or_else(|| anyhow!("plan {ident}: features[{i}] has no feature"))?;
            let fref = feature_refs.get(&key).ok_or_else(|| anyhow!("plan {ident}: feature {key} does not exist"))?;
            let mut errors = FieldErrors::new();
            let details = parse_entitlement_details(fref.feature_type, row, &format!("features[{i}]: "), &mut errors);
            errors.into_result().map_err(|e| fail(&format!("plan {ident}"), e))?;
            entitlements.push((key, details.expect("validated")));
        }
        plans.push((new, p.get("published").and_then(Value::as_bool).unwrap_or(false), raw_prices, entitlements));
    }

    // 2. Products.
    let mut product_ids: HashMap<String, uuid::Uuid> = HashMap::new();
    let existing_products = all_products(store, tenant).await?;
    for (new, settings) in &products {
        let current = existing_products.iter().find(|p| p.identifier == new.identifier);
        match current {
            None => {
                changes.push(format!("create product {}", new.identifier));
                if !dry_run {
                    let p = store.insert_product(tenant, new, "catalog apply", now).await.with_context(|| {
                        format!("product {} (an archived product keeps its identifier)", new.identifier)
                    })?;
                    if *settings != p.settings {
                        store.update_product_settings(tenant, &p.identifier, settings, now).await?;
                    }
                    product_ids.insert(p.identifier.clone(), p.id);
                }
            }
            Some(p) => {
                product_ids.insert(p.identifier.clone(), p.id);
                let differs = p.name != new.name || p.description != new.description || p.tax_code != new.tax_code;
                if differs {
                    changes.push(format!("update product {}", new.identifier));
                    if !dry_run {
                        let ch = ProductChanges {
                            name: Some(new.name.clone()),
                            description: Some(new.description.clone()),
                            tax_code: Some(new.tax_code.clone()),
                        };
                        store.update_product(tenant, &p.identifier, &ch, now).await?;
                    }
                }
                if p.settings != *settings {
                    changes.push(format!("update product {} settings", new.identifier));
                    if !dry_run {
                        store.update_product_settings(tenant, &p.identifier, settings, now).await?;
                    }
                }
            }
        }
    }

    // 3. Features.
    for new in &features {
        match store.find_feature(tenant, &new.identifier).await? {
            Some(f) if f.archived_at.is_some() => {
                bail!("feature {} is archived here; identifiers are never reused", new.identifier)
            }
            None => {
                changes.push(format!("create feature {}", new.identifier));
                if !dry_run {
                    let f = store.insert_feature(tenant, new, now).await?;
                    feature_refs.insert(f.identifier.clone(), FeatureRef { id: f.id, feature_type: f.feature_type });
                }
            }
            Some(f) => {
                if f.feature_type != new.feature_type
                    || f.feature_details != new.feature_details
                    || f.meter != new.meter
                {
                    bail!(
                        "feature {}: its type, details and meter cannot change (here it is {}); create a new feature instead",
                        new.identifier,
                        f.feature_type.as_str()
                    );
                }
                if f.name != new.name || f.description != new.description || f.metadata != new.metadata {
                    changes.push(format!("update feature {}", new.identifier));
                    if !dry_run {
                        let ch = FeatureChanges {
                            name: Some(new.name.clone()),
                            description: Some(new.description.clone()),
                            metadata: Some(new.metadata.clone()),
                        };
                        store.update_feature(tenant, &f.identifier, &ch, now).await?;
                    }
                }
            }
        }
    }

    // 4. Plans, parents first.
    let desired: Vec<DesiredPlan> = plans
        .into_iter()
        .map(|(new, published, raw_prices, rows)| DesiredPlan {
            identifier: new.identifier,
            product: new.product,
            name: new.name,
            fields: new.fields,
            published,
            raw_prices,
            entitlements: rows
                .into_iter()
                .map(|(key, details)| PlanEntitlement { feature_id: feature_refs[&key].id, details })
                .collect(),
        })
        .collect();
    let desired = parents_first(desired, |d| (d.identifier.clone(), d.fields.parent.clone()));
    for d in &desired {
        apply_plan(store, tenant, d, &product_ids, &feature_refs, mode, now, &mut changes).await?;
    }

    // Discount codes and promotions, once the products and plans they name exist.
    offers::apply(store, tenant, offers, mode, now, &mut changes).await?;

    // 5. Archive what the file does not have.
    for p in all_plans(store, tenant).await? {
        if !desired.iter().any(|d| d.identifier == p.identifier) {
            changes.push(format!("archive plan {}", p.identifier));
            if !dry_run {
                store.archive_plan(tenant, &p.identifier, now).await?;
            }
        }
    }
    for f in all_features(store, tenant).await? {
        if !features.iter().any(|n| n.identifier == f.identifier) {
            changes.push(format!("archive feature {}", f.identifier));
            if !dry_run {
                store.archive_feature(tenant, &f.identifier, now).await?;
            }
        }
    }
    for p in all_products(store, tenant).await? {
        if !products.iter().any(|(n, _)| n.identifier == p.identifier) {
            changes.push(format!("archive product {}", p.identifier));
            if !dry_run {
                store.archive_product(tenant, &p.identifier, now).await?;
            }
        }
    }
    Ok(changes)
}

#[allow(clippy::too_many_arguments)]
async fn apply_plan(
    store: &Store,
    tenant: &Tenant,
    d: &DesiredPlan,
    product_ids: &HashMap<String, uuid::Uuid>,
    feature_refs: &HashMap<String, FeatureRef>,
    mode: ApplyMode,
    now: DateTime<Utc>,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let dry_run = mode == ApplyMode::DryRun;
    let lookup = |k: &str| feature_refs.get(k).cloned();
    let mut errors = FieldErrors::new();
    let prices: Vec<Price> = d
        .raw_prices
        .iter()
        .enumerate()
        .filter_map(|(i, pr)| parse_price(pr, &format!("prices[{i}]: "), &lookup, &mut errors))
        .collect();
    errors.into_result().map_err(|e| fail(&format!("plan {}", d.identifier), e))?;
    let newest = store.find_plan(tenant, &d.identifier, None).await?;
    let newest = match newest {
        Some(p) => p,
        None => {
            changes.push(format!("create plan {}", d.identifier));
            if dry_run {
                if d.published {
                    changes.push(format!("publish plan {}", d.identifier));
                }
                return Ok(());
            }
            let product = *product_ids
                .get(&d.product)
                .ok_or_else(|| anyhow!("plan {}: product {} is not in the file", d.identifier, d.product))?;
            let new = NewPlan {
                identifier: d.identifier.clone(),
                identifier_generated: false,
                name: d.name.clone(),
                product: d.product.clone(),
                fields: d.fields.clone(),
            };
            store
                .insert_plan(tenant, &new, product, now)
                .await
                .with_context(|| format!("plan {} (an archived plan keeps its identifier)", d.identifier))?
        }
    };
    if product_ids.get(&d.product).is_some_and(|id| *id != newest.product_id) {
        bail!("plan {}: its product cannot change", d.identifier);
    }
    let same = newest.name == d.name
        && newest.fields == d.fields
        && without_ids(&newest.prices) == without_ids(&prices)
        && newest.entitlements == d.entitlements;
    if !same {
        if newest.version > 1
            || newest.status != PlanStatus::Draft
            || !newest.prices.is_empty()
            || !newest.entitlements.is_empty()
        {
            changes.push(format!("update plan {}", d.identifier));
        }
        if !dry_run {
            let (name, fields, prices, rows) =
                (d.name.clone(), d.fields.clone(), prices.clone(), d.entitlements.clone());
            store
                .edit_plan(tenant, &d.identifier, now, |draft| {
                    draft.name = name;
                    draft.fields = fields;
                    draft.prices = prices;
                    draft.entitlements = rows;
                    Ok(())
                })
                .await?;
        }
    }
    let needs_publish = d.published && (!same || newest.status == PlanStatus::Draft);
    if needs_publish {
        changes.push(format!("publish plan {}", d.identifier));
        if !dry_run {
            store
                .publish_plan(tenant, &d.identifier, now)
                .await
                .with_context(|| format!("publishing plan {}", d.identifier))?;
        }
    }
    Ok(())
}
