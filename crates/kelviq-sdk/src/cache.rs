//! The two-tier entitlement cache and the offline report queue (spec §5.2,
//! §5.3): an in-process L1 map, an optional shared L2 [`CacheStore`]
//! (Redis with the `redis` feature), stale answers only when the server
//! cannot be reached or fails (5xx), and reports kept while offline.

use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A store failure; the cache logs it and carries on as on a miss.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cache store: {0}")]
pub struct StoreError(pub String);

/// A shared key-value store with lists (string values only), as the Python
/// SDK's `CacheStore`.
#[async_trait]
pub trait CacheStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// `ttl` `None`: no expiry.
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    async fn list_append(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Takes every item, atomically.
    async fn list_pop_all(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Puts items back at the front, in their order.
    async fn list_prepend_many(&self, key: &str, values: &[String]) -> Result<(), StoreError>;
}

/// An in-memory [`CacheStore`] (one process; for tests and as a template).
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, String>>,
    lists: Mutex<HashMap<String, VecDeque<String>>>,
}

#[async_trait]
impl CacheStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.values.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }
    async fn set(&self, key: &str, value: &str, _ttl: Option<Duration>) -> Result<(), StoreError> {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).insert(key.into(), value.into());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        Ok(())
    }
    async fn list_append(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner()).entry(key.into()).or_default().push_back(value.into());
        Ok(())
    }
    async fn list_pop_all(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.lists.lock().unwrap_or_else(|e| e.into_inner()).remove(key).map(Vec::from).unwrap_or_default())
    }
    async fn list_prepend_many(&self, key: &str, values: &[String]) -> Result<(), StoreError> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        let list = lists.entry(key.into()).or_default();
        for v in values.iter().rev() {
            list.push_front(v.clone());
        }
        Ok(())
    }
}

/// A Redis [`CacheStore`]; keys are prefixed (`kelviq:` by default, as the
/// Python SDK's `RedisStore`).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

#[cfg(feature = "redis")]
impl RedisStore {
    /// Connects to `url` (`redis://127.0.0.1:6379/0`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, "kelviq").await
    }

    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?;
        let conn = redis::aio::ConnectionManager::new(client).await.map_err(|e| StoreError(e.to_string()))?;
        Ok(Self { conn, prefix: prefix.to_string() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }
}

#[cfg(feature = "redis")]
fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

#[cfg(feature = "redis")]
#[async_trait]
impl CacheStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("GET").arg(self.key(key)).query_async(&mut c).await.map_err(redis_err)
    }
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(t) = ttl {
            cmd.arg("EX").arg(t.as_secs().max(1));
        }
        cmd.query_async::<()>(&mut c).await.map_err(redis_err)
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL").arg(self.key(key)).query_async::<()>(&mut c).await.map_err(redis_err)
    }
    async fn list_append(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("RPUSH").arg(self.key(key)).arg(value).query_async::<()>(&mut c).await.map_err(redis_err)
    }
    async fn list_pop_all(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let k = self.key(key);
        let (items,): (Vec<String>,) = redis::pipe()
            .atomic()
            .cmd("LRANGE")
            .arg(&k)
            .arg(0)
            .arg(-1)
            .cmd("DEL")
            .arg(&k)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(items)
    }
    async fn list_prepend_many(&self, key: &str, values: &[String]) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg(self.key(key));
        // LPUSH puts each at the head in turn: push the last first to keep the order.
        for v in values.iter().rev() {
            cmd.arg(v);
        }
        cmd.query_async::<()>(&mut c).await.map_err(redis_err)
    }
}

/// Seconds since the epoch, as the Python SDK stores them.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The report queue's L2 key.
pub(crate) const QUEUE_KEY: &str = "kelviq:report_queue";

/// The client's cache and queue.
pub(crate) struct Cache {
    pub enabled: bool,
    pub ttl: Duration,
    pub store: Option<Arc<dyn CacheStore>>,
    /// (customer, feature or "*") → (raw response, stored at).
    l1: Mutex<HashMap<(String, String), (Value, f64)>>,
    /// Reports kept while offline, when there is no store (or it fails).
    queue: Mutex<VecDeque<Value>>,
}

impl Cache {
    pub fn new(enabled: bool, ttl: Duration, store: Option<Arc<dyn CacheStore>>) -> Self {
        Cache { enabled, ttl, store, l1: Mutex::default(), queue: Mutex::default() }
    }

