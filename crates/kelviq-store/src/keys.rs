use crate::{uuid_col, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::keys::{KeyKind, NewKey};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::{Environment, Tenant};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;

/// A stored API key (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: uuid::Uuid,
    pub org_id: uuid::Uuid,
    pub org_slug: String,
    pub environment: Environment,
    pub kind: KeyKind,
    pub prefix: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a presented key resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyIdentity {
    pub key_id: uuid::Uuid,
    pub secret_hash: String,
    pub tenant: Tenant,
    pub kind: KeyKind,
    pub revoked: bool,
}

fn parse<T: FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    T::from_str(&s).map_err(StoreError::Corrupt)
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: uuid_col(row, "id")?,
        org_id: uuid_col(row, "org_id")?,
        org_slug: row.try_get("slug")?,
        environment: parse(row, "environment")?,
        kind: parse(row, "kind")?,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        created_at: from_micros(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_micros),
    })
}

const KEY_SELECT: &str =
    "SELECT k.id, k.org_id, o.slug, k.environment, k.kind, k.prefix, k.name, k.created_at, k.revoked_at \
     FROM api_keys k JOIN organizations o ON o.id = k.org_id";

impl Store {
    pub async fn insert_api_key(
        &self,
        org_id: uuid::Uuid,
        env: Environment,
        kind: KeyKind,
        name: Option<&str>,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<ApiKey> {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, environment, kind, prefix, secret_hash, name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(org_id.to_string())
        .bind(env.as_str())
        .bind(kind.as_str())
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(name)
        .bind(to_micros(now))
        .execute(self.write_pool())
        .await?;
        self.find_api_key(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn find_api_key(&self, id: uuid::Uuid) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE k.id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Resolves the hash of a presented secret to its tenant and kind.
    pub async fn find_key_identity(&self, secret_hash: &str) -> Result<Option<KeyIdentity>> {
        let row = sqlx::query(
            "SELECT k.id, k.secret_hash, k.org_id, o.seq, k.environment, k.kind, k.revoked_at \
             FROM api_keys k JOIN organizations o ON o.id = k.org_id WHERE k.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(self.read_pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(KeyIdentity {
            key_id: uuid_col(&row, "id")?,
            secret_hash: row.try_get("secret_hash")?,
            tenant: Tenant {
                org_id: uuid_col(&row, "org_id")?,
                org_seq: row.try_get("seq")?,
                env: parse(&row, "environment")?,
            },
            kind: parse(&row, "kind")?,
            revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        }))
    }

    /// Keys of one organisation, or of all when `org_id` is `None`; oldest first.
    pub async fn list_api_keys(&self, org_id: Option<uuid::Uuid>) -> Result<Vec<ApiKey>> {
        let rows = match org_id {
            Some(org) => {
                sqlx::query(&format!("{KEY_SELECT} WHERE k.org_id = $1 ORDER BY k.created_at, k.id"))
                    .bind(org.to_string())
                    .fetch_all(self.read_pool())
                    .await?
            }
            None => {
                sqlx::query(&format!("{KEY_SELECT} ORDER BY o.seq, k.created_at, k.id"))
                    .fetch_all(self.read_pool())
                    .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes the key whose id or display prefix is `id_or_prefix`. A prefix
    /// that matches several keys is `Conflict("ambiguous key prefix")`.
    pub async fn revoke_api_key(&self, id_or_prefix: &str, now: DateTime<Utc>) -> Result<ApiKey> {
        let rows = sqlx::query(&format!("{KEY_SELECT} WHERE k.id = $1 OR k.prefix = $1"))
            .bind(id_or_prefix)
            .fetch_all(self.read_pool())
            .await?;
        let key = match rows.as_slice() {
            [] => return Err(StoreError::NotFound),
            [one] => key_from_row(one)?,
            _ => return Err(StoreError::Conflict("ambiguous key prefix")),
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(to_micros(now))
            .bind(key.id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            let row = sqlx::query("SELECT secret_hash FROM api_keys WHERE id = $1")
                .bind(key.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let hash: String = row.try_get("secret_hash")?;
            crate::changes::record_change(&mut tx, self.backend, crate::changes::TOPIC_API_KEY, &hash, now).await?;
        }
        tx.commit().await?;
        self.find_api_key(key.id).await?.ok_or(StoreError::NotFound)
    }
}
