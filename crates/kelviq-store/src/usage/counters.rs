//! Counters, idempotency keys and overrides.

use crate::changes::record_quiet_change;
use crate::{tenant_binds, usage_binds, usage_tenant, Result, Store, Work};
use chrono::{DateTime, Utc};
use kelviq_core::meters::add_counter;
use kelviq_core::timefmt::to_micros;
use kelviq_core::Tenant;
use sqlx::Row;

use super::events::*;
use super::*;

impl Store {
    /// Every counter of a customer for the given periods (feature, period start).
    pub async fn counters(&self, tenant: &Tenant, customer_id: &str) -> Result<Vec<Counter>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (org, env) = usage_binds(tenant);
        let rows = sqlx::query(SQL.get_or_init(|| {
            format!(
                "SELECT feature, period_start, value, value_at, alerts FROM usage_counters \
                 WHERE customer_id = $3 AND tenant = {}",
                usage_tenant("$1", "$2")
            )
        }))
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(counter_from_row).collect()
    }

    /// [`Store::counters`] of many customers in one read: each with its counters.
    pub async fn counters_of_many(&self, tenant: &Tenant, customer_ids: &[&str]) -> Result<Vec<(String, Counter)>> {
        if customer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, env) = usage_binds(tenant);
        let sql = format!(
            "SELECT customer_id, feature, period_start, value, value_at, alerts FROM usage_counters \
             WHERE tenant = {} AND customer_id IN {}",
            usage_tenant("$1", "$2"),
            crate::pending::placeholders(1, customer_ids.len(), 3)
        );
        let q = sqlx::query(&sql).bind(org).bind(env);
        let rows = customer_ids.iter().fold(q, |q, c| q.bind(*c)).fetch_all(self.read_pool()).await?;
        rows.iter().map(|r| Ok((r.try_get("customer_id")?, counter_from_row(r)?))).collect()
    }

    /// A customer's overrides: feature identifier → document.
    pub async fn overrides(&self, tenant: &Tenant, customer_id: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT feature, doc FROM entitlement_overrides WHERE org_id = $1 AND environment = $2 AND customer_id = $3 \
             ORDER BY feature",
        )
        .bind(org)
        .bind(env)
        .bind(customer_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("feature")?, crate::json_col(r, "doc")?))).collect()
    }

    /// How many raw events the tenant has stored (for tests and operators).
    pub async fn count_events(&self, tenant: &Tenant, customer_id: Option<&str>) -> Result<i64> {
        let (org, env) = usage_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM usage_events WHERE tenant = {} AND ($3 = '' OR customer_id = $3)",
            usage_tenant("$1", "$2")
        ))
        .bind(org)
        .bind(env)
        .bind(customer_id.unwrap_or(""))
        .fetch_one(self.read_pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}

impl Work {
    /// Works for another tenant from here on (one group commit spans tenants).
    pub fn switch_tenant(&mut self, tenant: &Tenant) {
        self.set_tenant(tenant.clone());
    }

    /// The answer first given for an idempotency key, if it was used.
    pub async fn find_key(&mut self, kind: &str, key: &str) -> Result<Option<String>> {
        let (org, env) = tenant_binds(self.tenant());
        let existing = sqlx::query(
            "SELECT response FROM ingest_keys WHERE org_id = $1 AND environment = $2 AND kind = $3 AND idempotency_key = $4",
        )
        .bind(&org)
        .bind(env)
        .bind(kind)
        .bind(key)
        .fetch_optional(&mut **self.tx())
        .await?;
        existing.map(|row| Ok(row.try_get("response")?)).transpose()
    }

    /// Records the answer given for an idempotency key.
    pub async fn save_key(&mut self, kind: &str, key: &str, response: &str, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(self.tenant());
        sqlx::query(
            "INSERT INTO ingest_keys (org_id, environment, kind, idempotency_key, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&org)
        .bind(env)
        .bind(kind)
        .bind(key)
        .bind(response)
        .bind(to_micros(now))
        .execute(&mut **self.tx())
        .await?;
        Ok(())
    }

    /// A counter, locked for the rest of the work (`None`: never written).
    pub async fn lock_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
    ) -> Result<Option<Counter>> {
        let number = self.own_usage_tenant_number().await?;
        let row = sqlx::query(&format!(
            "SELECT feature, period_start, value, value_at, alerts FROM usage_counters \
             WHERE customer_id = $2 AND feature = $3 AND period_start = $4 AND tenant = $1{}",
            self.backend().for_update()
        ))
        .bind(number)
        .bind(customer_id)
        .bind(feature)
        .bind(period_start)
        .fetch_optional(&mut **self.tx())
        .await?;
        row.as_ref().map(counter_from_row).transpose()
    }

