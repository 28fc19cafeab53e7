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

fn condition_holds(condition: &Value, event: &RawEvent<'_>) -> bool {
    let property = condition.get("property").and_then(Value::as_str).unwrap_or("");
    let operator = condition.get("operator").and_then(Value::as_str).unwrap_or("");
    let expected = condition.get("value").unwrap_or(&Value::Null);
    let actual = event.property(property);
    match operator {
        "exists" => actual.is_some() == expected.as_bool().unwrap_or(true),
        "equals" => actual.is_some_and(|a| same(&a, expected)),
        "not_equals" => !actual.is_some_and(|a| same(&a, expected)),
        "in" => actual.is_some_and(|a| expected.as_array().is_some_and(|l| l.iter().any(|e| same(&a, e)))),
        "not_in" => !actual.is_some_and(|a| expected.as_array().is_some_and(|l| l.iter().any(|e| same(&a, e)))),
        "gt" | "gte" | "lt" | "lte" => match (actual.as_ref().and_then(number), number(expected)) {
            (Some(a), Some(e)) => match operator {
                "gt" => a > e,
                "gte" => a >= e,
                "lt" => a < e,
                _ => a <= e,
            },
            _ => false,
        },
        _ => false,
    }
}

/// Whether `event` passes a meter's `filters` (see the module docs).
pub fn matches(filters: Option<&Value>, event: &RawEvent<'_>) -> bool {
    let Some(groups) = filters.and_then(Value::as_array).filter(|g| !g.is_empty()) else { return true };
    groups.iter().any(|group| group.as_array().is_some_and(|conds| conds.iter().all(|c| condition_holds(c, event))))
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

/// The step one event makes for a meter of `function` over `field`; the
/// same rules as [`Aggregate::add`].
pub fn step(function: &str, field: Option<&str>, event: &RawEvent<'_>) -> Step {
    let value = field.and_then(|f| event.property(f));
    let number = || value.as_ref().and_then(whole);
    match function {
        "COUNT" => Step::Add(1),
        "SUM" => number().map_or(Step::Skip, Step::Add),
        "MAX" => number().map_or(Step::Skip, Step::Max),
        "LATEST" => number().map_or(Step::Skip, Step::Latest),
        "UNIQUE_COUNT" => match value {
            Some(Value::String(s)) => Step::Unique(s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Step::Unique(v.to_string()),
            _ => Step::Skip,
        },
        _ => Step::Skip,
    }
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
    /// The empty aggregate for a meter function, or `None` for an unknown one.
    pub fn new(function: &str) -> Option<Self> {
        Some(match function {
            "COUNT" => Aggregate::Count(0),
            "SUM" => Aggregate::Sum(0),
            "MAX" => Aggregate::Max(None),
            "UNIQUE_COUNT" => Aggregate::UniqueCount(HashSet::new()),
            "LATEST" => Aggregate::Latest(None),
            _ => return None,
        })
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Stepping a stored counter event by event gives what the in-memory aggregate gives.
        #[test]
        fn steps_agree_with_aggregates(values in proptest::collection::vec((0i64..50, 0i64..1000), 0..40), f in 0usize..5) {
            let function = ["COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST"][f];
            let mut agg = Aggregate::new(function).unwrap();
            let (mut value, mut at, mut seen) = (0i64, i64::MIN, HashSet::new());
            for (v, secs) in &values {
                let p = props(json!({"n": v}));
                let e = ev("x", &p, *secs);
                agg.add(Some("n"), &e);
                match step(function, Some("n"), &e) {
                    Step::Add(n) => value += n,
                    Step::Max(n) => value = if at == i64::MIN { n } else { value.max(n) },
                    Step::Latest(n) => if *secs >= at { value = n },
                    Step::Unique(s) => if seen.insert(s) { value += 1 },
                    Step::Skip => {}
                }
                at = at.max(*secs);
            }
            prop_assert_eq!(agg.value(), value);
        }
    }
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ev<'a>(name: &'a str, p: &'a Map<String, Value>, secs: i64) -> RawEvent<'a> {
        RawEvent {
            event_name: name,
            properties: p,
            timestamp: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn filters_and_groups() {
        let filters = json!([
            [{"property": "event_name", "operator": "equals", "value": "llm.call"},
             {"property": "model", "operator": "in", "value": ["a", "b"]}],
            [{"property": "priority", "operator": "gte", "value": 5}]
        ]);
        let a = props(json!({"model": "a"}));
        let c = props(json!({"model": "c"}));
        let hi = props(json!({"priority": "7"}));
        let none = props(json!({}));
        assert!(matches(Some(&filters), &ev("llm.call", &a, 0)));
        assert!(!matches(Some(&filters), &ev("llm.call", &c, 0)), "AND inside a group");
        assert!(matches(Some(&filters), &ev("other", &hi, 0)), "OR across groups; numeric strings compare as numbers");
        assert!(!matches(Some(&filters), &ev("other", &none, 0)));
        assert!(matches(None, &ev("anything", &none, 0)));
        assert!(matches(Some(&json!([])), &ev("anything", &none, 0)));
        let exists = json!([[{"property": "model", "operator": "exists"}]]);
        let absent = json!([[{"property": "model", "operator": "exists", "value": false}]]);
        assert!(matches(Some(&exists), &ev("x", &a, 0)) && !matches(Some(&exists), &ev("x", &none, 0)));
        assert!(matches(Some(&absent), &ev("x", &none, 0)));
        let ne = json!([[{"property": "model", "operator": "not_equals", "value": "a"}]]);
        assert!(!matches(Some(&ne), &ev("x", &a, 0)) && matches(Some(&ne), &ev("x", &none, 0)));
        let five = json!([[{"property": "n", "operator": "equals", "value": 5}]]);
        assert!(matches(Some(&five), &ev("x", &props(json!({"n": 5.0})), 0)));
    }

    #[test]
    fn aggregations() {
        let events = [
            json!({"tokens": 10, "user": "u1"}),
            json!({"tokens": "30", "user": "u2"}),
            json!({"tokens": 20, "user": "u1"}),
            json!({"user": 7}),
        ];
        let events: Vec<Map<String, Value>> = events.into_iter().map(props).collect();
        let run = |f: &str| {
            let mut a = Aggregate::new(f).unwrap();
            for (i, p) in events.iter().enumerate() {
                let field = if f == "UNIQUE_COUNT" { "user" } else { "tokens" };
                a.add(Some(field), &ev("e", p, 10 - i as i64));
            }
            a.value()
        };
        assert_eq!(run("COUNT"), 4);
        assert_eq!(run("SUM"), 60);
        assert_eq!(run("MAX"), 30);
        assert_eq!(run("UNIQUE_COUNT"), 3);
        assert_eq!(run("LATEST"), 10, "the latest by timestamp, not by arrival");
        assert!(Aggregate::new("AVG").is_none());
        let mut sum = Aggregate::new("SUM").unwrap();
        assert!(!sum.add(Some("tokens"), &ev("e", &props(json!({"tokens": 1.5})), 0)), "fractions are not whole units");
        assert_eq!(sum.value(), 0);
    }

    proptest! {
        #[test]
        fn order_does_not_matter(values in proptest::collection::vec(-1000i64..1000, 0..40), seed in 0u64..1000) {
            let events: Vec<Map<String, Value>> = values.iter().map(|v| props(json!({"n": v, "k": v % 7}))).collect();
            let mut shuffled: Vec<usize> = (0..events.len()).collect();
            shuffled.sort_by_key(|i| (*i as u64).wrapping_mul(seed.wrapping_add(7919)) % 1009);
            for f in ["COUNT", "SUM", "MAX", "UNIQUE_COUNT"] {
                let field = if f == "UNIQUE_COUNT" { "k" } else { "n" };
                let mut a = Aggregate::new(f).unwrap();
                let mut b = Aggregate::new(f).unwrap();
                for (i, p) in events.iter().enumerate() { a.add(Some(field), &ev("e", p, i as i64)); }
                for &i in &shuffled { b.add(Some(field), &ev("e", &events[i], i as i64)); }
                prop_assert_eq!(a.value(), b.value());
            }
            let mut count = Aggregate::new("COUNT").unwrap();
            let mut sum = Aggregate::new("SUM").unwrap();
            for p in &events { count.add(None, &ev("e", p, 0)); sum.add(Some("n"), &ev("e", p, 0)); }
            prop_assert_eq!(count.value(), values.len() as i64);
            prop_assert_eq!(sum.value(), values.iter().sum::<i64>());
        }
    }
}
