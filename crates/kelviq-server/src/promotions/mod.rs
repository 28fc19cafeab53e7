//! Purchasing-power-parity promotions (server key): made with a coupon per
//! country (a discount code checkout redeems), listed, renamed, deleted;
//! the environment's country groups; and the edge answer a page asks for
//! with a client key ([`edge`]).

pub mod edge;
pub mod fields;

use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::discounts::{Discount, DiscountDuration, DiscountValue};
use kelviq_core::promotions::{country_percentages, coupon_code, default_groups, CountryGroup, Promotion};
use kelviq_core::{FieldErrors, Tenant};
use kelviq_store::{Store, StoreError};
use std::collections::BTreeMap;

pub use fields::{PromotionChange, PromotionFields, WidgetFields};

/// The environment's country groups: the default table, with the groups it
/// changed in their place.
pub async fn groups(state: &AppState, tenant: &Tenant) -> ServiceResult<Vec<CountryGroup>> {
    groups_in(&state.store, tenant).await
}

/// [`groups`] from a store.
pub async fn groups_in(store: &Store, tenant: &Tenant) -> ServiceResult<Vec<CountryGroup>> {
    let own = store.country_groups(tenant).await?;
    let mut groups = default_groups();
    for g in groups.iter_mut() {
        if let Some(mine) = own.iter().find(|o| o.name == g.name) {
            g.countries = mine.countries.clone();
        }
    }
    Ok(groups)
}

/// Changes the countries of a group (new promotions use them; those made
/// keep their countries).
pub async fn set_group(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    countries: Option<Vec<String>>,
) -> ServiceResult<CountryGroup> {
    let all = groups(state, tenant).await?;
    if !all.iter().any(|g| g.name == name) {
        return Err(ServiceError::not_found());
    }
    let mut errors = FieldErrors::new();
    let countries = fields::countries(countries, &mut errors);
    errors.into_result().map_err(ServiceError::Fields)?;
    let mut group = CountryGroup { name: name.into(), countries };
    group.countries.sort();
    group.countries.dedup();
    // A country belongs to one group: moving it here takes it from another.
    for other in all.iter().filter(|g| g.name != name) {
        if other.countries.iter().any(|c| group.countries.contains(c)) {
            let left: Vec<String> = other.countries.iter().filter(|c| !group.countries.contains(c)).cloned().collect();
            let moved = CountryGroup { name: other.name.clone(), countries: left };
            state.store.put_country_group(tenant, &moved, state.clock.now()).await?;
        }
    }
    state.store.put_country_group(tenant, &group, state.clock.now()).await?;
    Ok(group)
}

pub async fn create(state: &AppState, tenant: &Tenant, f: PromotionFields) -> ServiceResult<Promotion> {
    let now = tenant_now(state, tenant).await?;
    let p = create_in(&state.store, tenant, f, &BTreeMap::new(), now).await?;
    edge::forget(state, tenant, p.id);
    Ok(p)
}

/// Makes a promotion in a store; a country's coupon is its code in `codes`
/// (a catalog file's), else one drawn.
pub async fn create_in(
    store: &Store,
    tenant: &Tenant,
    f: PromotionFields,
    codes: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> ServiceResult<Promotion> {
    let groups = groups_in(store, tenant).await?;
    let mut p = fields::check_new(store, tenant, f, &groups, now).await?;
    let percentages = country_percentages(&groups, &p.group_percentages, &p.country_overrides);
    if percentages.is_empty() {
        return Err(ServiceError::field("group_percentages", "Give at least one country a discount above 0."));
    }
    for (country, code) in codes {
        if !percentages.contains_key(country) || kelviq_core::discounts::normalize_code(code).is_err() {
            return Err(ServiceError::field(
                "coupon_codes",
                format!("{country}: {code:?} is not a coupon of this promotion."),
            ));
        }
    }
    // A coupon code drawn twice (or taken by a code made by API) draws again.
    for _ in 0..3 {
        p.countries = percentages
            .iter()
            .map(|(c, pct)| {
                let code = codes.get(c).map(|c| c.to_ascii_uppercase()).unwrap_or_else(coupon_code);
                (c.clone(), kelviq_core::promotions::CountryOffer { percentage: *pct, code })
            })
            .collect();
        let coupons: Vec<Discount> = p.countries.iter().map(|(c, offer)| coupon(&p, c, offer, now)).collect();
        match store.insert_promotion(tenant, &p, &coupons).await {
            Ok(()) => {
                crate::http::reqlog::in_span(
                    || tracing::info!(promotion = %p.id, countries = p.countries.len(), "promotion created"),
                );
                return Ok(p);
            }
            Err(StoreError::Invalid(_)) if codes.is_empty() => continue,
            Err(StoreError::Invalid(_)) => {
                return Err(ServiceError::field("coupon_codes", "A coupon code is taken by another discount code."))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ServiceError::Internal(anyhow::anyhow!("could not draw free coupon codes")))
}

/// A country's coupon: its percentage off the promotion's products and
/// plans, for as long as the subscription lasts.
fn coupon(
    p: &Promotion,
    country: &str,
    offer: &kelviq_core::promotions::CountryOffer,
    now: chrono::DateTime<chrono::Utc>,
) -> Discount {
    Discount {
        name: format!("{} ({country})", p.name),
        duration: DiscountDuration::Forever,
        products: p.products.clone(),
        plans: p.plans.clone(),
        countries: if p.strict_country { vec![country.to_string()] } else { Vec::new() },
        promotion_id: Some(p.id),
        ..Discount::new(&offer.code, DiscountValue::Percentage { percentage: offer.percentage }, now)
    }
}

pub async fn get(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<Promotion> {
    state.store.find_promotion(tenant, id).await?.ok_or_else(ServiceError::not_found)
}

/// Renames a promotion or changes its banners; what it targets is fixed.
pub async fn update(state: &AppState, tenant: &Tenant, id: uuid::Uuid, c: PromotionChange) -> ServiceResult<Promotion> {
    let mut p = get(state, tenant, id).await?;
    fields::apply_change(&mut p, c)?;
    p.modified_at = tenant_now(state, tenant).await?;
    state.store.update_promotion(tenant, &p).await?;
    edge::forget(state, tenant, id);
    Ok(p)
}

pub async fn delete(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<()> {
    let now = tenant_now(state, tenant).await?;
    state.store.delete_promotion(tenant, id, now).await?;
    edge::forget(state, tenant, id);
    Ok(())
}