    /// Applies a change to a counter; returns the value before and after and
    /// the alerts already announced this period.
    pub async fn change_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        change: &CounterChange,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64, String)> {
        let current = self.lock_counter(customer_id, feature, period_start).await?;
        let alerts = current.as_ref().map(|c| c.alerts.clone()).unwrap_or_default();
        let before = current.as_ref().map_or(0, |c| c.value);
        let value_at = current.as_ref().map_or(i64::MIN, |c| c.value_at);
        let (after, at) = match change {
            CounterChange::Set(v) => (*v, value_at),
            CounterChange::Add(n) => (add_counter(before, *n), value_at),
            CounterChange::Reduce(n) => (add_counter(before, -*n).max(0), value_at),
            CounterChange::Max(n) => (if current.is_some() { before.max(*n) } else { *n }, value_at),
            CounterChange::Latest(v, t) if *t >= value_at => (*v, *t),
            CounterChange::Latest(..) => (before, value_at),
            CounterChange::Unique(value) => {
                let (org, env) = tenant_binds(self.tenant());
                let inserted = sqlx::query(
                    "INSERT INTO meter_uniques (org_id, environment, customer_id, feature, period_start, value) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(org)
                .bind(env)
                .bind(customer_id)
                .bind(feature)
                .bind(period_start)
                .bind(value)
                .execute(&mut **self.tx())
                .await?;
                (add_counter(before, inserted.rows_affected() as i64), value_at)
            }
        };
        if current.is_some() && after == before && at == value_at {
            return Ok((before, after, alerts));
        }
        self.write_counter(customer_id, feature, period_start, after, at, current.map(|c| c.alerts), now).await?;
        Ok((before, after, alerts))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_counter(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        value: i64,
        value_at: i64,
        existing_alerts: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let number = self.own_usage_tenant_number().await?;
        let q = if existing_alerts.is_some() {
            sqlx::query(
                "UPDATE usage_counters SET value = $1, value_at = $2, updated_at = $3 \
                 WHERE tenant = $4 AND customer_id = $5 AND feature = $6 AND period_start = $7",
            )
        } else {
            sqlx::query(
                "INSERT INTO usage_counters (value, value_at, updated_at, tenant, customer_id, feature, \
                 period_start, alerts) VALUES ($1, $2, $3, $4, $5, $6, $7, '')",
            )
        };
        q.bind(value)
            .bind(value_at)
            .bind(to_micros(now))
            .bind(number)
            .bind(customer_id)
            .bind(feature)
            .bind(period_start)
            .execute(&mut **self.tx())
            .await?;
        Ok(())
    }

    /// Remembers which usage alerts were announced this period.
    pub async fn set_counter_alerts(
        &mut self,
        customer_id: &str,
        feature: &str,
        period_start: i64,
        alerts: &str,
    ) -> Result<()> {
        let number = self.own_usage_tenant_number().await?;
        sqlx::query(
            "UPDATE usage_counters SET alerts = $1 \
             WHERE tenant = $2 AND customer_id = $3 AND feature = $4 AND period_start = $5",
        )
        .bind(alerts)
        .bind(number)
        .bind(customer_id)
        .bind(feature)
        .bind(period_start)
        .execute(&mut **self.tx())
        .await?;
        Ok(())
    }

    /// Tells every other server process that these customers' usage changed
    /// (`origin` names this process, which updates its own state in place);
    /// they are woken once the work commits.
    pub async fn usage_changed(&mut self, customers: &[String], origin: &str, now: DateTime<Utc>) -> Result<()> {
        if customers.is_empty() {
            return Ok(());
        }
        let subject = usage_subject(self.tenant(), origin, customers);
        self.wake = Some(origin.to_string());
        record_quiet_change(self.tx(), TOPIC_USAGE, &subject, now).await
    }

    /// Sets (or, with `None`, removes) a customer's override of a feature.
    pub async fn put_override(
        &mut self,
        customer_id: &str,
        feature: &str,
        doc: Option<&serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (org, env) = tenant_binds(self.tenant());
        let deleted = sqlx::query(
            "DELETE FROM entitlement_overrides WHERE org_id = $1 AND environment = $2 AND customer_id = $3 AND feature = $4",
        )
        .bind(&org)
        .bind(env)
        .bind(customer_id)
        .bind(feature)
        .execute(&mut **self.tx())
        .await?;
        if let Some(doc) = doc {
            sqlx::query(
                "INSERT INTO entitlement_overrides (org_id, environment, customer_id, feature, doc, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&org)
            .bind(env)
            .bind(customer_id)
            .bind(feature)
            .bind(doc.to_string())
            .bind(to_micros(now))
            .execute(&mut **self.tx())
            .await?;
        }
        self.changed_customer(customer_id);
        Ok(deleted.rows_affected() > 0)
    }
}
