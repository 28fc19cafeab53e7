//! Quotes, the subscription state machine and plan changes, by example.

use super::*;
use crate::plans::{ChargePeriod, PlanVersion};
use crate::plans::{PlanFields, PlanStatus};
use chrono::{DateTime, Utc};
use serde_json::json;
use serde_json::Value;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn plan(prices: Vec<Value>) -> PlanVersion {
    PlanVersion {
        id: uuid::Uuid::new_v4(),
        identifier: "pro".into(),
        version: 1,
        product_id: uuid::Uuid::new_v4(),
        name: "Pro".into(),
        fields: PlanFields::default(),
        prices: prices.into_iter().map(|p| serde_json::from_value(p).expect("a stored price")).collect(),
        entitlements: vec![],
        status: PlanStatus::Published,
        created_at: at("2026-01-01T00:00:00Z"),
        modified_at: at("2026-01-01T00:00:00Z"),
        published_at: None,
        archived_at: None,
    }
}

fn paid() -> Value {
    json!({"price_type": "PAID", "currency": "USD", "enabled": true, "free_trial": true, "trial_period": 14,
    "tax_behavior": "EXCLUSIVE",
    "charge_catalog_price": [
        {"feature": null, "price_model": "FLAT", "payment_type": "ADVANCE_COMMITMENT",
         "charges": [{"charge_period": "MONTHLY", "amount_minor": 4900}, {"charge_period": "YEARLY", "amount_minor": 49000}]},
        {"feature": "f-seats", "price_model": "FLAT", "payment_type": "ADVANCE_COMMITMENT",
         "charges": [{"charge_period": "MONTHLY", "amount_minor": 1000, "advanced": {"min_quantity": 1, "max_quantity": 50}}]}
    ]})
}

fn ident(id: &str) -> Option<String> {
    (id == "f-seats").then(|| "seats".to_string())
}

#[test]
fn quotes() {
    let p = plan(vec![paid()]);
    let q =
        quote(&p, ChargePeriod::Monthly, None, &[FeatureQuantity { identifier: "seats".into(), quantity: 5 }], &ident)
            .unwrap();
    assert_eq!((q.total_minor, q.trial_days, q.currency.as_str()), (4900 + 5000, 14, "USD"));
    let q = quote(&p, ChargePeriod::Monthly, Some("usd"), &[], &ident).unwrap();
    assert_eq!(q.total_minor, 4900 + 1000, "the minimum quantity by default");
    assert_eq!(quote(&p, ChargePeriod::Yearly, None, &[], &ident).unwrap().total_minor, 49000);
    assert_eq!(quote(&p, ChargePeriod::Weekly, None, &[], &ident).unwrap_err().field, "charge_period");
    assert_eq!(quote(&p, ChargePeriod::Monthly, Some("EUR"), &[], &ident).unwrap_err().field, "currency_code");
    let too_many = [FeatureQuantity { identifier: "seats".into(), quantity: 51 }];
    assert_eq!(quote(&p, ChargePeriod::Monthly, None, &too_many, &ident).unwrap_err().field, "features");
    let unknown = [FeatureQuantity { identifier: "nope".into(), quantity: 1 }];
    assert_eq!(quote(&p, ChargePeriod::Monthly, None, &unknown, &ident).unwrap_err().field, "features");
    let free = plan(vec![json!({"price_type": "FREE", "currency": "USD", "enabled": true})]);
    assert!(quote(&free, ChargePeriod::OneTime, None, &[], &ident).unwrap().free);
    assert_eq!(quote(&free, ChargePeriod::Monthly, None, &[], &ident).unwrap_err().field, "charge_period");
    assert_eq!(quote(&plan(vec![]), ChargePeriod::Monthly, None, &[], &ident).unwrap_err().field, "plan_identifier");
}

#[test]
fn fees_and_dunning() {
    let f = FeeSchedule::default();
    let lines = f.fees(10_000, Sale::Subscription);
    assert_eq!(lines.iter().map(|l| l.value_minor).collect::<Vec<_>>(), [350, 30, 50]);
    assert!(f.fees(0, Sale::Subscription).is_empty());
    assert_eq!(bp_text(350), "3.5");
    assert_eq!(bp_text(50), "0.5");
    assert_eq!(bp_text(400), "4");
    let d = Dunning::default();
    let t = at("2026-03-01T00:00:00Z");
    assert_eq!(d.next_retry(t, 0), Some(at("2026-03-02T18:00:00Z")));
    assert_eq!(d.next_retry(t, 7), Some(at("2026-03-15T00:00:00Z")));
    assert_eq!(d.next_retry(t, 8), None);
    assert_eq!(amount_text(4900, "usd"), "49.00");
    assert_eq!(amount_text(500, "JPY"), "500");
}

