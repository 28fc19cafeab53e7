//! Entitlements: the aggregation engine of the Python SDK (spec §5.1).
//!
//! A customer with several subscriptions can get several rows for one
//! feature; [`aggregate`] folds them into one [`Entitlement`] per feature,
//! in first-seen order, keeping the raw rows in `items`.

use serde::{Deserialize, Serialize};

/// One raw row of `GET /entitlements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementDetail {
    pub feature_id: String,
    pub has_access: bool,
    #[serde(default)]
    pub feature_type: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, or null.
    #[serde(default)]
    pub reset_at: Option<String>,
    #[serde(default)]
    pub hard_limit: Option<bool>,
    #[serde(default)]
    pub usage_limit: Option<i64>,
    #[serde(default)]
    pub current_usage: Option<i64>,
    #[serde(default)]
    pub remaining: Option<i64>,
}

/// A feature's rows folded into one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    pub feature_id: String,
    pub feature_type: String,
    pub has_access: bool,
    pub hard_limit: bool,
    pub usage_limit: Option<i64>,
    pub current_usage: Option<i64>,
    pub remaining: Option<i64>,
    /// The raw rows (each with its own `reset_at`).
    pub items: Vec<EntitlementDetail>,
}

fn sum(values: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    values.flatten().fold(None, |acc, v| Some(acc.unwrap_or(0) + v))
}

fn fold(rows: Vec<EntitlementDetail>) -> Entitlement {
    let first = rows[0].clone();
    let feature_type = first.feature_type.clone().unwrap_or_else(|| "BOOLEAN".into());
    let any_access = rows.iter().any(|r| r.has_access);
    let (has_access, hard_limit, usage_limit, current_usage, remaining) = match feature_type.as_str() {
        "METER" => {
            let limit = sum(rows.iter().map(|r| r.usage_limit));
            let usage = sum(rows.iter().map(|r| r.current_usage));
            let remaining = match (limit, usage) {
                (Some(l), Some(u)) => Some(l - u),
                _ => None,
            };
            // The server's per-row hasAccess is not used for meters, as in the Python SDK.
            let access = remaining.is_none_or(|r| r > 0);
            (access, rows.iter().any(|r| r.hard_limit == Some(true)), limit, usage, remaining)
        }
        "CUSTOMIZABLE" => (
            any_access,
            first.hard_limit == Some(true),
            first.usage_limit,
            Some(first.current_usage.unwrap_or(0)),
            first.remaining,
        ),
        _ => (any_access, false, None, Some(0), None),
    };
    Entitlement {
        feature_id: first.feature_id,
        feature_type,
        has_access,
        hard_limit,
        usage_limit,
        current_usage,
        remaining,
        items: rows,
    }
}

/// Folds raw rows into one entitlement per feature, in first-seen order.
pub fn aggregate(rows: &[EntitlementDetail]) -> Vec<Entitlement> {
    let mut groups: Vec<Vec<EntitlementDetail>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].feature_id == row.feature_id) {
            Some(g) => g.push(row.clone()),
            None => groups.push(vec![row.clone()]),
        }
    }
    groups.into_iter().map(fold).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: &str,
        ty: &str,
        access: bool,
        limit: Option<i64>,
        usage: Option<i64>,
        hard: Option<bool>,
    ) -> EntitlementDetail {
        EntitlementDetail {
            feature_id: id.into(),
            has_access: access,
            feature_type: Some(ty.into()),
            reset_at: None,
            hard_limit: hard,
            usage_limit: limit,
            current_usage: usage,
            remaining: limit.zip(usage).map(|(l, u)| l - u),
        }
    }

    #[test]
    fn meters_sum_and_recompute_access() {
        let rows = [
            row("api", "METER", true, Some(1000), Some(900), Some(true)),
            row("sso", "BOOLEAN", false, None, None, None),
            row("api", "METER", false, Some(500), Some(700), None),
            row("sso", "BOOLEAN", true, None, None, None),
        ];
        let out = aggregate(&rows);
        assert_eq!(out.iter().map(|e| e.feature_id.as_str()).collect::<Vec<_>>(), ["api", "sso"], "first-seen order");
        let api = &out[0];
        assert_eq!((api.usage_limit, api.current_usage, api.remaining), (Some(1500), Some(1600), Some(-100)));
        assert!(api.hard_limit);
        assert!(!api.has_access, "remaining ≤ 0 means no access, whatever the rows said");
        assert_eq!(api.items.len(), 2);
        let sso = &out[1];
        assert!(sso.has_access, "any row granting access grants it");
        assert_eq!((sso.usage_limit, sso.current_usage, sso.remaining, sso.hard_limit), (None, Some(0), None, false));
    }

    #[test]
    fn unlimited_meters_and_customizable() {
        let out =
            aggregate(&[row("ai", "METER", true, None, Some(5), None), row("ai", "METER", true, None, None, None)]);
        assert_eq!(
            (out[0].usage_limit, out[0].current_usage, out[0].remaining, out[0].has_access),
            (None, Some(5), None, true)
        );
        let seats = aggregate(&[
            row("seats", "CUSTOMIZABLE", true, Some(10), None, Some(true)),
            row("seats", "CUSTOMIZABLE", false, Some(25), Some(3), None),
        ]);
        assert_eq!(
            (seats[0].usage_limit, seats[0].current_usage, seats[0].hard_limit, seats[0].has_access),
            (Some(10), Some(0), true, true)
        );
        assert!(aggregate(&[]).is_empty());
    }
}

