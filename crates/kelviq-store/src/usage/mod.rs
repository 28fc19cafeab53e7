//! Usage metering storage: counters, raw events, idempotency keys and
//! entitlement overrides. Writes go through a [`Work`], which the server's
//! usage writer commits for many requests at once (group commit).
//!
//! The dialects keep apart: `sqlite` (events with their additions left to
//! folds, and the journal connection that appends them), `postgres` (events
//! counted in the statement that stores them), `fold` (folding deferred
//! additions and taking the counters over), `owner` (PostgreSQL's usage lock).

use crate::Result;
use kelviq_core::meters::COUNTER_MAX;
use sqlx::Row;

/// Topic of usage changes; the subject is `{org}:{env}:` followed by the
/// customer ids, one per line.
pub const TOPIC_USAGE: &str = "usage";

/// A stored counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub feature: String,
    pub period_start: i64,
    pub value: i64,
    pub value_at: i64,
    pub alerts: String,
}

fn counter_from_row(r: &sqlx::any::AnyRow) -> Result<Counter> {
    // An old version could overflow a SQLite counter into a REAL: read it
    // back saturated rather than fail every read of that customer.
    let value = match r.try_get::<i64, _>("value") {
        Ok(v) => v.clamp(-COUNTER_MAX, COUNTER_MAX),
        Err(e) => match r.try_get::<f64, _>("value") {
            Ok(f) if !f.is_nan() => f.clamp(-COUNTER_MAX as f64, COUNTER_MAX as f64) as i64,
            _ => return Err(e.into()),
        },
    };
    Ok(Counter {
        feature: r.try_get("feature")?,
        period_start: r.try_get("period_start")?,
        value,
        value_at: r.try_get("value_at")?,
        alerts: r.try_get("alerts")?,
    })
}

/// What to do to a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterChange {
    Set(i64),
    Add(i64),
    /// Lowers the value by this much (a negative `DELTA` report), never below
    /// zero; an order-sensitive change, unlike an addition.
    Reduce(i64),
    Max(i64),
    /// The value of an event at this instant (microseconds); older events lose.
    Latest(i64, i64),
    /// A distinct value for a UNIQUE_COUNT meter.
    Unique(String),
}

/// The new value of a counter row that `excluded.value` adds to, saturated
/// at ±[`kelviq_core::meters::COUNTER_MAX`] (2^61) without overflowing on
/// the way: the added value is within the bound (callers clamp it), so
/// neither the limits it is compared with nor the sum of the last branch
/// can leave an `i64`, even for a row stored out of bounds by an old version.
macro_rules! saturating_counter_add {
    () => {
        "CASE WHEN usage_counters.value >= 2305843009213693952 - excluded.value THEN 2305843009213693952 \
         WHEN usage_counters.value <= -2305843009213693952 - excluded.value THEN -2305843009213693952 \
         ELSE usage_counters.value + excluded.value END"
    };
}

mod counters;
mod events;
mod fold;
pub(crate) mod journal;
pub(crate) mod owner;
mod postgres;
mod sqlite;

pub(crate) use events::write_unfolded;
pub use events::{AddRow, EventRow, StoredEvent};

/// A parsed [`TOPIC_USAGE`] or entitlements change subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSubject {
    pub org: uuid::Uuid,
    pub env: String,
    /// The process that made the change, when it says.
    pub origin: Option<String>,
    pub customers: Vec<String>,
}

pub fn change_subject(subject: &str) -> Option<ChangeSubject> {
    let mut parts = subject.splitn(3, ':');
    let org = parts.next()?.parse().ok()?;
    let env = parts.next()?.to_string();
    let mut lines = parts.next()?.split('\n').peekable();
    let origin = lines.next_if(|l| l.starts_with('@')).map(|l| l[1..].to_string());
    Some(ChangeSubject { org, env, origin, customers: lines.map(str::to_string).collect() })
}
