//! Charges no work used. A request that asked Stripe for a charge and died
//! before its work committed (or whose work changed before it ran again)
//! leaves an attempt that is pending or succeeded and unused. Once it is
//! older than `payment_orphan_after_seconds`, the sweeper asks Stripe
//! again with the same key (Stripe replays the answer, so it learns
//! whether the charge was made) and refunds a charge that was: the
//! customer paid for nothing. The attempt is first moved to `orphaned`,
//! in one conditional update, so work that would still use it finds it
//! gone (and treats the payment as declined) rather than both happening.

use super::scope::resolve;
use crate::state::AppState;
use chrono::Duration;
use kelviq_core::Tenant;
use kelviq_store::PaymentAttempt;

/// How many attempts one sweep looks at.
const SWEEP_BATCH: i64 = 100;

/// One sweep; how many charges it refunded.
pub async fn sweep(state: &AppState) -> anyhow::Result<u64> {
    let after = i64::try_from(state.config.payment_orphan_after_seconds).unwrap_or(i64::MAX / 2);
    let before = state.clock.now() - Duration::seconds(after);
    let mut refunded = 0;
    for (tenant, attempt) in state.store.unused_payment_attempts(before, SWEEP_BATCH).await? {
        match orphan(state, &tenant, attempt).await {
            Ok(true) => refunded += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, org = %tenant.org_id, "payments: an unused charge could not be settled")
            }
        }
    }
    Ok(refunded)
}

async fn orphan(state: &AppState, tenant: &Tenant, attempt: PaymentAttempt) -> anyhow::Result<bool> {
    let attempt = if attempt.is_pending() { resolve(state, tenant, &attempt).await? } else { attempt };
    let claimed = match attempt.status.as_str() {
        "succeeded" => state.store.move_unused_payment_attempt(tenant, &attempt.key, "succeeded", "orphaned").await?,
        "orphaned" => true,
        // Declined or waiting for authentication: no money moved.
        _ => return Ok(false),
    };
    if !claimed {
        return Ok(false);
    }
    let Some(payment) = attempt.payment_ref.as_deref() else { return Ok(false) };
    let Some(stripe) = crate::providers::stripe_client(state, tenant).await? else { return Ok(false) };
    let key = format!("{}-orphan-refund", attempt.key);
    stripe.refund(payment, None, &key).await.map_err(|e| anyhow::anyhow!("stripe refund of {payment}: {e}"))?;
    state.store.move_unused_payment_attempt(tenant, &attempt.key, "orphaned", "orphan_refunded").await?;
    tracing::warn!(org = %tenant.org_id, purpose = %attempt.purpose, payment, amount = attempt.amount_minor,
        "payments: refunded a charge no work used");
    Ok(true)
}
