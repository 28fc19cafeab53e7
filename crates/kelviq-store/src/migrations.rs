//! Migrations are embedded in the binary and written once, in SQLite's
//! dialect. For PostgreSQL the auto-increment key is rewritten, and a line
//! starting with `-- postgres: ` is a statement for PostgreSQL only (SQLite
//! reads it as a comment). Adding a migration: a new `NNNN_name.sql` here and
//! a line below.

use crate::Backend;
use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use std::borrow::Cow;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/0001_foundation.sql")),
    (2, "catalog", include_str!("../migrations/0002_catalog.sql")),
    (3, "plans", include_str!("../migrations/0003_plans.sql")),
    (4, "media", include_str!("../migrations/0004_media.sql")),
    (5, "change feed", include_str!("../migrations/0005_change_feed.sql")),
    (6, "selling", include_str!("../migrations/0006_selling.sql")),
    (7, "usage", include_str!("../migrations/0007_usage.sql")),
    (8, "usage events", include_str!("../migrations/0008_usage_events.sql")),
    (9, "usage keys", include_str!("../migrations/0009_usage_keys.sql")),
    (10, "usage collation", include_str!("../migrations/0010_usage_collation.sql")),
    (11, "usage tenant", include_str!("../migrations/0011_usage_tenant.sql")),
    (12, "usage owner", include_str!("../migrations/0012_usage_owner.sql")),
    (13, "webhooks", include_str!("../migrations/0013_webhooks.sql")),
    (14, "tax rates", include_str!("../migrations/0014_tax_rates.sql")),
    (15, "invoices", include_str!("../migrations/0015_invoices.sql")),
    (16, "due order", include_str!("../migrations/0016_due_order.sql")),
    (17, "tax settings", include_str!("../migrations/0017_tax_settings.sql")),
    (18, "discounts", include_str!("../migrations/0018_discounts.sql")),
    (19, "promotions", include_str!("../migrations/0019_promotions.sql")),
    (20, "licenses", include_str!("../migrations/0020_licenses.sql")),
    (21, "portal sessions", include_str!("../migrations/0021_portal_sessions.sql")),
    (22, "mail", include_str!("../migrations/0022_mail.sql")),
    (23, "storefront", include_str!("../migrations/0023_storefront.sql")),
    (24, "payment providers", include_str!("../migrations/0024_payment_providers.sql")),
    (25, "stripe events", include_str!("../migrations/0025_stripe_events.sql")),
    (26, "payment attempts", include_str!("../migrations/0026_payment_attempts.sql")),
];

const SQLITE_SERIAL: &str = "INTEGER PRIMARY KEY AUTOINCREMENT";
const POSTGRES_SERIAL: &str = "BIGSERIAL PRIMARY KEY";
const POSTGRES_ONLY: &str = "-- postgres: ";

/// The migration text for a backend.
pub fn sql_for(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => sql
            .replace(SQLITE_SERIAL, POSTGRES_SERIAL)
            .split_inclusive('\n')
            .map(|line| line.strip_prefix(POSTGRES_ONLY).unwrap_or(line))
            .collect(),
    }
}

/// The embedded migrations up to and including version `through`, as
/// sqlx's migrator reads them.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    pub backend: Backend,
    pub through: i64,
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        let migrations = MIGRATIONS
            .iter()
            .filter(|(version, ..)| *version <= self.through)
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Owned(sql_for(self.backend, sql)),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_listed_once_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "a migration file is not listed in MIGRATIONS");
        for (file, (version, _, sql)) in files.iter().zip(MIGRATIONS) {
            assert!(file.starts_with(&format!("{version:04}_")), "{file} out of order");
            assert_eq!(
                std::fs::read_to_string(format!("{dir}/{file}")).unwrap(),
                *sql,
                "{file} listed under another version"
            );
        }
        assert!(sql_for(Backend::Postgres, MIGRATIONS[0].2).contains(POSTGRES_SERIAL));
        assert!(!sql_for(Backend::Postgres, MIGRATIONS[0].2).contains("AUTOINCREMENT"));
        let only = "CREATE TABLE t (a INT);\n-- postgres: ALTER TABLE t SET (fillfactor = 70);\n";
        assert_eq!(sql_for(Backend::Postgres, only), "CREATE TABLE t (a INT);\nALTER TABLE t SET (fillfactor = 70);\n");
        assert_eq!(sql_for(Backend::Sqlite, only), only);
    }
}
