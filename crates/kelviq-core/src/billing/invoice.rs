//! Invoices: the document of what a customer owes for a period, its lines
//! and totals, and the usage lines billed in arrears.

use super::{InvoiceStatus, Line, LineKind};
use crate::money::PriceModel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An issued invoice. Its totals are always those of its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// `INV-YYYYMMDDHHMMSS-XXXXX`, the id its order shows as `invoiceId`.
    pub id: String,
    /// Sequential per environment: [`invoice_number`].
    pub number: String,
    pub status: InvoiceStatus,
    pub currency: String,
    pub customer_uuid: uuid::Uuid,
    pub customer_id: String,
    pub subscription_id: Option<uuid::Uuid>,
    pub order_id: String,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub lines: Vec<Line>,
    pub totals: Totals,
    pub amount_paid_minor: i64,
    pub billing_address: Option<crate::customer::BillingAddress>,
    pub due_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

impl Invoice {
    /// What is still owed: nothing once paid, voided or written off.
    pub fn amount_due_minor(&self) -> i64 {
        match self.status {
            InvoiceStatus::Void | InvoiceStatus::Uncollectible => 0,
            _ => (self.totals.total_minor - self.amount_paid_minor).max(0),
        }
    }

    /// Whether it may still be voided: not once money was taken for it.
    pub fn voidable(&self) -> bool {
        matches!(self.status, InvoiceStatus::Draft | InvoiceStatus::Open | InvoiceStatus::PaymentFailed)
            && self.amount_paid_minor == 0
    }
}

/// An invoice's totals, each the sum of its kind of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Every line that charges (base, quantities, usage, prorations).
    pub subtotal_minor: i64,
    /// Discounts, as a positive amount.
    pub discount_minor: i64,
    pub tax_minor: i64,
    /// The customer's balance applied, as a positive amount.
    pub credit_applied_minor: i64,
    /// `subtotal − discount + tax − credit`: the sum of every line.
    pub total_minor: i64,
}

impl Totals {
    pub fn of(lines: &[Line]) -> Totals {
        let sum = |kind: LineKind| lines.iter().filter(|l| l.kind == kind).map(|l| l.amount_minor).sum::<i64>();
        let total_minor: i64 = lines.iter().map(|l| l.amount_minor).sum();
        let (discount, tax, credit) = (-sum(LineKind::Discount), sum(LineKind::Tax), -sum(LineKind::Credit));
        Totals {
            subtotal_minor: total_minor + discount - tax + credit,
            discount_minor: discount,
            tax_minor: tax,
            credit_applied_minor: credit,
            total_minor,
        }
    }
}

/// `INV-000042`: the `n`th invoice of an environment.
pub fn invoice_number(n: i64) -> String {
    format!("INV-{n:06}")
}

/// A usage line: `units` of `feature` used in `[start, end)`, priced by
/// `model` and rounded once. When the period was invoiced already (for
/// `billed` units), a late line bills what its usage now costs beyond what
/// was invoiced (tiered prices keep their tiers across the two invoices).
pub fn usage_line(
    feature: &str,
    model: &PriceModel,
    units: u64,
    billed: Option<u64>,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Line {
    let rated = model.rate(units);
    let late = billed.is_some();
    let (kind, description, quantity, amount) = if let Some(billed) = billed {
        let earlier = model.charge(billed);
        let extra = units.saturating_sub(billed);
        let text = format!("{feature}: late usage for {} – {} ({extra} units)", start.date_naive(), end.date_naive());
        (LineKind::LateUsage, text, extra, rated.amount_minor - earlier)
    } else {
        (LineKind::Usage, format!("{feature} × {units}"), units, rated.amount_minor)
    };
    Line {
        feature: Some(feature.to_string()),
        quantity: Some(quantity),
        unit_micro: model.unit_micro(),
        tiers: if late { Vec::new() } else { rated.tiers },
        ..Line::of_kind(kind, description, amount).for_period(start, end)
    }
}

/// How much of a period's usage of a feature was invoiced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledUsage {
    pub feature: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub units: u64,
    /// Invoiced up to here (the period's end once it closed).
    pub billed_until: DateTime<Utc>,
    /// The period ended and was invoiced: what is counted in it later is late.
    pub closed: bool,
}

/// How many closed periods per feature are kept for late usage.
pub const LATE_PERIODS: usize = 6;

/// A pay-as-you-go charge: the feature and how its usage is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredCharge {
    pub feature: String,
    pub model: PriceModel,
    /// Whether usage during a free trial is billed.
    pub bill_trial_usage: bool,
}