    fn l2_key(customer: &str, feature: &str) -> String {
        format!("kelviq:ent:{customer}:{feature}")
    }

    fn fresh(&self, stored_at: f64) -> bool {
        now_secs() - stored_at < self.ttl.as_secs_f64()
    }

    /// A fresh cached answer (L1, then L2 promoted into L1 with its own age).
    pub async fn get_fresh(&self, customer: &str, feature: &str) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let k = (customer.to_string(), feature.to_string());
        if let Some((v, t)) = self.l1.lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
            if self.fresh(*t) {
                return Some(v.clone());
            }
        }
        let (v, t) = self.l2_get(customer, feature).await?;
        if !self.fresh(t) {
            return None;
        }
        self.l1.lock().unwrap_or_else(|e| e.into_inner()).insert(k, (v.clone(), t));
        Some(v)
    }

    /// Any cached answer, however old (the stale fallback).
    pub async fn get_any(&self, customer: &str, feature: &str) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let k = (customer.to_string(), feature.to_string());
        if let Some((v, _)) = self.l1.lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
            return Some(v.clone());
        }
        self.l2_get(customer, feature).await.map(|(v, _)| v)
    }

    async fn l2_get(&self, customer: &str, feature: &str) -> Option<(Value, f64)> {
        let store = self.store.as_ref()?;
        match store.get(&Self::l2_key(customer, feature)).await {
            Ok(Some(text)) => {
                let doc: Value = serde_json::from_str(&text).ok()?;
                Some((doc.get("v")?.clone(), doc.get("t")?.as_f64()?))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cache store read failed; treating as a miss");
                None
            }
        }
    }

    /// Writes a fresh answer through both tiers.
    pub async fn put(&self, customer: &str, feature: &str, value: &Value) {
        if !self.enabled {
            return;
        }
        let t = now_secs();
        self.l1.lock().unwrap_or_else(|e| e.into_inner()).insert((customer.into(), feature.into()), (value.clone(), t));
        if let Some(store) = &self.store {
            let ttl = (!self.ttl.is_zero()).then(|| Duration::from_secs((self.ttl.as_secs() * 10).max(300)));
            let doc = json!({"v": value, "t": t}).to_string();
            if let Err(e) = store.set(&Self::l2_key(customer, feature), &doc, ttl).await {
                tracing::warn!(error = %e, "cache store write failed");
            }
        }
    }

    /// The optimistic update of a usage report (spec §5.3): every cached
    /// answer of the customer, every row of the feature.
    pub fn apply_usage(&self, customer: &str, feature: &str, value: i64, behaviour: &str) {
        let mut l1 = self.l1.lock().unwrap_or_else(|e| e.into_inner());
        for ((c, _), (answer, _)) in l1.iter_mut() {
            if c != customer {
                continue;
            }
            let Some(rows) = answer.get_mut("entitlements").and_then(Value::as_array_mut) else { continue };
            for row in rows.iter_mut().filter(|r| r["featureId"] == feature) {
                let current = row["currentUsage"].as_i64().unwrap_or(0);
                let usage = if behaviour == "SET" { value } else { current + value };
                row["currentUsage"] = json!(usage);
                if let Some(limit) = row["usageLimit"].as_i64() {
                    row["remaining"] = json!(limit - usage);
                }
            }
        }
    }

    /// Keeps a report for later (L2 list when there is a store, else memory).
    pub async fn enqueue(&self, item: Value) {
        if let Some(store) = &self.store {
            match store.list_append(QUEUE_KEY, &item.to_string()).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "cache store queue failed; keeping the report in memory"),
            }
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(item);
    }

    /// Takes every queued report, oldest first.
    pub async fn take_queue(&self) -> Vec<Value> {
        let mut items = Vec::new();
        if let Some(store) = &self.store {
            match store.list_pop_all(QUEUE_KEY).await {
                Ok(texts) => items.extend(texts.iter().filter_map(|t| serde_json::from_str(t).ok())),
                Err(e) => tracing::warn!(error = %e, "cache store queue read failed"),
            }
        }
        items.extend(self.queue.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
        items
    }

    /// Puts untried reports back at the front.
    pub async fn requeue_front(&self, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            let texts: Vec<String> = items.iter().map(Value::to_string).collect();
            match store.list_prepend_many(QUEUE_KEY, &texts).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "cache store requeue failed; keeping the reports in memory"),
            }
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for item in items.into_iter().rev() {
            q.push_front(item);
        }
    }
}
