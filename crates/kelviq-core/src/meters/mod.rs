//! Raw-event meters: which events a meter counts (its filters) and how it
//! aggregates them (COUNT, SUM, MAX, UNIQUE_COUNT, LATEST).
//!
//! Filters are groups of conditions: conditions in a group are ANDed, groups
//! are ORed, and no filters match every event. `event_name` names the event's
//! name; any other property names an event property. A condition on a missing
//! property is false, except `not_equals`/`not_in` (true) and `exists: false`.
//! Aggregated fields count whole units: a field value must be an integer (or
//! a string holding one); events whose value is not are not counted.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;

mod meter;

pub use meter::{Aggregation, Condition, Filters, Meter, Operator};

/// The largest usage value, consume amount or numeric event property the API
/// accepts, in magnitude: 2^53 − 1, the largest integer every JSON client
/// (JavaScript's included) reads exactly. Larger ones are refused with a 400.
pub const MAX_USAGE_VALUE: i64 = 9_007_199_254_740_991;

/// Counters saturate at ±2^61: no sum of accepted values reaches it in
/// practice, and two counters add without overflowing an `i64`, so the SQL
/// that adds them never fails (PostgreSQL) and never turns REAL (SQLite).
pub const COUNTER_MAX: i64 = 1 << 61;

/// `a + b`, saturated to ±[`COUNTER_MAX`]: the one addition of counters.
pub fn add_counter(a: i64, b: i64) -> i64 {
    a.saturating_add(b).clamp(-COUNTER_MAX, COUNTER_MAX)
}

/// Whether a number is within ±[`MAX_USAGE_VALUE`] (so a JSON number that is
/// not an integer, or is one beyond the bound, is out).
pub fn usage_value_in_bounds(n: &serde_json::Number) -> bool {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.unsigned_abs() <= MAX_USAGE_VALUE as u64,
        (None, Some(f)) => f.is_finite() && f.abs() <= MAX_USAGE_VALUE as f64,
        _ => false,
    }
}

/// The first number in `properties` (at any depth) beyond ±[`MAX_USAGE_VALUE`],
/// named by its path below `properties` (`tokens`, `usage.input`, `list.2`).
pub fn oversized_property(properties: &Map<String, Value>) -> Option<String> {
    // The path is built only for the number found (segments in reverse).
    fn walk(v: &Value) -> Option<Vec<String>> {
        match v {
            Value::Number(n) => (!usage_value_in_bounds(n)).then(Vec::new),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| {
                walk(x).map(|mut path| {
                    path.push(i.to_string());
                    path
                })
            }),
            Value::Object(m) => m.iter().find_map(|(k, x)| {
                walk(x).map(|mut path| {
                    path.push(k.clone());
                    path
                })
            }),
            _ => None,
        }
    }
    properties.iter().find_map(|(k, v)| {
        walk(v).map(|mut path| {
            path.push(k.clone());
            path.reverse();
            path.join(".")
        })
    })
}

/// One raw event as a meter sees it.
#[derive(Debug, Clone)]
pub struct RawEvent<'a> {
    pub event_name: &'a str,
    pub properties: &'a Map<String, Value>,
    pub timestamp: DateTime<Utc>,
}

impl RawEvent<'_> {
    fn property(&self, name: &str) -> Option<Value> {
        if name == "event_name" {
            Some(Value::String(self.event_name.to_string()))
        } else {
            self.properties.get(name).filter(|v| !v.is_null()).cloned()
        }
    }
}

/// Numbers compare by value (an integer 5 equals 5.0); strings and booleans as themselves.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An integer field value within ±[`MAX_USAGE_VALUE`], or `None` if the
/// event has none (a string holding a larger integer does not count).
fn whole(v: &Value) -> Option<i64> {
    let n = match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (n.unsigned_abs() <= MAX_USAGE_VALUE as u64).then_some(n)
}

/// What one matching event does to a meter's stored counter, so that the
/// aggregate can be kept incrementally in a database row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add to the value (COUNT, SUM).
    Add(i64),
    /// Raise the value to at least this (MAX).
    Max(i64),
    /// Take this value if the event is not older than the stored one (LATEST).
    Latest(i64),
    /// Count this value once per period (UNIQUE_COUNT).
    Unique(String),
    /// The event does not count (its field is missing or not a whole number).
    Skip,
}

/// A meter's running aggregate over one period.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Count(i64),
    Sum(i64),
    Max(Option<i64>),
    UniqueCount(HashSet<String>),
    /// The value of the latest event (by timestamp; a later arrival wins a tie).
    Latest(Option<(DateTime<Utc>, i64)>),
}

impl Aggregate {
    /// The empty aggregate of an aggregation.
    pub fn of(aggregation: Aggregation) -> Self {
        match aggregation {
            Aggregation::Count => Aggregate::Count(0),
            Aggregation::Sum => Aggregate::Sum(0),
            Aggregation::Max => Aggregate::Max(None),
            Aggregation::UniqueCount => Aggregate::UniqueCount(HashSet::new()),
            Aggregation::Latest => Aggregate::Latest(None),
        }
    }

    /// Adds one (matching) event; `field` is the aggregated property.
    /// Returns whether the event counted.
    pub fn add(&mut self, field: Option<&str>, event: &RawEvent<'_>) -> bool {
        let value = field.and_then(|f| event.property(f));
        match self {
            Aggregate::Count(n) => {
                *n = add_counter(*n, 1);
                true
            }
            Aggregate::Sum(total) => match value.as_ref().and_then(whole) {
                Some(v) => {
                    *total = add_counter(*total, v);
                    true
                }
                None => false,
            },
            Aggregate::Max(max) => match value.as_ref().and_then(whole) {
                Some(v) => {
                    *max = Some(max.map_or(v, |m| m.max(v)));
                    true
                }
                None => false,
            },
            Aggregate::UniqueCount(seen) => match value {
                Some(Value::String(s)) => {
                    seen.insert(s);
                    true
                }
                Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                    seen.insert(v.to_string());
                    true
                }
                _ => false,
            },
            Aggregate::Latest(latest) => match value.as_ref().and_then(whole) {
                Some(v) => {
                    if latest.is_none_or(|(at, _)| event.timestamp >= at) {
                        *latest = Some((event.timestamp, v));
                    }
                    true
                }
                None => false,
            },
        }
    }

    /// The meter's current usage.
    pub fn value(&self) -> i64 {
        match self {
            Aggregate::Count(n) | Aggregate::Sum(n) => *n,
            Aggregate::Max(m) => m.unwrap_or(0),
            Aggregate::UniqueCount(s) => s.len() as i64,
            Aggregate::Latest(l) => l.map_or(0, |(_, v)| v),
        }
    }
}

#[cfg(test)]
mod tests;
