//! Filters of the document lists (subscriptions, orders, transactions,
//! refunds, checkout sessions): SQL conditions after the tenant's, with
//! their bound values.

use chrono::{DateTime, Utc};
use kelviq_core::timefmt::to_micros;
use sqlx::Any;

/// A filter on a document list: `column op $n`, with its value.
#[derive(Debug, Clone)]
pub enum Filter {
    Eq(&'static str, String),
    In(&'static str, Vec<String>),
    Bool(&'static str, bool),
    AtLeast(&'static str, DateTime<Utc>),
    Before(&'static str, DateTime<Utc>),
    /// A case-insensitive substring of the document text.
    Search(String),
    /// A case-insensitive substring of the document text, or of the id,
    /// name or email of the customer of the row's order (for tables whose
    /// rows name an order: refunds and transactions).
    SearchWithOrderCustomer(String),
}

pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Flag(bool),
}

/// The LIKE pattern of a case-insensitive substring, in which `%` and `_`
/// typed by the user match themselves.
fn like_pattern(s: &str) -> String {
    let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

pub(crate) fn where_clause(filters: &[Filter], first: usize) -> (String, Vec<Bind>) {
    let mut sql = String::from("org_id = $1 AND environment = $2");
    let mut binds = Vec::new();
    let mut n = first;
    let mut next = |b: Bind, binds: &mut Vec<Bind>| {
        binds.push(b);
        n += 1;
        n - 1
    };
    for f in filters {
        match f {
            Filter::Eq(col, v) => {
                let i = next(Bind::Text(v.clone()), &mut binds);
                sql.push_str(&format!(" AND {col} = ${i}"));
            }
            Filter::In(col, vs) => {
                let list: Vec<String> =
                    vs.iter().map(|v| format!("${}", next(Bind::Text(v.clone()), &mut binds))).collect();
                if list.is_empty() {
                    sql.push_str(" AND 1 = 0");
                } else {
                    sql.push_str(&format!(" AND {col} IN ({})", list.join(", ")));
                }
            }
            Filter::Bool(col, v) => {
                let i = next(Bind::Flag(*v), &mut binds);
                sql.push_str(&format!(" AND {col} = ${i}"));
            }
            Filter::AtLeast(col, t) => {
                let i = next(Bind::Int(to_micros(*t)), &mut binds);
                sql.push_str(&format!(" AND {col} >= ${i}"));
            }
            Filter::Before(col, t) => {
                let i = next(Bind::Int(to_micros(*t)), &mut binds);
                sql.push_str(&format!(" AND {col} < ${i}"));
            }
            Filter::Search(s) => {
                let i = next(Bind::Text(like_pattern(s)), &mut binds);
                sql.push_str(&format!(" AND LOWER(doc) LIKE ${i} ESCAPE '\\'"));
            }
            Filter::SearchWithOrderCustomer(s) => {
                let i = next(Bind::Text(like_pattern(s)), &mut binds);
                sql.push_str(&format!(
                    " AND (LOWER(doc) LIKE ${i} ESCAPE '\\' OR order_id IN (SELECT o.id FROM orders o \
                     JOIN customers c ON c.org_id = o.org_id AND c.environment = o.environment \
                     AND c.customer_id = o.customer_id WHERE o.org_id = $1 AND o.environment = $2 \
                     AND (LOWER(c.customer_id) LIKE ${i} ESCAPE '\\' OR LOWER(COALESCE(c.name, '')) LIKE ${i} ESCAPE '\\' \
                     OR LOWER(COALESCE(c.email, '')) LIKE ${i} ESCAPE '\\')))"
                ));
            }
        }
    }
    (sql, binds)
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
            Bind::Flag(f) => q.bind(f),
        };
    }
    q
}
