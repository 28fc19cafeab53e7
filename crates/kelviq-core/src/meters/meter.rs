//! A RAW_EVENTS meter, typed: read once from its feature's `meter` document
//! when the catalog loads, then matched against every event without
//! looking at JSON again.

use super::{same, whole, Aggregate, RawEvent, Step};
use serde_json::Value;

/// How a meter aggregates the events it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Count,
    Sum,
    Max,
    UniqueCount,
    Latest,
}

impl Aggregation {
    pub const ALL: [Aggregation; 5] =
        [Aggregation::Count, Aggregation::Sum, Aggregation::Max, Aggregation::UniqueCount, Aggregation::Latest];

    pub fn parse(function: &str) -> Option<Aggregation> {
        Aggregation::ALL.into_iter().find(|a| a.as_str() == function)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Count => "COUNT",
            Aggregation::Sum => "SUM",
            Aggregation::Max => "MAX",
            Aggregation::UniqueCount => "UNIQUE_COUNT",
            Aggregation::Latest => "LATEST",
        }
    }
}

/// A filter condition's test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Exists,
    Equals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "exists" => Operator::Exists,
            "equals" => Operator::Equals,
            "not_equals" => Operator::NotEquals,
            "in" => Operator::In,
            "not_in" => Operator::NotIn,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            _ => return None,
        })
    }
}

/// One condition of a filter group.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// `event_name`, or the name of an event property.
    pub property: String,
    /// `None`: an operator this version does not know, which never holds.
    pub operator: Option<Operator>,
    pub value: Value,
    /// The value as a number, for the comparisons.
    number: Option<f64>,
}

impl Condition {
    pub fn new(property: impl Into<String>, operator: Option<Operator>, value: Value) -> Condition {
        let number = super::number(&value);
        Condition { property: property.into(), operator, value, number }
    }

    fn parse(c: &Value) -> Condition {
        Condition::new(
            c.get("property").and_then(Value::as_str).unwrap_or(""),
            c.get("operator").and_then(Value::as_str).and_then(Operator::parse),
            c.get("value").cloned().unwrap_or(Value::Null),
        )
    }

    /// Whether the condition holds for `event` (see the module docs of
    /// [`crate::meters`] for missing properties).
    pub fn holds(&self, event: &RawEvent<'_>) -> bool {
        let Some(operator) = self.operator else { return false };
        let actual = event.property(&self.property);
        let listed = |a: &Value| self.value.as_array().is_some_and(|l| l.iter().any(|e| same(a, e)));
        match operator {
            Operator::Exists => actual.is_some() == self.value.as_bool().unwrap_or(true),
            Operator::Equals => actual.is_some_and(|a| same(&a, &self.value)),
            Operator::NotEquals => !actual.is_some_and(|a| same(&a, &self.value)),
            Operator::In => actual.is_some_and(|a| listed(&a)),
            Operator::NotIn => !actual.is_some_and(|a| listed(&a)),
            Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
                match (actual.as_ref().and_then(super::number), self.number) {
                    (Some(a), Some(e)) => match operator {
                        Operator::Gt => a > e,
                        Operator::Gte => a >= e,
                        Operator::Lt => a < e,
                        _ => a <= e,
                    },
                    _ => false,
                }
            }
        }
    }
}

/// A meter's filters: the conditions of a group are ANDed, the groups ORed;
/// none match every event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub groups: Vec<Vec<Condition>>,
}

impl Filters {
    /// Reads `filters` (an array of arrays of conditions). A group that is
    /// not an array never matches; anything but a non-empty array is no filter.
    pub fn parse(filters: Option<&Value>) -> Filters {
        let Some(groups) = filters.and_then(Value::as_array) else { return Filters::default() };
        let groups = groups
            .iter()
            .map(|g| match g.as_array() {
                Some(conds) => conds.iter().map(Condition::parse).collect(),
                // Never matches: a condition no version knows.
                None => vec![Condition::new("", None, Value::Null)],
            })
            .collect();
        Filters { groups }
    }

    pub fn matches(&self, event: &RawEvent<'_>) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g.iter().all(|c| c.holds(event)))
    }
}

/// A RAW_EVENTS meter: which events it counts and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    pub aggregation: Aggregation,
    /// The aggregated property (all but COUNT).
    pub field: Option<String>,
    pub filters: Filters,
}

impl Meter {
    /// Reads a feature's `meter` document (`{aggregation: {function, field},
    /// filters}`); `None` when it names no aggregation this version knows.
    pub fn parse(meter: &Value) -> Option<Meter> {
        let aggregation = Aggregation::parse(meter["aggregation"]["function"].as_str()?)?;
        Some(Meter {
            aggregation,
            field: meter["aggregation"]["field"].as_str().map(str::to_string),
            filters: Filters::parse(meter.get("filters")),
        })
    }

    pub fn matches(&self, event: &RawEvent<'_>) -> bool {
        self.filters.matches(event)
    }

    /// What one matching event does to the meter's stored counter.
    pub fn step(&self, event: &RawEvent<'_>) -> Step {
        let value = self.field.as_deref().and_then(|f| event.property(f));
        let number = || value.as_ref().and_then(whole);
        match self.aggregation {
            Aggregation::Count => Step::Add(1),
            Aggregation::Sum => number().map_or(Step::Skip, Step::Add),
            Aggregation::Max => number().map_or(Step::Skip, Step::Max),
            Aggregation::Latest => number().map_or(Step::Skip, Step::Latest),
            Aggregation::UniqueCount => match value {
                Some(Value::String(s)) => Step::Unique(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Step::Unique(v.to_string()),
                _ => Step::Skip,
            },
        }
    }

    /// The meter's empty aggregate over one period.
    pub fn aggregate(&self) -> Aggregate {
        Aggregate::of(self.aggregation)
    }
}
