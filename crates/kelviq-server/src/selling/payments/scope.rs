//! Charging over the network without holding a transaction open.
//!
//! An operation that may charge (a billing run's batch, a plan change, an
//! invoice paid again, a purchase) runs inside [`charging`]. When it meets
//! a charge through a networked provider whose outcome is not recorded,
//! the charge answers [`PayError::Pending`], the call is noted, and the
//! work is held from committing ([`Work::hold_commit`]): that pass was a
//! rehearsal. [`charging`] then, outside any transaction, records each
//! attempt (committed), calls the provider with the attempt's key as the
//! `Idempotency-Key`, commits the answer, and runs the operation again,
//! which now reads the outcomes and commits.
//!
//! An attempt's key is derived from the tenant, the operation, what the
//! charge is for and its amount, currency and method. A billing run's
//! operation is the same in every process and after a restart, so a
//! process killed between the provider's answer and our commit calls
//! again with the same key after it restarts and the provider replays
//! the one charge it made. A request's operation is its own.

use super::{Paid, PayError};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::billing::ProviderMethod;
use kelviq_core::Tenant;
use kelviq_store::{PaymentAttempt, Work};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// Which operation charges: it names the attempts' keys.
#[derive(Debug, Clone)]
pub enum Op {
    /// Due work of the scheduler (renewals, retries, trial ends): the same
    /// name in every process and after a restart.
    Due,
    /// One request's work, named by the request's own id.
    Request(String),
}

impl Op {
    /// A request of the API or a hosted page: an id of its own.
    pub fn request() -> Op {
        Op::Request(uuid::Uuid::new_v4().simple().to_string())
    }

    fn name(&self) -> &str {
        match self {
            Op::Due => "due",
            Op::Request(id) => id,
        }
    }
}

/// A call the provider must be asked.
#[derive(Debug, Clone)]
struct Call {
    attempt: PaymentAttempt,
}

#[derive(Clone)]
struct Scope {
    op: Arc<str>,
    calls: Arc<Mutex<Vec<Call>>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// One pass of an operation.
pub type Pass<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = ServiceResult<T>> + Send + 'a>>;

/// What a refund's purpose starts with.
pub const REFUND: &str = "refund:";

/// How many times an operation runs at most: a rehearsal, the pass on its
/// answers, and one more should the second pass meet another charge.
const PASSES: usize = 4;

/// Runs `work` (which opens and commits its own unit of work) so that the
/// charges it makes through a networked provider are made outside its
/// transaction. Inside another `charging`, it simply runs.
pub async fn charging<'a, T>(
    state: &AppState,
    tenant: &Tenant,
    op: Op,
    mut work: impl FnMut() -> Pass<'a, T>,
) -> ServiceResult<T> {
    if SCOPE.try_with(|_| ()).is_ok() {
        return work().await;
    }
    for _ in 0..PASSES {
        let scope = Scope { op: op.name().into(), calls: Arc::default() };
        let out = SCOPE.scope(scope.clone(), work()).await;
        let calls = std::mem::take(&mut *scope.calls.lock().expect("calls"));
        if calls.is_empty() {
            return out;
        }
        // A rehearsal's answer (`out`) is not the operation's: the pass on the outcomes decides.
        drop(out);
        for call in calls {
            ask(state, tenant, call).await?;
        }
    }
    Err(ServiceError::Internal(anyhow::anyhow!("payments: an operation met new charges on every pass")))
}

/// The attempt key: ours and the provider's `Idempotency-Key`.
fn attempt_key(tenant: &Tenant, op: &str, purpose: &str, at: &ProviderMethod, amount: i64, currency: &str) -> String {
    let mut h = Sha256::new();
    for part in
        [&tenant.org_id.to_string(), tenant.env.as_str(), op, purpose, &at.method, &amount.to_string(), currency]
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("kelviq-{}", hex::encode(&h.finalize()[..20]))
}

