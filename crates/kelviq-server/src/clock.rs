//! The tenant's clock: the server clock plus, in the sandbox, the test clock
//! offset (which `selling::test_clock` moves).

use crate::error::ServiceResult;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::{Environment, Tenant};

/// The tenant's current time: the server clock plus the sandbox test clock.
/// The offset is read once per process and then kept in memory; moves of
/// the clock reach the other processes through the change feed.
pub async fn tenant_now(state: &AppState, tenant: &Tenant) -> ServiceResult<DateTime<Utc>> {
    if tenant.env == Environment::Production {
        return Ok(state.clock.now());
    }
    let k = (tenant.org_id, tenant.env);
    let cached = state.test_clocks.read().unwrap_or_else(|e| e.into_inner()).get(&k).copied();
    let offset = match cached {
        Some(o) => o,
        None => {
            let o = state.store.test_clock_offset(tenant).await?;
            state.test_clocks.write().unwrap_or_else(|e| e.into_inner()).insert(k, o);
            o
        }
    };
    Ok(state.clock.now() + offset)
}

/// Forgets this process's copy of a tenant's test clock offset (another
/// process moved it; the change feed said so).
pub fn forget_offset(state: &AppState, org: uuid::Uuid, env: Environment) {
    state.test_clocks.write().unwrap_or_else(|e| e.into_inner()).remove(&(org, env));
}
