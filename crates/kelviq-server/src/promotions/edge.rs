//! The edge answer (`GET /promotions?promotion_id=`, client key): the
//! visitor's country, its discount and coupon, the banner, and what the
//! security checks found. Served from memory: promotions are kept for a
//! few seconds (this process forgets one at once when it changes it; other
//! processes within [`TTL`]).

use crate::error::{ServiceError, ServiceResult};
use crate::geo::Visitor;
use crate::state::AppState;
use kelviq_core::promotions::{offer_for, Flags, Promotion};
use kelviq_core::{Environment, Tenant};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a promotion read is trusted.
pub const TTL: Duration = Duration::from_secs(5);
/// The most promotions kept; beyond, the oldest reads are dropped.
const MAX_KEPT: usize = 10_000;

type Key = (uuid::Uuid, Environment, uuid::Uuid);
/// When a promotion was read, and what was found.
type Read = (Instant, Option<Arc<Promotion>>);

/// Promotions read recently (`None`: there is none with that id).
#[derive(Default)]
pub struct Cache {
    kept: RwLock<HashMap<Key, Read>>,
}

/// Forgets a promotion this process changed.
pub fn forget(state: &AppState, tenant: &Tenant, id: uuid::Uuid) {
    state.promotions.kept.write().expect("promotions lock").remove(&(tenant.org_id, tenant.env, id));
}

async fn promotion(state: &AppState, tenant: &Tenant, id: uuid::Uuid) -> ServiceResult<Option<Arc<Promotion>>> {
    let key = (tenant.org_id, tenant.env, id);
    if let Some((at, p)) = state.promotions.kept.read().expect("promotions lock").get(&key) {
        if at.elapsed() < TTL {
            return Ok(p.clone());
        }
    }
    let p = state.store.find_promotion(tenant, id).await?.map(Arc::new);
    let mut kept = state.promotions.kept.write().expect("promotions lock");
    if kept.len() >= MAX_KEPT {
        kept.retain(|_, (at, _)| at.elapsed() < TTL);
    }
    kept.insert(key, (Instant::now(), p.clone()));
    Ok(p)
}

/// What the security checks find of a visitor (only the checks `p` makes).
fn flags(state: &AppState, p: &Promotion, v: &Visitor) -> Flags {
    let data = state.geo.data();
    let on = |listed: &kelviq_core::geo::IpSet| v.ip.is_some_and(|ip| listed.contains(ip));
    let c = p.checks;
    Flags {
        vpn: c.vpn && on(&data.vpn),
        tor: c.tor && on(&data.tor),
        proxy: c.proxy && on(&data.proxy),
        relay: c.relay && on(&data.relay),
        crawler: c.crawler && kelviq_core::geo::is_crawler(v.user_agent.as_deref()),
    }
}

/// What the edge answers a visitor.
#[derive(Debug, Clone)]
pub struct EdgeAnswer {
    pub promotion: Arc<Promotion>,
    pub country_code: Option<String>,
    pub percentage: i64,
    pub code: String,
    pub flags: Flags,
}

/// The promotion `id` as `visitor` sees it.
pub async fn answer(state: &AppState, tenant: &Tenant, id: &str, visitor: &Visitor) -> ServiceResult<EdgeAnswer> {
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| ServiceError::NotFound("Promotion not found.".into()))?;
    let p = promotion(state, tenant, id).await?.ok_or_else(|| ServiceError::NotFound("Promotion not found.".into()))?;
    let flags = flags(state, &p, visitor);
    let offer = offer_for(&p, visitor.country.as_deref(), &flags);
    Ok(EdgeAnswer {
        country_code: visitor.country.clone(),
        percentage: offer.map_or(0, |o| o.percentage),
        code: offer.map(|o| o.code.clone()).unwrap_or_default(),
        flags,
        promotion: p,
    })
}