fn monthly_sub(amount: i64) -> Subscription {
    let start = at("2026-04-01T00:00:00Z");
    let s = Subscription::start(
        uuid::Uuid::new_v4(),
        "c",
        &plan(vec![]),
        ChargePeriod::Monthly,
        "USD",
        amount,
        vec![],
        start,
    );
    assert_eq!(s.period_end, Some(at("2026-05-01T00:00:00Z")));
    s
}

#[test]
fn plan_changes() {
    let half = at("2026-04-16T00:00:00Z");
    let sub = monthly_sub(10_000);
    // $100 → $200 at half the period (spec §4.7): collect $50 now.
    let up = plan_change(&sub, 20_000, ChargePeriod::Monthly, None, half);
    assert_eq!((up.now, up.charge_now_minor, up.credit_minor, up.next_invoice_minor), (true, 5_000, 0, 20_000));
    // The same on the next invoice.
    let next = plan_change(&sub, 20_000, ChargePeriod::Monthly, Some(Proration::ProrateNextInvoice), half);
    assert_eq!((next.charge_now_minor, next.debit_minor, next.next_invoice_minor), (0, 5_000, 25_000));
    // No proration: switch, nothing owed either way.
    let none = plan_change(&sub, 20_000, ChargePeriod::Monthly, Some(Proration::NoProration), half);
    assert_eq!((none.now, none.charge_now_minor, none.credit_minor, none.debit_minor), (true, 0, 0, 0));
    // A downgrade waits for the period end, unless a behaviour is asked for.
    let down = plan_change(&sub, 5_000, ChargePeriod::Monthly, None, half);
    assert_eq!((down.now, down.charge_now_minor), (false, 0));
    let down_now = plan_change(&sub, 5_000, ChargePeriod::Monthly, Some(Proration::ImmediateCharge), half);
    assert_eq!((down_now.now, down_now.charge_now_minor, down_now.credit_minor), (true, 0, 2_500));
    assert_eq!(down_now.next_invoice_minor, 2_500, "the credit comes off the next invoice");
    // Monthly → yearly restarts the cycle: the year now, less the unused month.
    let yearly = plan_change(&sub, 100_000, ChargePeriod::Yearly, None, half);
    assert_eq!((yearly.restart_cycle, yearly.charge_now_minor), (true, 95_000));
    let yearly_plain = plan_change(&sub, 100_000, ChargePeriod::Yearly, Some(Proration::NoProration), half);
    assert_eq!(yearly_plain.charge_now_minor, 100_000);
    // Existing credit pays first.
    let mut credited = monthly_sub(10_000);
    credited.credit_minor = 1_000;
    assert_eq!(plan_change(&credited, 20_000, ChargePeriod::Monthly, None, half).charge_now_minor, 4_000);
    // A trial changes plan without a charge.
    let mut trialing = monthly_sub(10_000);
    trialing.status = SubStatus::Trialing;
    assert_eq!(plan_change(&trialing, 20_000, ChargePeriod::Monthly, None, half).charge_now_minor, 0);
}

#[test]
fn what_falls_due() {
    let mut s = monthly_sub(1_000);
    assert_eq!(s.next_due(), Some((at("2026-05-01T00:00:00Z"), Due::Renew)));
    s.cancel_at = Some(at("2026-05-01T00:00:00Z"));
    assert_eq!(s.next_due(), Some((at("2026-05-01T00:00:00Z"), Due::Cancel)), "a cancellation at the renewal wins");
    s.cancel_at = Some(at("2026-07-01T00:00:00Z"));
    assert_eq!(s.next_due().unwrap().1, Due::Renew, "a later cancellation waits");
    s.status = SubStatus::Canceled;
    assert_eq!(s.next_due(), None);
    let mut t = monthly_sub(1_000);
    t.status = SubStatus::Trialing;
    t.trial_end = Some(at("2026-04-15T00:00:00Z"));
    assert_eq!(t.next_due(), Some((at("2026-04-15T00:00:00Z"), Due::TrialEnd)));
    assert_eq!(t.trial_days_remaining(at("2026-04-01T12:00:00Z")), 14);
}

#[test]
fn a_trial_counts_usage_from_its_start() {
    let mut t = monthly_sub(1_000);
    assert_eq!(t.usage_anchor(), t.anchor_at);
    t.status = SubStatus::Trialing;
    (t.anchor_at, t.period_start) = (at("2026-04-15T00:00:00Z"), Some(at("2026-04-01T00:00:00Z")));
    assert_eq!(t.usage_anchor(), at("2026-04-01T00:00:00Z"), "the trial is a period of its own");
    t.status = SubStatus::Active;
    assert_eq!(t.usage_anchor(), at("2026-04-15T00:00:00Z"), "after it, billing periods count from its end");
}

mod transitions {
    use super::*;
    use proptest::prelude::*;

    const PERIODS: [ChargePeriod; 4] =
        [ChargePeriod::Monthly, ChargePeriod::Yearly, ChargePeriod::Weekly, ChargePeriod::Daily];

