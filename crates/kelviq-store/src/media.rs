//! Presigned uploads and attached files (product images, plan files).

use crate::{tenant_binds, uuid_col, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::{Environment, Tenant};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub file_key: String,
    pub org_id: uuid::Uuid,
    pub environment: Environment,
    pub file_name: String,
    pub content_type: String,
    pub expires_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub size: Option<i64>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// Whose a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOwner {
    /// An image of a product (owner id: the product UUID).
    ProductImage,
    /// A downloadable file of a product (owner id: the product UUID).
    ProductFile,
    /// A downloadable file of a plan (owner id: the plan identifier).
    PlanFile,
    /// The seller's logo on the hosted pages (owner id: `logo`).
    BrandLogo,
}

impl MediaOwner {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaOwner::ProductImage => "product_image",
            MediaOwner::ProductFile => "product_file",
            MediaOwner::PlanFile => "plan_file",
            MediaOwner::BrandLogo => "brand_logo",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaFile {
    pub id: uuid::Uuid,
    pub owner_id: String,
    pub name: String,
    pub content_type: String,
    /// Path relative to the media root.
    pub storage_path: String,
    pub size: i64,
    pub ordering: i64,
    pub thumbnail: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// Display changes to a file.
#[derive(Debug, Clone, Default)]
pub struct MediaChanges {
    pub name: Option<String>,
    pub ordering: Option<i64>,
    pub thumbnail: Option<bool>,
    pub enabled: Option<bool>,
}

const UPLOAD_COLUMNS: &str =
    "file_key, org_id, environment, file_name, content_type, expires_at, uploaded_at, size, consumed_at";
const MEDIA_COLUMNS: &str =
    "id, owner_id, name, content_type, storage_path, size, ordering, thumbnail, enabled, created_at";

fn upload_from_row(row: &AnyRow) -> Result<Upload> {
    let env: String = row.try_get("environment")?;
    Ok(Upload {
        file_key: row.try_get("file_key")?,
        org_id: uuid_col(row, "org_id")?,
        environment: Environment::from_str(&env).map_err(StoreError::Corrupt)?,
        file_name: row.try_get("file_name")?,
        content_type: row.try_get("content_type")?,
        expires_at: from_micros(row.try_get("expires_at")?),
        uploaded_at: row.try_get::<Option<i64>, _>("uploaded_at")?.map(from_micros),
        size: row.try_get("size")?,
        consumed_at: row.try_get::<Option<i64>, _>("consumed_at")?.map(from_micros),
    })
}

fn media_from_row(row: &AnyRow) -> Result<MediaFile> {
    Ok(MediaFile {
        id: uuid_col(row, "id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        content_type: row.try_get("content_type")?,
        storage_path: row.try_get("storage_path")?,
        size: row.try_get("size")?,
        ordering: row.try_get("ordering")?,
        thumbnail: row.try_get::<i64, _>("thumbnail")? != 0,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

impl Store {
    /// A secret shared by every server process on this database, made on first use.
    pub async fn server_secret(&self, name: &str) -> Result<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(hex::encode(fresh))
            .execute(self.write_pool())
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.write_pool())
            .await?;
        let value: String = row.try_get("value")?;
        hex::decode(value).map_err(|e| StoreError::Corrupt(format!("server secret {name}: {e}")))
    }

    pub async fn insert_upload(&self, tenant: &Tenant, upload: &Upload, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO uploads (file_key, org_id, environment, file_name, content_type, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&upload.file_key)
        .bind(org)
        .bind(env)
        .bind(&upload.file_name)
        .bind(&upload.content_type)
        .bind(to_micros(now))
        .bind(to_micros(upload.expires_at))
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// An upload by key, whoever it belongs to (the caller proved it with a signature).
    pub async fn find_upload(&self, file_key: &str) -> Result<Option<Upload>> {
        let row = sqlx::query(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE file_key = $1"))
            .bind(file_key)
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    pub async fn mark_uploaded(&self, file_key: &str, size: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE uploads SET uploaded_at = $1, size = $2 WHERE file_key = $3 AND consumed_at IS NULL")
            .bind(to_micros(now))
            .bind(size)
            .bind(file_key)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// The tenant's uploaded, not yet attached file for `file_key`.
    pub async fn find_attachable_upload(&self, tenant: &Tenant, file_key: &str) -> Result<Option<Upload>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE file_key = $1 AND org_id = $2 AND environment = $3 \
             AND uploaded_at IS NOT NULL AND consumed_at IS NULL"
        ))
        .bind(file_key)
        .bind(org)
        .bind(env)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// Records attached files and marks their uploads used, in one transaction.
    /// An upload attached meanwhile by another request is `Conflict("upload")`.
    pub async fn attach_media(
        &self,
        tenant: &Tenant,
        owner: MediaOwner,
        owner_id: &str,
        files: &[(Upload, MediaFile)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        for (upload, f) in files {
            let used = sqlx::query("UPDATE uploads SET consumed_at = $1 WHERE file_key = $2 AND consumed_at IS NULL")
                .bind(to_micros(now))
                .bind(&upload.file_key)
                .execute(&mut *tx)
                .await?;
            if used.rows_affected() != 1 {
                return Err(StoreError::Conflict("upload"));
            }
            sqlx::query(
                "INSERT INTO media_files (id, org_id, environment, owner_kind, owner_id, name, content_type, storage_path, size, \
                 ordering, thumbnail, enabled, created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
            )
            .bind(f.id.to_string())
            .bind(&org)
            .bind(env)
            .bind(owner.as_str())
            .bind(owner_id)
            .bind(&f.name)
            .bind(&f.content_type)
            .bind(&f.storage_path)
            .bind(f.size)
            .bind(f.ordering)
            .bind(f.thumbnail as i64)
            .bind(f.enabled as i64)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An owner's files, in display order.
    pub async fn list_media(&self, tenant: &Tenant, owner: MediaOwner, owner_id: &str) -> Result<Vec<MediaFile>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media_files WHERE org_id = $1 AND environment = $2 AND owner_kind = $3 AND owner_id = $4 \
             ORDER BY ordering, pk"
        ))
        .bind(org)
        .bind(env)
        .bind(owner.as_str())
        .bind(owner_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(media_from_row).collect()
    }

    pub async fn find_media(
        &self,
        tenant: &Tenant,
        owner: MediaOwner,
        owner_id: &str,
        id: &str,
    ) -> Result<Option<MediaFile>> {
        Ok(self.list_media(tenant, owner, owner_id).await?.into_iter().find(|m| m.id.to_string() == id))
    }

    /// A file by id alone, for links whose signature already proves them.
    pub async fn find_media_by_id(&self, id: &str, owner: MediaOwner) -> Result<Option<MediaFile>> {
        let row = sqlx::query(&format!("SELECT {MEDIA_COLUMNS} FROM media_files WHERE id = $1 AND owner_kind = $2"))
            .bind(id)
            .bind(owner.as_str())
            .fetch_optional(self.read_pool())
            .await?;
        row.as_ref().map(media_from_row).transpose()
    }

    /// Changes a file's display fields; a new thumbnail clears the owner's others.
    pub async fn update_media(
        &self,
        tenant: &Tenant,
        owner: MediaOwner,
        owner_id: &str,
        id: &str,
        changes: &MediaChanges,
        now: DateTime<Utc>,
    ) -> Result<MediaFile> {
        let mut file = self.find_media(tenant, owner, owner_id, id).await?.ok_or(StoreError::NotFound)?;
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        if changes.thumbnail == Some(true) {
            sqlx::query(
                "UPDATE media_files SET thumbnail = 0 WHERE org_id = $1 AND environment = $2 AND owner_kind = $3 AND owner_id = $4",
            )
            .bind(&org)
            .bind(env)
            .bind(owner.as_str())
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(n) = &changes.name {
            file.name = n.clone();
        }
        if let Some(o) = changes.ordering {
            file.ordering = o;
        }
        if let Some(t) = changes.thumbnail {
            file.thumbnail = t;
        }
        if let Some(e) = changes.enabled {
            file.enabled = e;
        }
        sqlx::query("UPDATE media_files SET name = $1, ordering = $2, thumbnail = $3, enabled = $4, modified_at = $5 WHERE id = $6")
            .bind(&file.name)
            .bind(file.ordering)
            .bind(file.thumbnail as i64)
            .bind(file.enabled as i64)
            .bind(to_micros(now))
            .bind(file.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(file)
    }

    /// Deletes a file's record and returns it (the caller removes the bytes).
    pub async fn delete_media(
        &self,
        tenant: &Tenant,
        owner: MediaOwner,
        owner_id: &str,
        id: &str,
    ) -> Result<MediaFile> {
        let file = self.find_media(tenant, owner, owner_id, id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query("DELETE FROM media_files WHERE id = $1")
            .bind(file.id.to_string())
            .execute(self.write_pool())
            .await?;
        Ok(file)
    }
}
