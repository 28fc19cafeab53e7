//! Plan changes: what a change costs now and later, worked out before
//! anything is written.

use super::*;
use crate::plans::ChargePeriod;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a plan change settles the part of the period already paid (spec §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Proration {
    /// Credit the unused old price, charge the rest of the period at the new one, collect now.
    ImmediateCharge,
    /// The same difference, put on the next invoice.
    ProrateNextInvoice,
    /// Switch now; nothing credited or charged until the next renewal.
    NoProration,
}

impl Proration {
    /// Reads `prorationBehavior`, or the legacy `probationBehaviour` values.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "IMMEDIATE_CHARGE" => Proration::ImmediateCharge,
            "PRORATE_NEXT_INVOICE" | "PRO_RATA" => Proration::ProrateNextInvoice,
            "NO_PRORATION" | "NEXT_BILLING_CYCLE" => Proration::NoProration,
            _ => return None,
        })
    }
}

/// What a plan change does, worked out before anything is written (so a
/// preview and the change itself agree to the unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePlan {
    /// Applied now (true) or at the end of the current period (a downgrade).
    pub now: bool,
    /// The billing cycle restarts now (the interval changed, or a trial ended now).
    pub restart_cycle: bool,
    /// Collected now, after credits.
    pub charge_now_minor: i64,
    /// Added to the customer's credit (taken off later invoices).
    pub credit_minor: i64,
    /// Added to the next invoice.
    pub debit_minor: i64,
    /// What the next invoice will be, with its lines.
    pub next_invoice_minor: i64,
    pub lines: Vec<Line>,
}

/// Plans a change of `sub` to a plan costing `new_minor` per `new_period`.
///
/// With `r` the seconds left in the current period and `T` its length,
/// `credit = round(old × r / T)`, `charge = round(new × r / T)` (rounding
/// half up, see [`crate::periods::prorate`]), `net = charge − credit`:
/// * `IMMEDIATE_CHARGE`: `net > 0` is collected now, `net < 0` becomes credit;
/// * `PRORATE_NEXT_INVOICE`: `net > 0` is added to the next invoice, `net < 0` becomes credit;
/// * `NO_PRORATION`: nothing.
///
/// Without an explicit behaviour an upgrade (`new ≥ old`) is `IMMEDIATE_CHARGE`
/// and a downgrade waits for the period end. A change of interval restarts the
/// cycle now: the new period's full price is collected now, less the unused
/// old price unless `NO_PRORATION`. During a trial nothing is charged: the
/// change applies now and the trial continues. The customer's existing credit
/// is taken off whatever is collected now.
pub fn plan_change(
    sub: &Subscription,
    new_minor: i64,
    new_period: ChargePeriod,
    behaviour: Option<Proration>,
    at: DateTime<Utc>,
) -> ChangePlan {
    let (start, end) = match (sub.period_start, sub.period_end) {
        (Some(s), Some(e)) if e > s => (s, e),
        _ => (at, at),
    };
    let old = sub.amount_minor;
    let next_renewal = |credit_left: i64, debit: i64| (new_minor + debit - credit_left).max(0);
    if sub.status == SubStatus::Trialing {
        return ChangePlan {
            now: true,
            restart_cycle: false,
            charge_now_minor: 0,
            credit_minor: 0,
            debit_minor: 0,
            next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
            lines: vec![],
        };
    }
    let p = crate::periods::prorate(old, new_minor, start, end, at);
    if new_period != sub.charge_period {
        let credit = if behaviour == Some(Proration::NoProration) { 0 } else { p.credit_minor };
        let available = credit + sub.credit_minor;
        let due = new_minor + sub.debit_minor;
        let charge = (due - available).max(0);
        let mut lines = vec![Line::plain(format!("New plan ({})", new_period.as_str()), new_minor)];
        if credit > 0 {
            lines.push(Line::of_kind(LineKind::Proration, "Unused time on the previous plan", -credit));
        }
        let credit_left = (available - due).max(0);
        return ChangePlan {
            now: true,
            restart_cycle: true,
            charge_now_minor: charge,
            credit_minor: credit_left - sub.credit_minor,
            debit_minor: -sub.debit_minor,
            next_invoice_minor: next_renewal(credit_left, 0),
            lines,
        };
    }
    let behaviour = match behaviour {
        Some(b) => b,
        None if new_minor >= old => Proration::ImmediateCharge,
        None => {
            return ChangePlan {
                now: false,
                restart_cycle: false,
                charge_now_minor: 0,
                credit_minor: 0,
                debit_minor: 0,
                next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
                lines: vec![],
            }
        }
    };
    let lines = if behaviour == Proration::NoProration {
        vec![]
    } else {
        vec![
            Line::of_kind(LineKind::Proration, "Remaining time on the new plan", p.charge_minor),
            Line::of_kind(LineKind::Proration, "Unused time on the previous plan", -p.credit_minor),
        ]
    };
    match behaviour {
        Proration::NoProration => ChangePlan {
            now: true,
            restart_cycle: false,
            charge_now_minor: 0,
            credit_minor: 0,
            debit_minor: 0,
            next_invoice_minor: next_renewal(sub.credit_minor, sub.debit_minor),
            lines,
        },
        Proration::ImmediateCharge => {
            let (charge, credit) = if p.net_minor >= 0 {
                let used = p.net_minor.min(sub.credit_minor);
                (p.net_minor - used, -used)
            } else {
                (0, -p.net_minor)
            };
            ChangePlan {
                now: true,
                restart_cycle: false,
                charge_now_minor: charge,
                credit_minor: credit,
                debit_minor: 0,
                next_invoice_minor: next_renewal(sub.credit_minor + credit, sub.debit_minor),
                lines,
            }
        }
        Proration::ProrateNextInvoice => {
            let (debit, credit) = if p.net_minor >= 0 { (p.net_minor, 0) } else { (0, -p.net_minor) };
            ChangePlan {
                now: true,
                restart_cycle: false,
                charge_now_minor: 0,
                credit_minor: credit,
                debit_minor: debit,
                next_invoice_minor: next_renewal(sub.credit_minor + credit, sub.debit_minor + debit),
                lines,
            }
        }
    }
}