    fn subscription(period: ChargePeriod, start_days: i64) -> Subscription {
        let p = plan(vec![]);
        let start = at("2026-01-01T00:00:00Z") + chrono::Duration::days(start_days);
        Subscription::start(uuid::Uuid::new_v4(), "ann", &p, period, "USD", 1000, vec![], start)
    }

    fn dunning(retries: u32, grace_days: i64) -> Dunning {
        Dunning { grace_days, retries }
    }

    proptest! {
        /// A restarted cycle's first period starts now, and the next thing
        /// due is its renewal at the period's end.
        #[test]
        fn a_restart_starts_the_cycle_now(p in 0usize..4, start in 0i64..400, after_secs in 1i64..40_000_000) {
            let mut s = subscription(PERIODS[p], start);
            let now = s.started_at + chrono::Duration::seconds(after_secs);
            s.restart_cycle(now);
            prop_assert_eq!(s.period_start, Some(now));
            prop_assert_eq!(s.period_index, 0);
            let end = s.period_end.unwrap();
            prop_assert!(end > now);
            prop_assert_eq!(s.next_due(), Some((end, Due::Renew)));
        }

        /// Past due keeps access, retries first within the grace period, and
        /// with no retries left nothing more falls due but a cancellation.
        #[test]
        fn past_due_keeps_access_and_retries(retries in 0u32..6, grace in 0i64..30, secs in 0i64..1_000_000) {
            let mut s = subscription(ChargePeriod::Monthly, 0);
            let now = s.started_at + chrono::Duration::seconds(secs);
            s.fall_past_due(now, "ORD-1", &dunning(retries, grace));
            prop_assert_eq!(s.status, SubStatus::PastDue);
            prop_assert!(s.status.grants());
            prop_assert_eq!(s.unpaid_order.as_deref(), Some("ORD-1"));
            match s.next_due() {
                Some((when, Due::Retry)) => {
                    prop_assert!(retries > 0 && grace > 0);
                    prop_assert!(when > now && when <= now + chrono::Duration::days(grace));
                }
                None => prop_assert!(retries == 0 || grace <= 0),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        /// Of a superseded subscription and its successor, exactly one
        /// grants, and the successor keeps a trial going.
        #[test]
        fn exactly_one_of_a_supersession_grants(trialing in any::<bool>(), p in 0usize..4) {
            let mut old = subscription(PERIODS[p], 0);
            if trialing {
                old.status = SubStatus::Trialing;
            }
            let mut next = subscription(PERIODS[p], 10);
            next.status = SubStatus::Incomplete;
            let now = next.started_at;
            old.supersede(&mut next, now);
            prop_assert!(!old.status.grants() && next.status.grants());
            prop_assert_eq!(old.superseded_by, Some(next.id));
            prop_assert_eq!(next.status == SubStatus::Trialing, trialing);
            prop_assert!(old.next_due().is_none());
        }

        /// An ended subscription grants nothing and has nothing due; ending
        /// it again keeps the first cancellation's time and reason.
        #[test]
        fn ending_is_final(p in 0usize..4, first in 0i64..1000, later in 0i64..1000) {
            let mut s = subscription(PERIODS[p], 0);
            let t1 = s.started_at + chrono::Duration::hours(first);
            s.end(t1, "first");
            prop_assert_eq!(s.status, SubStatus::Canceled);
            prop_assert!(!s.status.grants());
            prop_assert!(s.next_due().is_none());
            let t2 = t1 + chrono::Duration::hours(later);
            s.end(t2, "second");
            prop_assert_eq!(s.canceled_at, Some(t1));
            prop_assert_eq!(s.cancellation_reason.as_deref(), Some("first"));
            prop_assert_eq!(s.ended_at, Some(t2));
        }

        /// Adopting a plan takes its identity, period, quantities and price,
        /// and leaves the cycle alone.
        #[test]
        fn adopting_a_plan_keeps_the_cycle(p in 0usize..4, q in 0usize..4, amount in 0i64..1_000_000) {
            let mut s = subscription(PERIODS[p], 0);
            let before = (s.anchor_at, s.period_start, s.period_end, s.status);
            let mut to = plan(vec![]);
            to.identifier = "team".into();
            to.version = 3;
            let features = vec![FeatureQuantity { identifier: "seats".into(), quantity: 5 }];
            s.adopt_plan(Adoption { plan: &to, period: PERIODS[q], features: features.clone(), amount_minor: amount });
            prop_assert_eq!((s.plan_id, s.plan_identifier.as_str(), s.plan_version), (to.id, "team", 3));
            prop_assert_eq!(s.charge_period, PERIODS[q]);
            prop_assert_eq!(s.features, features);
            prop_assert_eq!(s.amount_minor, amount);
            prop_assert_eq!((s.anchor_at, s.period_start, s.period_end, s.status), before);
        }
    }
}
