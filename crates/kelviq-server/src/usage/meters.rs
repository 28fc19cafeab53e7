//! Meter matching: the tenant's features and RAW_EVENTS meters, read once
//! per catalog load and kept briefly, and which meter features a report may name.

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::catalog::{Feature, FeatureType};
use kelviq_core::meters::Meter;
use kelviq_core::Tenant;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a tenant's features are trusted before they are read again
/// (catalog changes reach ingestion within this time).
const CATALOG_TTL: Duration = Duration::from_secs(1);

/// The tenant's features, by identifier, and its RAW_EVENTS meters.
#[derive(Debug)]
pub struct TenantCatalog {
    pub features: HashMap<String, Feature>,
    meters: Vec<FeatureMeter>,
}

/// A RAW_EVENTS meter with its feature, read once per catalog load.
#[derive(Debug)]
struct FeatureMeter {
    feature: Feature,
    meter: Meter,
}

impl TenantCatalog {
    fn new(features: HashMap<String, Feature>) -> TenantCatalog {
        let mut meters: Vec<FeatureMeter> = features
            .values()
            .filter_map(|f| Some(FeatureMeter { feature: f.clone(), meter: Meter::parse(f.meter.as_ref()?)? }))
            .collect();
        meters.sort_by(|a, b| a.feature.identifier.cmp(&b.feature.identifier));
        TenantCatalog { features, meters }
    }

    /// The RAW_EVENTS meters, by feature identifier.
    pub fn meters(&self) -> impl Iterator<Item = (&Feature, &Meter)> {
        self.meters.iter().map(|m| (&m.feature, &m.meter))
    }
}

type CatalogCache = Mutex<HashMap<(uuid::Uuid, &'static str), (Instant, Arc<TenantCatalog>)>>;

fn catalog_cache() -> &'static CatalogCache {
    static CACHE: std::sync::OnceLock<CatalogCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Drops a tenant's cached features: the process that changed them counts
/// by the change at once (other processes within [`CATALOG_TTL`]).
pub fn forget_catalog(tenant: &Tenant) {
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).remove(&(tenant.org_id, tenant.env.as_str()));
}

/// Drops every tenant's cached features (a catalog change announced by the feed).
pub fn forget_all_catalogs() {
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

pub async fn tenant_catalog(state: &AppState, tenant: &Tenant) -> ServiceResult<Arc<TenantCatalog>> {
    let k = (tenant.org_id, tenant.env.as_str());
    if let Some((at, c)) = catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
        if at.elapsed() < CATALOG_TTL {
            return Ok(c.clone());
        }
    }
    let features = state
        .store
        .features_by_id(tenant)
        .await?
        .into_values()
        .filter(|f| f.archived_at.is_none())
        .map(|f| (f.identifier.clone(), f))
        .collect();
    let c = Arc::new(TenantCatalog::new(features));
    catalog_cache().lock().unwrap_or_else(|e| e.into_inner()).insert(k, (Instant::now(), c.clone()));
    Ok(c)
}

/// A meter feature of the tenant, or a 400 naming `featureId`.
pub fn meter_feature<'a>(catalog: &'a TenantCatalog, identifier: &str) -> ServiceResult<&'a Feature> {
    let f = catalog
        .features
        .get(identifier)
        .ok_or_else(|| ServiceError::field("feature_id", format!("Feature \"{identifier}\" does not exist.")))?;
    if f.feature_type != FeatureType::Meter {
        return Err(ServiceError::field("feature_id", format!("Feature \"{identifier}\" is not a METER feature.")));
    }
    Ok(f)
}
