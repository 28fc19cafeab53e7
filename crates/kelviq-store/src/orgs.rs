use crate::{uuid_col, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: uuid::Uuid,
    /// Small numeric id, shown as `orgId` in report responses.
    pub seq: i64,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

fn org_from_row(row: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: uuid_col(row, "id")?,
        seq: row.try_get("seq")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

const ORG_COLUMNS: &str = "id, seq, slug, name, created_at";

impl Store {
    pub async fn count_organizations(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organizations").fetch_one(self.read_pool()).await?;
        Ok(row.try_get("n")?)
    }

    /// Creates an organisation. A taken slug is `Conflict("organization slug")`.
    pub async fn create_organization(&self, name: &str, slug: &str, now: DateTime<Utc>) -> Result<Organization> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) AS next FROM organizations")
            .fetch_one(&mut *tx)
            .await?;
        let seq: i64 = row.try_get("next")?;
        let org = Organization {
            id: uuid::Uuid::new_v4(),
            seq,
            slug: slug.to_string(),
            name: name.to_string(),
            created_at: now,
        };
        sqlx::query("INSERT INTO organizations (id, seq, slug, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.id.to_string())
            .bind(org.seq)
            .bind(&org.slug)
            .bind(&org.name)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if StoreError::is_unique_violation(&e) {
                    StoreError::Conflict("organization slug")
                } else {
                    e.into()
                }
            })?;
        tx.commit().await?;
        Ok(org)
    }

    pub async fn list_organizations(&self) -> Result<Vec<Organization>> {
        let rows = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY seq"))
            .fetch_all(self.read_pool())
            .await?;
        rows.iter().map(org_from_row).collect()
    }

    pub async fn find_organization_by_slug(&self, slug: &str) -> Result<Option<Organization>> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    pub async fn find_organization(&self, id: uuid::Uuid) -> Result<Option<Organization>> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }
}
