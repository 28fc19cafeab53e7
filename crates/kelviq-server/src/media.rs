//! Files on disk: presigned uploads land under `<data_dir>/media/tmp/…`;
//! attaching one to a product or plan copies it under `media/org/<org>/…`
//! and records it. Links to files are signed with a secret shared by every
//! server process on the database.

use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use kelviq_core::signing::sign;
use kelviq_core::Tenant;
use kelviq_store::{MediaChanges, MediaFile, MediaOwner, StoreError, Upload};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use utoipa::ToSchema;

/// Name of the shared secret that signs upload policies and download links.
pub const MEDIA_SECRET: &str = "media_signing_key";
/// How long a download link works.
pub const DOWNLOAD_LINK_SECONDS: i64 = 300;

pub fn tmp_path(root: &Path, file_key: &str) -> PathBuf {
    root.join(file_key)
}

/// The image formats a product image may be, by their first bytes (never by
/// the type the uploader declared): PNG, JPEG, GIF and WebP. SVG is not
/// among them: it can carry script.
pub fn sniff_image(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Whether a stored type is one of the sniffed image types, shown inline.
pub fn is_inline_image(content_type: &str) -> bool {
    matches!(content_type, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// A path segment or header parameter with every byte but the unreserved
/// ones (`A-Z a-z 0-9 - . _ ~`) percent-encoded.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first bytes of an uploaded file.
async fn file_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(16);
    tokio::fs::File::open(path).await?.take(16).read_to_end(&mut head).await?;
    Ok(head)
}

/// Checks that every key names an upload of this tenant, finished and not yet
/// attached, and, for a product image, that the file is an image (its type
/// then becomes the sniffed one). Nothing is written; a bad key is a field
/// error on `field`.
pub async fn check_uploads(
    state: &AppState,
    tenant: &Tenant,
    owner: MediaOwner,
    field: &str,
    keys: &[String],
) -> ServiceResult<Vec<Upload>> {
    let mut uploads: Vec<Upload> = Vec::new();
    for key in keys {
        if uploads.iter().any(|u| &u.file_key == key) {
            continue;
        }
        match state.store.find_attachable_upload(tenant, key).await? {
            Some(mut u) if matches!(owner, MediaOwner::ProductImage | MediaOwner::BrandLogo) => {
                let head = file_head(&tmp_path(&state.config.media_dir(), &u.file_key))
                    .await
                    .map_err(ServiceError::from_io)?;
                match sniff_image(&head) {
                    Some(kind) => u.content_type = kind.to_string(),
                    None => {
                        return Err(ServiceError::field(
                            field,
                            format!("Upload \"{key}\" is not an image: use a PNG, JPEG, GIF or WebP file."),
                        ))
                    }
                }
                uploads.push(u)
            }
            Some(u) => uploads.push(u),
            None => {
                return Err(ServiceError::field(
                    field,
                    format!("Unknown upload key \"{key}\": upload it through /media/ first (keys are used once)."),
                ))
            }
        }
    }
    Ok(uploads)
}

/// Attaches checked uploads to an owner: copies the bytes into permanent
/// storage, records the files, then drops the temporary copies.
pub async fn attach(
    state: &AppState,
    tenant: &Tenant,
    owner: MediaOwner,
    owner_id: &str,
    uploads: Vec<Upload>,
) -> ServiceResult<()> {
    if uploads.is_empty() {
        return Ok(());
    }
    let root = state.config.media_dir();
    let existing = state.store.list_media(tenant, owner, owner_id).await?;
    let first_ordering = existing.iter().map(|m| m.ordering + 1).max().unwrap_or(0);
    let mut needs_thumbnail = owner == MediaOwner::ProductImage && !existing.iter().any(|m| m.thumbnail);
    let mut files = Vec::new();
    for (ordering, upload) in (first_ordering..).zip(uploads) {
        let id = uuid::Uuid::new_v4();
        let name = upload.file_key.rsplit('/').next().unwrap_or("file").to_string();
        let storage_path = format!("org/{}/{}/{}", tenant.org_id, id, name);
        let target = root.join(&storage_path);
        let copied = async {
            tokio::fs::create_dir_all(target.parent().expect("has a parent")).await?;
            tokio::fs::copy(tmp_path(&root, &upload.file_key), &target).await?;
            tokio::fs::File::open(&target).await?.sync_all().await
        }
        .await;
        if let Err(e) = copied {
            remove_files(&root, files.iter().map(|(_, f): &(Upload, MediaFile)| f.storage_path.as_str())).await;
            return Err(ServiceError::Internal(anyhow::anyhow!("storing {}: {e}", upload.file_key)));
        }
        let file = MediaFile {
            id,
            owner_id: owner_id.to_string(),
            name,
            content_type: upload.content_type.clone(),
            storage_path,
            size: upload.size.unwrap_or(0),
            ordering,
            thumbnail: std::mem::take(&mut needs_thumbnail),
            enabled: true,
            created_at: state.clock.now(),
        };
        files.push((upload, file));
    }
    if let Err(e) = state.store.attach_media(tenant, owner, owner_id, &files, state.clock.now()).await {
        remove_files(&root, files.iter().map(|(_, f)| f.storage_path.as_str())).await;
        return Err(match e {
            StoreError::Conflict(_) => {
                ServiceError::Conflict("An upload was attached by another request at the same time.".into())
            }
            other => other.into(),
        });
    }
    for (upload, _) in &files {
        let tmp = tmp_path(&root, &upload.file_key);
        let _ = tokio::fs::remove_file(&tmp).await;
        if let Some(dir) = tmp.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
    }
    Ok(())
}

pub async fn remove_files<'a>(root: &Path, paths: impl Iterator<Item = &'a str>) {
    for p in paths {
        let path = root.join(p);
        let _ = tokio::fs::remove_file(&path).await;
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
    }
}

/// A download link for a plan file, valid for [`DOWNLOAD_LINK_SECONDS`].
pub async fn signed_file_url(state: &AppState, base: &str, file: &MediaFile) -> ServiceResult<String> {
    let expires = state.clock.now().timestamp() + DOWNLOAD_LINK_SECONDS;
    let secret = state.store.server_secret(MEDIA_SECRET).await?;
    let signature = sign(&secret, format!("{}:{expires}", file.id).as_bytes());
    Ok(format!(
        "{base}/api/v1/media/files/{}/{}?expires={expires}&signature={signature}",
        file.id,
        percent_encode(&file.name)
    ))
}

/// The public URL of an enabled product image.
pub fn image_url(base: &str, file: &MediaFile) -> String {
    format!("{base}/api/v1/media/public/{}/{}", file.id, percent_encode(&file.name))
}

/// Body of `PATCH /catalog/products/{product_pk}/image/{pk}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MediaPatch {
    pub name: Option<String>,
    pub ordering: Option<i64>,
    /// Product images only: make this the thumbnail (clears the others).
    pub thumbnail: Option<bool>,
    pub enabled: Option<bool>,
}