/// A charge through the method's provider: the recorded outcome, or a
/// rehearsal's [`PayError::Pending`] with the call noted.
pub(super) async fn charge_at_provider(
    state: &AppState,
    w: &mut Work,
    at: &ProviderMethod,
    amount_minor: i64,
    currency: &str,
    purpose: &str,
) -> ServiceResult<Result<Paid, PayError>> {
    let Ok(scope) = SCOPE.try_with(Scope::clone) else {
        return Err(ServiceError::Internal(anyhow::anyhow!(
            "payments: a provider charge outside `charging` ({purpose})"
        )));
    };
    let tenant = w.tenant().clone();
    let key = attempt_key(&tenant, &scope.op, purpose, at, amount_minor, currency);
    if let Some(done) = w.payment_attempt(&key).await?.filter(|a| !a.is_pending()) {
        if done.status == "succeeded" && !w.use_payment_attempt(&key).await? {
            return Ok(Err(PayError::Declined("The payment could not be used; it was refunded.".into())));
        }
        return Ok(outcome(&done));
    }
    let attempt = PaymentAttempt {
        key,
        provider: at.name.clone(),
        purpose: purpose.to_string(),
        customer_ref: at.customer.clone(),
        method_ref: at.method.clone(),
        amount_minor,
        currency: currency.to_string(),
        status: "pending".into(),
        payment_ref: None,
        error_code: None,
        message: None,
        created_at: state.clock.now(),
        resolved_at: None,
    };
    scope.calls.lock().expect("calls").push(Call { attempt });
    w.hold_commit();
    Ok(Err(PayError::Pending))
}

/// A refund of a provider's payment: the recorded outcome, or a
/// rehearsal's [`PayError::Pending`] with the call noted.
pub(super) async fn refund_at_provider(
    state: &AppState,
    w: &mut Work,
    provider: &str,
    payment_ref: &str,
    amount_minor: i64,
    currency: &str,
    purpose: &str,
) -> ServiceResult<Result<Paid, PayError>> {
    let at = ProviderMethod { name: provider.into(), customer: String::new(), method: payment_ref.into() };
    charge_at_provider(state, w, &at, amount_minor, currency, purpose).await
}

/// What a recorded attempt means for the work that needed it.
fn outcome(a: &PaymentAttempt) -> Result<Paid, PayError> {
    match a.status.as_str() {
        "succeeded" => Ok(Paid { payment_ref: a.payment_ref.clone() }),
        "requires_action" => {
            Err(PayError::AuthenticationRequired { payment_ref: a.payment_ref.clone().unwrap_or_default() })
        }
        _ => Err(PayError::Declined(a.message.clone().unwrap_or_else(|| "Your card was declined.".into()))),
    }
}

/// Asks the provider for one charge: the attempt is committed first, the
/// answer after. An attempt answered before (by another pass or process)
/// is not asked again.
async fn ask(state: &AppState, tenant: &Tenant, call: Call) -> ServiceResult<()> {
    resolve(state, tenant, &call.attempt).await.map(|_| ())
}

/// Records `attempt` if new and, while it is pending, asks the provider
/// and commits the answer. Returns the attempt as it stands.
pub(super) async fn resolve(
    state: &AppState,
    tenant: &Tenant,
    attempt: &PaymentAttempt,
) -> ServiceResult<PaymentAttempt> {
    let mut attempt = state.store.begin_payment_attempt(tenant, attempt).await?;
    if !attempt.is_pending() {
        return Ok(attempt);
    }
    let Some(stripe) = crate::providers::stripe_client(state, tenant).await? else {
        attempt.status = "declined".into();
        attempt.message = Some(PayError::NotConfigured.to_string());
        attempt.resolved_at = Some(state.clock.now());
        state.store.resolve_payment_attempt(tenant, &attempt).await?;
        return Ok(attempt);
    };
    let answer = if attempt.purpose.starts_with(REFUND) {
        crate::providers::stripe::charges::refund(&stripe, &attempt).await
    } else {
        crate::providers::stripe::charges::charge(&stripe, &attempt).await
    };
    let answered = answer.map_err(|e| {
        tracing::warn!(error = %e, purpose = %attempt.purpose, "stripe: a charge has no answer yet");
        ServiceError::Unavailable("The payment provider did not answer; try again shortly.".into())
    })?;
    attempt.status = answered.status.into();
    attempt.payment_ref = answered.payment_ref;
    attempt.error_code = answered.error_code;
    attempt.message = answered.message;
    attempt.resolved_at = Some(state.clock.now());
    state.store.resolve_payment_attempt(tenant, &attempt).await?;
    Ok(attempt)
}
