//! Meters, by example and by property.

use super::*;
use proptest::prelude::*;
use serde_json::json;

/// Whether `filters` (as a feature stores them) let `event` through.
fn matches(filters: Option<&Value>, event: &RawEvent<'_>) -> bool {
    Filters::parse(filters).matches(event)
}

proptest! {
    /// Stepping a stored counter event by event gives what the in-memory aggregate gives.
    #[test]
    fn steps_agree_with_aggregates(values in proptest::collection::vec((0i64..50, 0i64..1000), 0..40), f in 0usize..5) {
        let meter = Meter { aggregation: Aggregation::ALL[f], field: Some("n".into()), filters: Filters::default() };
        let mut agg = meter.aggregate();
        let (mut value, mut at, mut seen) = (0i64, i64::MIN, HashSet::new());
        for (v, secs) in &values {
            let p = props(json!({"n": v}));
            let e = ev("x", &p, *secs);
            agg.add(Some("n"), &e);
            match meter.step(&e) {
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
fn props(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn ev<'a>(name: &'a str, p: &'a Map<String, Value>, secs: i64) -> RawEvent<'a> {
    RawEvent { event_name: name, properties: p, timestamp: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap() }
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
        let mut a = Aggregate::of(Aggregation::parse(f).unwrap());
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
    assert!(Aggregation::parse("AVG").is_none());
    let mut sum = Aggregate::of(Aggregation::Sum);
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
            let mut a = Aggregate::of(Aggregation::parse(f).unwrap());
            let mut b = Aggregate::of(Aggregation::parse(f).unwrap());
            for (i, p) in events.iter().enumerate() { a.add(Some(field), &ev("e", p, i as i64)); }
            for &i in &shuffled { b.add(Some(field), &ev("e", &events[i], i as i64)); }
            prop_assert_eq!(a.value(), b.value());
        }
        let mut count = Aggregate::of(Aggregation::Count);
        let mut sum = Aggregate::of(Aggregation::Sum);
        for p in &events { count.add(None, &ev("e", p, 0)); sum.add(Some("n"), &ev("e", p, 0)); }
        prop_assert_eq!(count.value(), values.len() as i64);
        prop_assert_eq!(sum.value(), values.iter().sum::<i64>());
    }
}

/// A condition of the generated filters: a property of the generated events,
/// an operator and a value.
fn condition() -> impl Strategy<Value = Value> {
    let property = prop_oneof![Just("a"), Just("b"), Just("event_name")];
    let operator = prop_oneof![
        Just("exists"),
        Just("equals"),
        Just("not_equals"),
        Just("in"),
        Just("not_in"),
        Just("gt"),
        Just("gte"),
        Just("lt"),
        Just("lte"),
        Just("like")
    ];
    let value = prop_oneof![
        (0i64..4).prop_map(|n| json!(n)),
        Just(json!("x")),
        Just(json!(true)),
        proptest::collection::vec(0i64..4, 0..3).prop_map(|l| json!(l)),
    ];
    (property, operator, value).prop_map(|(p, o, v)| json!({"property": p, "operator": o, "value": v}))
}

fn event_properties() -> impl Strategy<Value = Map<String, Value>> {
    let v = prop_oneof![Just(None), (0i64..4).prop_map(|n| Some(json!(n))), Just(Some(json!("x")))];
    (v.clone(), v).prop_map(|(a, b)| {
        let mut m = Map::new();
        if let Some(a) = a {
            m.insert("a".into(), a);
        }
        if let Some(b) = b {
            m.insert("b".into(), b);
        }
        m
    })
}

proptest! {
    /// Groups are ORed: filters match exactly when one of their groups
    /// alone does; conditions are ANDed within a group.
    #[test]
    fn groups_or_conditions_and(groups in proptest::collection::vec(proptest::collection::vec(condition(), 0..3), 1..4), p in event_properties()) {
        let e = ev("x", &p, 0);
        let whole = matches(Some(&json!(groups)), &e);
        let any = groups.iter().any(|g| matches(Some(&json!([g])), &e));
        prop_assert_eq!(whole, any);
        for g in &groups {
            let all = g.iter().all(|c| matches(Some(&json!([[c]])), &e));
            prop_assert_eq!(matches(Some(&json!([g])), &e), all);
        }
    }

    /// `not_equals` and `not_in` are the negations of `equals` and `in`;
    /// `in` one value is `equals` it; `gt` is `lte` negated when both sides are numbers.
    #[test]
    fn operators_are_consistent(n in 0i64..4, v in 0i64..4, present in any::<bool>()) {
        let mut m = Map::new();
        if present {
            m.insert("a".into(), json!(n));
        }
        let e = ev("x", &m, 0);
        let holds = |op: &str, value: Value| matches(Some(&json!([[{"property": "a", "operator": op, "value": value}]])), &e);
        prop_assert_eq!(holds("not_equals", json!(v)), !holds("equals", json!(v)));
        prop_assert_eq!(holds("not_in", json!([v])), !holds("in", json!([v])));
        prop_assert_eq!(holds("in", json!([v])), holds("equals", json!(v)));
        if present {
            prop_assert_eq!(holds("gt", json!(v)), !holds("lte", json!(v)));
            prop_assert_eq!(holds("lt", json!(v)), !holds("gte", json!(v)));
        } else {
            prop_assert!(!holds("gt", json!(v)) && !holds("lte", json!(v)));
        }
        prop_assert!(!holds("like", json!(v)), "an unknown operator never holds");
    }

    /// A meter read from its document aggregates as its function says.
    #[test]
    fn meters_read_back(f in 0usize..5, field in proptest::option::of(Just("n"))) {
        let a = Aggregation::ALL[f];
        let doc = json!({"aggregation": {"function": a.as_str(), "field": field}, "filters": []});
        let m = Meter::parse(&doc).unwrap();
        prop_assert_eq!(m.aggregation, a);
        prop_assert_eq!(m.field.as_deref(), field);
        prop_assert!(m.filters.groups.is_empty());
    }
}