/// What a change would cost, as `update/preview/` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePreview {
    /// The new price per period.
    pub recurring_minor: i64,
    pub charge_now_minor: i64,
    pub next_invoice_minor: i64,
    /// When the next invoice is attempted.
    pub next_at: Option<DateTime<Utc>>,
    /// The next invoice's lines.
    pub lines: Vec<Line>,
}

/// Previews changing `sub` to `quote` for `period` at `now`; with
/// `end_trial_now`, a trialing subscription's trial ends now and its first
/// period is charged (less its credit).
pub fn preview_change(
    sub: &Subscription,
    quote: &Quote,
    period: ChargePeriod,
    proration: Option<Proration>,
    end_trial_now: bool,
    now: DateTime<Utc>,
) -> ChangePreview {
    let restarted_end = || {
        let mut after = sub.clone();
        after.anchor_at = now;
        after.charge_period = period;
        after.period_bounds(0).map(|b| b.1)
    };
    if end_trial_now && sub.status == SubStatus::Trialing {
        let credit = sub.credit_minor.min(quote.total_minor);
        return ChangePreview {
            recurring_minor: quote.total_minor,
            charge_now_minor: quote.total_minor - credit,
            next_invoice_minor: quote.total_minor,
            next_at: restarted_end(),
            lines: quote.lines.clone(),
        };
    }
    let change = plan_change(sub, quote.total_minor, period, proration, now);
    let next_at = if change.restart_cycle {
        restarted_end()
    } else if sub.status == SubStatus::Trialing {
        sub.trial_end
    } else {
        sub.period_end
    };
    let lines = if change.lines.is_empty() {
        let mut lines = quote.lines.clone();
        let diff = change.next_invoice_minor - quote.total_minor;
        if diff != 0 {
            lines.push(Line::of_kind(LineKind::Proration, "Adjustments", diff));
        }
        lines
    } else {
        change.lines.clone()
    };
    ChangePreview {
        recurring_minor: quote.total_minor,
        charge_now_minor: change.charge_now_minor,
        next_invoice_minor: change.next_invoice_minor,
        next_at,
        lines,
    }
}