impl MediaPatch {
    pub fn into_changes(self) -> ServiceResult<MediaChanges> {
        if let Some(n) = &self.name {
            if n.trim().is_empty() || n.chars().count() > 255 {
                return Err(ServiceError::field("name", "Give a name of 1 to 255 characters."));
            }
            if n.chars().any(char::is_control) || n.contains(['/', '\\']) {
                return Err(ServiceError::field("name", "A file name may not contain control characters or slashes."));
            }
        }
        Ok(MediaChanges { name: self.name, ordering: self.ordering, thumbnail: self.thumbnail, enabled: self.enabled })
    }
}

/// What a presigned upload may write: where, and at most how much.
#[derive(Debug, Clone)]
pub struct UploadGrant {
    pub key: String,
    pub max_bytes: u64,
    /// Where the file goes until it is attached.
    pub target: PathBuf,
}

/// Checks an upload form's key, policy and signature (the policy signed by
/// this server, for this key, not expired, for an upload not yet attached).
pub async fn grant_upload(state: &AppState, key: &str, policy: &str, signature: &str) -> ServiceResult<UploadGrant> {
    let refused = |m: &str| ServiceError::BadRequest(m.to_string());
    let secret = state.store.server_secret(MEDIA_SECRET).await?;
    if !kelviq_core::signing::verify(&secret, policy.as_bytes(), signature) {
        return Err(refused("The upload signature does not match its policy."));
    }
    let terms: serde_json::Value = hex::decode(policy)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refused("The upload policy is malformed."))?;
    if terms["key"] != key {
        return Err(refused("The key does not match the upload policy."));
    }
    if terms["expires"].as_i64().unwrap_or(0) < state.clock.now().timestamp() {
        return Err(refused("The upload policy has expired; ask /media/ for a new one."));
    }
    let upload = state.store.find_upload(key).await?.ok_or_else(|| refused("Unknown upload key."))?;
    if upload.consumed_at.is_some() {
        return Err(refused("This upload was already attached."));
    }
    Ok(UploadGrant {
        key: key.to_string(),
        max_bytes: terms["max_bytes"].as_u64().unwrap_or(0),
        target: tmp_path(&state.config.media_dir(), key),
    })
}

/// Records that an upload's file is on disk (synced), `size` bytes long.
pub async fn uploaded(state: &AppState, key: &str, size: u64) -> ServiceResult<()> {
    state.store.mark_uploaded(key, size as i64, state.clock.now()).await?;
    Ok(())
}