/// The usage lines of an invoice at `at` for the billing period `period`:
/// first what was counted in closed periods since they were invoiced
/// (LATE_USAGE), then this period's usage not yet invoiced (USAGE, from
/// where the last invoice of the period stopped). `usage(feature, start)`
/// is the usage counted in the period starting at `start`. With `close`
/// the period ends here. `billed` is updated.
pub fn arrears_lines(
    billed: &mut Vec<BilledUsage>,
    charges: &[MeteredCharge],
    usage: &dyn Fn(&str, DateTime<Utc>) -> u64,
    period: (DateTime<Utc>, DateTime<Utc>),
    at: DateTime<Utc>,
    close: bool,
) -> Vec<Line> {
    let mut lines = Vec::new();
    for c in charges {
        for b in billed.iter_mut().filter(|b| b.closed && b.feature == c.feature && b.period_start != period.0) {
            let now = usage(&c.feature, b.period_start);
            if now > b.units {
                lines.push(usage_line(&c.feature, &c.model, now, Some(b.units), (b.period_start, b.period_end)));
                b.units = now;
            }
        }
    }
    for c in charges {
        let used = usage(&c.feature, period.0);
        let earlier = billed.iter().position(|b| b.feature == c.feature && b.period_start == period.0);
        let (so_far, from) = earlier.map_or((0, period.0), |i| (billed[i].units, billed[i].billed_until));
        if earlier.is_some_and(|i| billed[i].closed) {
            continue; // invoiced already (its late usage is above)
        }
        lines.push(usage_line(&c.feature, &c.model, used.saturating_sub(so_far), None, (from, at)));
        let entry = BilledUsage {
            feature: c.feature.clone(),
            period_start: period.0,
            period_end: period.1,
            units: used.max(so_far),
            billed_until: at,
            closed: close,
        };
        match earlier {
            Some(i) => billed[i] = entry,
            None => billed.push(entry),
        }
    }
    // The latest periods of each feature only.
    billed.sort_by(|a, b| (&a.feature, b.period_start).cmp(&(&b.feature, a.period_start)));
    let mut kept: Vec<BilledUsage> = Vec::with_capacity(billed.len());
    for b in billed.drain(..) {
        if kept.iter().filter(|k| k.feature == b.feature).count() < LATE_PERIODS {
            kept.push(b);
        }
    }
    *billed = kept;
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Tier;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = LineKind> {
        proptest::sample::select(LineKind::ALL.to_vec())
    }

    proptest! {
        /// However lines mix, the totals add up: subtotal − discount + tax −
        /// credit is the total, and the total is the sum of the lines.
        #[test]
        fn totals_are_their_lines(lines in proptest::collection::vec((kind(), -1_000_000i64..1_000_000), 0..12)) {
            let lines: Vec<Line> = lines.into_iter().map(|(k, a)| Line::of_kind(k, "x", a)).collect();
            let t = Totals::of(&lines);
            prop_assert_eq!(t.total_minor, lines.iter().map(|l| l.amount_minor).sum::<i64>());
            prop_assert_eq!(t.subtotal_minor - t.discount_minor + t.tax_minor - t.credit_applied_minor, t.total_minor);
        }

        /// Billing a period's usage in two invoices (on time, then late)
        /// costs exactly what billing it at once would.
        #[test]
        fn late_usage_completes_the_period(first in 0u64..5_000, more in 0u64..5_000, unit in 0i64..3_000_000) {
            let model = PriceModel::Graduated(vec![
                Tier { up_to: Some(100), unit_micro: 0, flat_minor: 0 },
                Tier { up_to: Some(1_000), unit_micro: unit, flat_minor: 500 },
                Tier { up_to: None, unit_micro: unit / 2, flat_minor: 0 },
            ]);
            let period = (Utc::now(), Utc::now());
            let on_time = usage_line("api", &model, first, None, period);
            let late = usage_line("api", &model, first + more, Some(first), period);
            prop_assert_eq!(on_time.amount_minor + late.amount_minor, model.charge(first + more));
            prop_assert_eq!(on_time.tiers.iter().map(|t| t.quantity).sum::<u64>(), first);
        }
    }

    #[test]
    fn usage_is_billed_once_then_late() {
        let t = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let charges = [MeteredCharge {
            feature: "api".into(),
            model: PriceModel::Flat { unit_micro: 1_000_000 },
            bill_trial_usage: false,
        }];
        let mut billed = Vec::new();
        // Part of period 1 at a plan change, the rest at its end.
        let lines = arrears_lines(&mut billed, &charges, &|_, _| 40, (t(1), t(11)), t(5), false);
        assert_eq!((lines[0].quantity, lines[0].amount_minor), (Some(40), 40));
        let lines = arrears_lines(&mut billed, &charges, &|_, _| 100, (t(1), t(11)), t(11), true);
        assert_eq!((lines[0].quantity, lines[0].amount_minor, lines[0].period_start), (Some(60), 60, Some(t(5))));
        // Period 2: nothing late yet; then 7 units counted in period 1 after it closed.
        let usage = |_: &str, start: DateTime<Utc>| if start == t(1) { 107 } else { 3 };
        let lines = arrears_lines(&mut billed, &charges, &usage, (t(11), t(21)), t(21), true);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].kind, lines[0].quantity, lines[0].amount_minor), (LineKind::LateUsage, Some(7), 7));
        assert_eq!((lines[1].kind, lines[1].quantity), (LineKind::Usage, Some(3)));
        // Nothing is billed twice.
        let lines = arrears_lines(&mut billed, &charges, &usage, (t(21), t(31)), t(31), true);
        assert_eq!(lines.iter().map(|l| l.amount_minor).sum::<i64>(), 3);
    }

    #[test]
    fn numbers_are_sequential_and_sortable() {
        assert_eq!(invoice_number(1), "INV-000001");
        assert!(invoice_number(99) < invoice_number(100));
    }
}