/// `GET /entitlements` as the server answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEntitlements {
    pub customer_id: String,
    pub entitlements: Vec<EntitlementDetail>,
}

/// What `POST /entitlements/consume/` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeResponse {
    pub allowed: bool,
    pub customer_id: String,
    pub feature_id: String,
    pub value: i64,
    pub idempotency_key: String,
    #[serde(default)]
    pub current_usage: Option<i64>,
    #[serde(default)]
    pub usage_limit: Option<i64>,
    #[serde(default)]
    pub remaining: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The entitlement check, through the client's two-tier cache (spec §5.2).
pub struct Entitlements<'a> {
    http: &'a crate::http::Http,
    cache: &'a crate::cache::Cache,
}

impl<'a> Entitlements<'a> {
    pub(crate) fn new(http: &'a crate::http::Http, cache: &'a crate::cache::Cache) -> Self {
        Self { http, cache }
    }

    /// The raw answer: fresh cache, else the edge API (written through),
    /// else, when the server cannot be reached or fails (5xx), any cached
    /// answer however old. 4xx errors always propagate.
    async fn fetch_raw(&self, customer_id: &str, feature_id: Option<&str>) -> Result<serde_json::Value, crate::Error> {
        let slot = feature_id.unwrap_or("*");
        if let Some(v) = self.cache.get_fresh(customer_id, slot).await {
            return Ok(v);
        }
        let mut query = vec![("customer_id", customer_id.to_string())];
        if let Some(f) = feature_id {
            query.push(("feature_id", f.to_string()));
        }
        let url = self.http.url(crate::http::Host::Edge, &["entitlements"], false);
        match self.http.request(reqwest::Method::GET, url, &query, None).await {
            Ok(v) => {
                self.cache.put(customer_id, slot, &v).await;
                Ok(v)
            }
            Err(e) if e.status().is_none_or(|s| s >= 500) => match self.cache.get_any(customer_id, slot).await {
                Some(stale) => {
                    tracing::warn!(error = %e, customer_id, "entitlements unavailable; answering from the cache");
                    Ok(stale)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    pub async fn get_raw_entitlements(&self, customer_id: &str) -> Result<RawEntitlements, crate::Error> {
        crate::http::decode(self.fetch_raw(customer_id, None).await?)
    }

    pub async fn get_raw_entitlement(
        &self,
        customer_id: &str,
        feature_id: &str,
    ) -> Result<RawEntitlements, crate::Error> {
        crate::http::decode(self.fetch_raw(customer_id, Some(feature_id)).await?)
    }

    /// Every feature, aggregated (spec §5.1), in first-seen order.
    pub async fn get_entitlements(&self, customer_id: &str) -> Result<Vec<Entitlement>, crate::Error> {
        Ok(aggregate(&self.get_raw_entitlements(customer_id).await?.entitlements))
    }

    /// One feature, aggregated, or `None` when the customer does not have it.
    pub async fn get_entitlement(
        &self,
        customer_id: &str,
        feature_id: &str,
    ) -> Result<Option<Entitlement>, crate::Error> {
        let raw = self.get_raw_entitlement(customer_id, feature_id).await?;
        Ok(aggregate(&raw.entitlements).into_iter().find(|e| e.feature_id == feature_id))
    }

    /// Whether the customer may use the feature (false when absent).
    pub async fn has_access(&self, customer_id: &str, feature_id: &str) -> Result<bool, crate::Error> {
        Ok(self.get_entitlement(customer_id, feature_id).await?.is_some_and(|e| e.has_access))
    }

    /// Beyond Kelviq: check and deduct in one atomic step on the server.
    pub async fn consume(
        &self,
        customer_id: &str,
        feature_id: &str,
        value: i64,
        idempotency_key: &str,
    ) -> Result<ConsumeResponse, crate::Error> {
        let body = serde_json::json!({"customerId": customer_id, "featureId": feature_id, "value": value, "idempotencyKey": idempotency_key});
        let url = self.http.url(crate::http::Host::Core, &["entitlements", "consume"], true);
        let answer: ConsumeResponse =
            crate::http::decode(self.http.request(reqwest::Method::POST, url, &[], Some(&body)).await?)?;
        if answer.allowed {
            self.cache.apply_usage(customer_id, feature_id, value, "DELTA");
        }
        Ok(answer)
    }
}
