//! The scheduler: runs due work of every tenant on its own clock.

use super::renewals::*;
use crate::clock::tenant_now;
use crate::state::AppState;
use chrono::Duration;
use kelviq_core::{Environment, Tenant};

/// How often the scheduler looks for charges no work used.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How many due items one scheduler pass runs for a tenant.
pub(super) const SCHEDULER_ITEMS_PER_TICK: u64 = 100_000;

/// The scheduler: runs due work of every tenant on its own clock until shutdown.
pub fn spawn_scheduler(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(state.config.scheduler_interval_ms.max(10));
        let mut swept = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = run_once(&state).await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            if swept.elapsed() >= SWEEP_EVERY {
                swept = std::time::Instant::now();
                if let Err(e) = super::payments::sweep::sweep(&state).await {
                    tracing::warn!(error = %e, "payments sweep failed");
                }
            }
        }
    })
}

/// One pass of the scheduler: runs what is due for every tenant, each on
/// its own clock. Returns how many due items ran.
pub async fn run_once(state: &AppState) -> anyhow::Result<u64> {
    let mut total = 0;
    let wall = state.clock.now();
    let ahead = state.store.test_clocks().await?.into_iter().map(|c| c.2).max().unwrap_or_else(Duration::zero);
    for (org_id, org_seq, env) in state.store.tenants_with_due_work(wall + ahead.max(Duration::zero())).await? {
        let Ok(env) = env.parse::<Environment>() else { continue };
        let tenant = Tenant { org_id, org_seq, env };
        let now = tenant_now(state, &tenant).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let ran = run_due(state, &tenant, now, SCHEDULER_ITEMS_PER_TICK).await.map_err(|e| anyhow::anyhow!("{e}"))?.ran;
        if ran > 0 {
            tracing::info!(org = %org_id, env = env.as_str(), ran, "ran due subscription work");
        }
        total += ran;
    }
    Ok(total)
}
