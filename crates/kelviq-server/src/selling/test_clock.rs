//! The sandbox test clock: moving it forward runs every due item on the way,
//! each at its own due time.

use crate::clock::tenant_now;
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use kelviq_core::{Environment, Tenant};

/// How far one call may move the test clock (ten years).
pub const MAX_ADVANCE_DAYS: i64 = 3653;
/// How many due items one call runs before it stops the clock where it is.
pub const MAX_ADVANCE_ITEMS: u64 = 10_000;

/// The test clock only exists in the sandbox.
pub fn sandbox_only(tenant: &Tenant) -> ServiceResult<()> {
    if tenant.env == Environment::Production {
        return Err(ServiceError::BadRequest("The test clock only exists in the sandbox environment.".into()));
    }
    Ok(())
}

/// The sandbox's current time and its offset from the server clock.
pub async fn test_clock(state: &AppState, tenant: &Tenant) -> ServiceResult<(DateTime<Utc>, Duration)> {
    sandbox_only(tenant)?;
    let offset = state.store.test_clock_offset(tenant).await?;
    Ok((state.clock.now() + offset, offset))
}

/// Where a move of the test clock goes.
pub enum Move<'a> {
    By { seconds: i64 },
    To { instant: &'a str },
}

/// What a move of the test clock did.
pub struct Advanced {
    /// Where the clock now stands.
    pub now: DateTime<Utc>,
    /// How many due items ran.
    pub ran: u64,
    /// Where the caller asked to go, when the clock stopped short of it.
    pub short_of: Option<DateTime<Utc>>,
}

/// Moves the sandbox clock forward, running everything that falls due on
/// the way, each at its own due time. With many due items (a daily plan
/// over years) the clock stops at the last one run, and says so; another
/// call goes on from there.
pub async fn advance(state: &AppState, tenant: &Tenant, to: Move<'_>) -> ServiceResult<Advanced> {
    sandbox_only(tenant)?;
    let now = tenant_now(state, tenant).await?;
    let limit = now + Duration::days(MAX_ADVANCE_DAYS);
    let target = match to {
        Move::By { seconds } if seconds < 0 => {
            return Err(ServiceError::field("seconds", "The test clock only moves forward."))
        }
        Move::By { seconds } if seconds > MAX_ADVANCE_DAYS * 86_400 => {
            return Err(ServiceError::field(
                "seconds",
                format!("Move the clock at most {MAX_ADVANCE_DAYS} days per call."),
            ))
        }
        Move::By { seconds } => now + Duration::seconds(seconds),
        Move::To { instant } => {
            let t = DateTime::parse_from_rfc3339(instant)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ServiceError::field("to", "Enter an ISO 8601 datetime, e.g. 2026-03-01T00:00:00Z."))?;
            if t < now {
                return Err(ServiceError::field("to", "The test clock only moves forward."));
            }
            if t > limit {
                return Err(ServiceError::field(
                    "to",
                    format!("Move the clock at most {MAX_ADVANCE_DAYS} days per call."),
                ));
            }
            t
        }
    };
    let run = super::run_due(state, tenant, target, MAX_ADVANCE_ITEMS).await?;
    let reached = run.stopped_at.unwrap_or(target);
    let mut w = state.store.begin(tenant).await?;
    let offset = reached - state.clock.now();
    w.set_test_clock(offset, state.clock.now()).await?;
    w.commit().await?;
    state.test_clocks.write().unwrap_or_else(|e| e.into_inner()).insert((tenant.org_id, tenant.env), offset);
    Ok(Advanced { now: reached, ran: run.ran, short_of: run.stopped_at.map(|_| target) })
}
