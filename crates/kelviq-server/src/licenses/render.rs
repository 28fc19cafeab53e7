//! Licenses in the API's shapes: `LicenseDetails` (with its customer, plan
//! and subscription) and the short form subscriptions and orders list.

use super::{holding, key_of};
use crate::error::ServiceResult;
use crate::wire::licenses::{
    LicenseCustomerOut, LicenseDetailsOut, LicensePlanOut, LicensePlanProductOut, SubscriptionLicenseOut,
};
use crate::wire::selling::Renderer;
use kelviq_core::billing::Subscription;
use kelviq_core::timefmt::{iso_micros, iso_seconds};
use kelviq_store::{DocTable, InstanceRow, LicenseRow};

/// A license as Kelviq's `LicenseDetails`, its `activationUsage` counted at
/// the renderer's `now` from `instances`.
pub async fn details(
    r: &mut Renderer<'_>,
    row: &LicenseRow,
    instances: &[InstanceRow],
) -> ServiceResult<LicenseDetailsOut> {
    let (state, tenant) = (r.state, r.tenant);
    let customer = r.customer(&row.customer_id).await?.map(|c| LicenseCustomerOut {
        customer_id: c.customer_id,
        name: c.name,
        email: c.email,
    });
    let plan = match r.plan(row.plan_id).await? {
        Some(p) => {
            let product = state.store.find_product_any(tenant, &p.product_id.to_string()).await?.map(|pr| {
                LicensePlanProductOut {
                    id: pr.id.to_string(),
                    identifier: pr.identifier,
                    name: pr.name,
                    tax_code: Some(pr.tax_code),
                    created_on: Some(iso_micros(pr.created_at)),
                    modified_on: Some(iso_micros(pr.modified_at)),
                }
            });
            let latest = state.store.find_published_plan(tenant, &p.identifier).await?;
            Some(LicensePlanOut {
                identifier: p.identifier.clone(),
                name: Some(p.name.clone()),
                description: Some(p.fields.description.clone()),
                product,
                version: Some(p.version),
                is_latest: Some(latest.is_some_and(|l| l.id == p.id)),
            })
        }
        None => None,
    };
    let subscription = match row.subscription_id {
        Some(id) => {
            let s: Option<Subscription> =
                state.store.find_doc(DocTable::Subscriptions, tenant, &id.to_string()).await?;
            match s {
                Some(s) => Some(Box::new(r.subscription(&s).await?)),
                None => None,
            }
        }
        None => None,
    };
    Ok(LicenseDetailsOut {
        id: row.id.to_string(),
        license_key: key_of(state, row)?,
        activated_on: row.first_activated_at.map(iso_seconds),
        expires_on: row.expires_at.map(iso_seconds),
        activation_usage: holding(row, instances, r.now),
        activation_limit: row.activation_limit.unwrap_or(0),
        enabled: row.enabled,
        customer,
        plan,
        subscription,
    })
}

/// The licenses of a subscription (only those `order` issued, when given),
/// in the short form.
pub async fn subscription_licenses(
    r: &Renderer<'_>,
    subscription_id: uuid::Uuid,
    order: Option<&str>,
) -> ServiceResult<Vec<SubscriptionLicenseOut>> {
    let rows = r.state.store.licenses_of_subscriptions(r.tenant, &[subscription_id]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.into_iter().filter(|l| order.is_none() || l.order_id.as_deref() == order) {
        let instances = r.state.store.license_instances(row.id, false).await?;
        out.push(SubscriptionLicenseOut {
            id: row.id.to_string(),
            license_key: key_of(r.state, &row)?,
            activated_on: row.first_activated_at.map(iso_seconds),
            expires_on: row.expires_at.map(iso_seconds),
            activation_usage: holding(&row, &instances, r.now),
            activation_limit: row.activation_limit.unwrap_or(0),
            enabled: row.enabled,
        });
    }
    Ok(out)
}
