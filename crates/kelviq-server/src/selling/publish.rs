//! Publishing a plan version and moving its subscribers onto it.

use super::records::*;
use crate::state::AppState;
use kelviq_core::billing::{SubStatus, Subscription};
use kelviq_core::events::{self, OutboxEvent, Sold};
use kelviq_core::plans::PlanVersion;
use kelviq_core::Tenant;
use kelviq_store::{DocTable, Filter, StoreError};
use std::collections::HashMap;

use super::*;

/// Publishes a plan's newest draft and, when asked, moves the live
/// subscribers of its earlier versions onto it, in one transaction:
/// `features` points them at the new version (its entitlements apply at
/// once); `pricing` sets their price to the new version's for their charge
/// period, currency and quantities from the next renewal (a subscriber whose
/// period or currency the new version does not sell keeps its price).
/// Returns the published version and how many subscriptions moved.
/// What publishing moves live subscribers of earlier versions onto.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrate {
    /// The new version's entitlements, at once.
    pub features: bool,
    /// The new version's price, from the next renewal.
    pub pricing: bool,
}

pub async fn publish_and_migrate(
    state: &AppState,
    tenant: &Tenant,
    identifier: &str,
    migrate: Migrate,
) -> Result<(PlanVersion, u64), StoreError> {
    let Migrate { features, pricing } = migrate;
    let now = state.clock.now();
    let mut w = state.store.begin(tenant).await?;
    let plan = w.publish_plan(identifier, now).await?;
    let mut moved = 0;
    if features || pricing {
        let identifiers: HashMap<String, String> =
            w.features_by_id().await?.into_values().map(|f| (f.id.to_string(), f.identifier)).collect();
        let live = SubStatus::ALL.iter().filter(|s| s.grants()).map(|s| s.as_str().to_string()).collect();
        let subs: Vec<Subscription> = w.lock_all(DocTable::Subscriptions, &[Filter::In("status", live)]).await?;
        for mut s in subs.into_iter().filter(|s| s.plan_identifier == identifier && s.plan_version < plan.version) {
            let before = s.clone();
            if features {
                s.plan_id = plan.id;
                s.plan_version = plan.version;
                s.plan_name = plan.name.clone();
            }
            if pricing {
                let q = kelviq_core::billing::quote(&plan, s.charge_period, Some(&s.currency), &s.features, &|id| {
                    identifiers.get(id).cloned()
                });
                if let Some(q) = q.ok().filter(|q| q.currency == s.currency && !q.free) {
                    s.amount_minor = q.total_minor;
                }
            }
            if s == before {
                continue;
            }
            s.modified_at = now;
            w.put_subscription(&s).await?;
            let customer = w.find_customer_any(&s.customer_id).await?;
            let product = w.find_product_any(&s.product_id.to_string()).await?;
            if let Some(customer) = customer {
                let sold = Sold {
                    customer: &customer,
                    product_id: s.product_id,
                    product_name: product.as_ref().map_or("", |p| &p.name),
                };
                let after = events::subscription_object(&s, &sold, tenant);
                let old = events::subscription_object(&before, &sold, tenant);
                let object = OutboxEvent::new(
                    "subscription.updated",
                    after.clone(),
                    Some(previous_attributes(&old, &after)),
                    now,
                );
                w.event(&object).await?;
            }
            w.entitlements_changed(&s.customer_id, now).await?;
            moved += 1;
        }
    }
    finish(state, w).await?;
    Ok((plan, moved))
}
