//! Writes a unit of work holds back and sends together: a billing run
//! renews a batch of subscriptions in one transaction, and each renewal
//! writes an order, an invoice, a transaction, events, the subscription and
//! a change notice. One statement per table for the whole batch instead of
//! one per row: the rows are the same, the round trips (the cost of a
//! statement through sqlx, above all SQLite's worker thread) are not.
//!
//! Only a work that asks for it defers ([`Work::defer_writes`]). What it
//! defers is sent before the work commits and before any of the work's own
//! reads or updates of those tables (every such method flushes first), so
//! the work reads what it wrote, as without deferral. A failed flush fails
//! the work: nothing of it commits.

use crate::changes::CHANGES_CHANNEL;
use crate::{Backend, Result, StoreError, Work};
use std::collections::{BTreeSet, HashMap};

/// A value bound into a deferred statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(crate) fn bind(q: Query<'_>, a: Arg) -> Query<'_> {
    match a {
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
    }
}

/// Inserts one row: `head` is `INSERT INTO t (a, b, …)`.
pub(crate) async fn insert_row(conn: &mut sqlx::AnyConnection, head: &str, row: Vec<Arg>) -> Result<()> {
    let sql = format!("{head} VALUES {}", placeholders(1, row.len(), 1));
    row.into_iter().fold(sqlx::query(&sql), bind).execute(conn).await?;
    Ok(())
}

/// Rows of one insert: `head` is `INSERT INTO t (a, b, …)`, each row `width` values.
#[derive(Debug)]
struct Inserts {
    head: &'static str,
    width: usize,
    args: Vec<Arg>,
}

/// What a work holds back.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Inserts per statement head, in the order their tables were first written.
    inserts: Vec<Inserts>,
    /// Subscription updates by id (the last one of each id wins).
    subscriptions: HashMap<String, [Arg; 5]>,
    /// Payment method documents (and organisations) by id (the last one wins).
    payment_methods: HashMap<i64, (String, String)>,
    /// The order ids (and invoice ids) among the inserts.
    pub(crate) order_ids: BTreeSet<String>,
    /// The change-feed topics written (PostgreSQL wakes their listeners once each).
    topics: BTreeSet<&'static str>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.subscriptions.is_empty() && self.payment_methods.is_empty()
    }

    pub(crate) fn insert(&mut self, head: &'static str, row: Vec<Arg>) {
        match self.inserts.iter_mut().find(|i| i.head == head) {
            Some(i) => {
                debug_assert_eq!(i.width, row.len());
                i.args.extend(row);
            }
            None => self.inserts.push(Inserts { head, width: row.len(), args: row }),
        }
    }

    /// A subscription's new columns: status, doc, next due time, modified time, org.
    pub(crate) fn update_subscription(&mut self, id: &str, cols: [Arg; 5]) {
        self.subscriptions.insert(id.to_string(), cols);
    }

    pub(crate) fn update_payment_method(&mut self, id: i64, doc: String, org: String) {
        self.payment_methods.insert(id, (doc, org));
    }

    pub(crate) fn topic(&mut self, topic: &'static str) {
        self.topics.insert(topic);
    }
}

/// Bound values per statement. PostgreSQL: under its limit. SQLite: few,
/// because sqlx finds each value's place by its name
/// (`sqlite3_bind_parameter_name` walks the statement's list of names), so a
/// statement's binding costs the square of its values: 13 % of a billing
/// run's time at 1,200 values a statement.
pub(crate) fn max_binds(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 256,
        Backend::Postgres => 30_000,
    }
}

/// `($1, $2, …), (…)`: `rows` groups of `width` placeholders from `$first`.
pub(crate) fn placeholders(rows: usize, width: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * width + c).to_string());
        }
        out.push(')');
    }
    out
}

impl Work {
    /// Holds this work's inserts of orders, invoices, transactions, events
    /// (with their deliveries) and change notices, and its updates of
    /// subscriptions and payment methods, until it commits or reads them.
    pub fn defer_writes(&mut self) {
        self.pending.get_or_insert_with(Default::default);
    }

    /// Whether writes are held back.
    pub(crate) fn deferring(&self) -> bool {
        self.pending.is_some()
    }

    /// Sends what is held back (each table's rows in one statement).
    pub(crate) async fn flush(&mut self) -> Result<()> {
        let Some(pending) = self.pending.as_mut() else { return Ok(()) };
        if pending.is_empty() && pending.topics.is_empty() {
            return self.flush_invoice_number().await;
        }
        let pending = std::mem::take(pending);
        for Inserts { head, width, args } in pending.inserts {
            self.send_rows(|rows: &str| format!("{head} VALUES {rows}"), width, args).await?;
        }
        const SUBSCRIPTIONS: &str = "UPDATE subscriptions SET status = v.status, doc = v.doc, \
             next_due_at = v.next_due_at, modified_at = v.modified_at FROM v \
             WHERE subscriptions.id = v.id AND subscriptions.org_id = v.org_id";
        let n = pending.subscriptions.len();
        let rows = pending.subscriptions.into_iter().flat_map(|(id, cols)| std::iter::once(Arg::Text(id)).chain(cols));
        let sql = |rows: &str| {
            format!("WITH v (id, status, doc, next_due_at, modified_at, org_id) AS (VALUES {rows}) {SUBSCRIPTIONS}")
        };
        let updated = self.send_rows(sql, 6, rows.collect()).await?;
        if updated != n as u64 {
            return Err(StoreError::Corrupt(format!(
                "{updated} of {n} subscriptions updated: a subscription held by this work is gone"
            )));
        }
        const METHODS: &str = "UPDATE payment_methods SET doc = v.doc FROM v \
             WHERE payment_methods.id = v.id AND payment_methods.org_id = v.org_id";
        let rows = pending
            .payment_methods
            .into_iter()
            .flat_map(|(id, (doc, org))| [Arg::Int(id), Arg::Text(doc), Arg::Text(org)]);
        self.send_rows(
            |rows: &str| format!("WITH v (id, doc, org_id) AS (VALUES {rows}) {METHODS}"),
            3,
            rows.collect(),
        )
        .await?;
        if self.backend == Backend::Postgres {
            for topic in pending.topics {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANGES_CHANNEL)
                    .bind(topic)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.flush_invoice_number().await
    }
}

impl Work {
    /// Runs `sql(rows)` over `args` (rows of `width` values), as many rows a
    /// statement as the backend binds cheaply; returns the rows affected.
    async fn send_rows(&mut self, sql: impl Fn(&str) -> String, width: usize, args: Vec<Arg>) -> Result<u64> {
        let per = (max_binds(self.backend) / width).max(1) * width;
        let mut affected = 0;
        let mut args = args.into_iter().peekable();
        while args.peek().is_some() {
            let chunk: Vec<Arg> = args.by_ref().take(per).collect();
            let sql = sql(&placeholders(chunk.len() / width, width, 1));
            let q = chunk.into_iter().fold(sqlx::query(&sql), bind);
            affected += q.execute(&mut *self.tx).await?.rows_affected();
        }
        Ok(affected)
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 2, 5), "($5, $6)");
    }
}
