//! What a request asks of the usage writer, and what it answers.

use chrono::{DateTime, Utc};
use kelviq_store::{CounterChange, StoredEvent};
use serde_json::Value;

/// A feature's usage-alert settings, for the writer to check crossings.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub kind: String,
    pub thresholds: Vec<i64>,
    pub limit: Option<i64>,
    pub feature: Value,
    pub subscription_id: Option<uuid::Uuid>,
    pub period_end: Option<DateTime<Utc>>,
}

/// One counter a request changes.
#[derive(Debug, Clone)]
pub struct Target {
    pub feature: String,
    pub period_start: i64,
    pub change: CounterChange,
    pub alerts: Option<AlertSpec>,
}

/// A validated raw event.
#[derive(Debug, Clone)]
pub struct EventData {
    pub key: String,
    pub event_name: String,
    pub at: DateTime<Utc>,
    pub resource_id: Option<String>,
    /// The properties, as JSON text.
    pub properties: String,
}

/// What a request asks of the writer.
#[derive(Debug)]
pub enum Op {
    /// A raw event: stored once per key; counted when it is new.
    Event { event: EventData, targets: Vec<Target> },
    /// A usage report (or an admin reset), optionally deduplicated by key;
    /// the answer is kept with the key.
    Report { key: Option<String>, targets: Vec<Target>, response: Value },
    /// Deduct `value` if the limit allows it.
    Consume(ConsumeOp),
}

#[derive(Debug)]
pub struct ConsumeOp {
    pub key: String,
    pub feature: String,
    pub period_start: i64,
    pub value: i64,
    pub limit: Option<i64>,
    pub hard: bool,
    pub alerts: Option<AlertSpec>,
    pub response: Value,
}

/// One request of a job.
#[derive(Debug)]
pub struct Item {
    pub customer_id: String,
    pub op: Op,
}

/// A counter's new state: its value, or (when other changes may not be
/// known to this process) how much was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Value(i64),
    Delta(i64),
}

/// What the writer did with one item.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub duplicate: bool,
    /// Reports and consumes: the answer (the first one, for a repeated key).
    pub response: Value,
    /// Events with a repeated key: the event as first received.
    pub original: Option<StoredEvent>,
    /// An event's key was first used for another event (see [`same_event`]):
    /// nothing was counted, and the request is refused.
    pub key_reused: bool,
    /// (feature, period start, change) of every counter changed.
    pub counters: Vec<(String, i64, Counted)>,
}

impl Outcome {
    pub(super) fn fresh(response: Value, counters: Vec<(String, i64, Counted)>) -> Outcome {
        Outcome { duplicate: false, response, original: None, key_reused: false, counters }
    }

    pub(super) fn repeated(response: Value, original: Option<StoredEvent>) -> Outcome {
        Outcome { duplicate: true, response, original, key_reused: false, counters: Vec::new() }
    }
}

/// Whether an event sent again with its key is the one first stored under
/// it: the same customer, name, resource and properties (compared as maps
/// when their texts differ). Not its time: a client that retries may stamp
/// the event again.
pub(super) fn same_event(original: &StoredEvent, item: &Item) -> bool {
    let Op::Event { event, .. } = &item.op else { return false };
    let map = |text: &str| serde_json::from_str::<serde_json::Map<String, Value>>(text).ok();
    original.customer_id == item.customer_id
        && original.event_name == event.event_name
        && original.resource_id == event.resource_id
        && (original.properties == event.properties
            || map(&original.properties).is_some_and(|p| Some(p) == map(&event.properties)))
}
