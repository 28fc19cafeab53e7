//! `POST /media/` hands out a presigned upload form (like S3's POST policy)
//! that `POST /media/upload/` accepts; files are then served through signed
//! links (plan files) or public URLs (product images).

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{BaseUrl, Body, ServerCaller};
use crate::media::{self, MEDIA_SECRET};
use crate::state::AppState;
use crate::wire::ops::{PresignFieldsOut, PresignOut};
use axum::body::Body as HttpBody;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kelviq_core::signing::{safe_file_name, sign, verify};
use kelviq_store::{MediaFile, MediaOwner, Upload};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/media", post(presign))
        // The upload checks its own size limit (from the signed policy) while streaming.
        .route("/media/upload", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/media/files/{id}/{name}", get(download))
        .route("/media/public/{id}/{name}", get(public_image))
}

/// Body of `POST /media/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PresignIn {
    /// Name of the file to upload.
    pub file_name: Option<String>,
    /// Its MIME type, e.g. `application/pdf`.
    pub file_type: Option<String>,
}

/// Get a form to upload one file: POST `fields` plus a `file` part to `url`
/// (multipart/form-data) within an hour, then pass `fileKey` as an
/// `imageKeys`/`fileKeys` entry.
#[utoipa::path(post, path = "/api/v1/media/", tag = "media", request_body = PresignIn, security(("bearer" = [])),
    responses((status = 200, description = "`{url, fields, fileKey}`", body = PresignOut), (status = 400), (status = 401)))]
pub async fn presign(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    BaseUrl(base): BaseUrl,
    Body(input): Body<PresignIn>,
) -> ApiResult<Json<PresignOut>> {
    let mut errors = kelviq_core::FieldErrors::new();
    let name = match input.file_name.as_deref().map(safe_file_name) {
        None => {
            errors.add("file_name", "This field is required.");
            None
        }
        Some(None) => {
            errors.add("file_name", "Give a file name, e.g. \"terms.pdf\".");
            None
        }
        Some(Some(n)) => Some(n),
    };
    let content_type = input.file_type.unwrap_or_default();
    let looks_like_mime = content_type.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && content_type.chars().all(|c| c.is_ascii_graphic())
            && content_type.len() <= 100
    });
    if !looks_like_mime {
        errors.add("file_type", "A MIME type such as \"application/pdf\" is required.");
    }
    errors.into_result()?;
    let now = state.clock.now();
    let file_key = format!("tmp/{}/{}", uuid::Uuid::new_v4(), name.expect("checked"));
    let expires_at = now + chrono::Duration::hours(1);
    let upload = Upload {
        file_key: file_key.clone(),
        org_id: tenant.org_id,
        environment: tenant.env,
        file_name: file_key.rsplit('/').next().unwrap_or_default().to_string(),
        content_type: content_type.clone(),
        expires_at,
        uploaded_at: None,
        size: None,
        consumed_at: None,
    };
    state.store.insert_upload(&tenant, &upload, now).await?;
    let policy = json!({
        "key": file_key,
        "expires": expires_at.timestamp(),
        "max_bytes": state.config.media_max_bytes,
        "content_type": content_type,
    });
    let policy = hex::encode(policy.to_string());
    let secret = state.store.server_secret(MEDIA_SECRET).await?;
    let signature = sign(&secret, policy.as_bytes());
    Ok(Json(PresignOut {
        url: format!("{base}/api/v1/media/upload/"),
        fields: PresignFieldsOut { key: file_key.clone(), policy, signature, content_type: content_type.to_string() },
        file_key,
    }))
}

/// The largest text field of an upload form (key, policy, signature, …).
const FIELD_MAX_BYTES: usize = 8 * 1024;
/// What an upload form may carry beyond its file: fields and part headers.
const FORM_MARGIN_BYTES: u64 = 64 * 1024;

fn refused(message: &str) -> ApiError {
    ApiError::BadRequest(message.to_string())
}

/// Receives a presigned upload: the form fields, then the `file` part.
#[utoipa::path(post, path = "/api/v1/media/upload/", tag = "media",
    responses((status = 204, description = "Stored"), (status = 400, description = "Bad form, signature or policy"), (status = 413)))]
pub async fn upload(State(state): State<AppState>, request: Request) -> ApiResult<StatusCode> {
    // The whole form: the largest file a policy allows, and the fields.
    let limit = state.config.media_max_bytes.saturating_add(FORM_MARGIN_BYTES);
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit as usize));
    }
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, limit as usize);
    let request = Request::from_parts(parts, HttpBody::new(body));
    let mut form = Multipart::from_request(request, &state).await.map_err(|e| refused(&e.body_text()))?;
    let form_error = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit as usize)
        } else {
            refused(&format!("Malformed upload form: {}", e.body_text()))
        }
    };
    let (mut key, mut policy, mut signature) = (None, None, None);
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or("").to_string();
        if name != "file" {
            // A field is read only up to its cap, never whole.
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                if text.len() + chunk.len() > FIELD_MAX_BYTES {
                    return Err(ApiError::field(&name, format!("A form field holds at most {FIELD_MAX_BYTES} bytes.")));
                }
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(text).map_err(|_| refused("Form fields must be UTF-8 text."))?;
            match name.as_str() {
                "key" => key = Some(text),
                "policy" => policy = Some(text),
                "signature" => signature = Some(text),
                _ => {}
            }
            continue;
        }
        // The file part: everything it needs must have come before it.
        let (key, policy, signature) = match (&key, &policy, &signature) {
            (Some(k), Some(p), Some(s)) => (k.clone(), p.clone(), s.clone()),
            _ => return Err(refused("The key, policy and signature fields must come before the file.")),
        };
        let grant = media::grant_upload(&state, &key, &policy, &signature).await?;
        let max = grant.max_bytes;
        let target = grant.target;
        let partial = target.with_extension("partial");
        let written = async {
            tokio::fs::create_dir_all(target.parent().expect("has a parent")).await.map_err(ApiError::from_io)?;
            let mut out = tokio::fs::File::create(&partial).await.map_err(ApiError::from_io)?;
            let mut size: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                size += chunk.len() as u64;
                if size > max {
                    return Err(ApiError::PayloadTooLarge(max as usize));
                }
                out.write_all(&chunk).await.map_err(ApiError::from_io)?;
            }
            // Durable before it is acknowledged.
            out.sync_all().await.map_err(ApiError::from_io)?;
            tokio::fs::rename(&partial, &target).await.map_err(ApiError::from_io)?;
            Ok(size)
        }
        .await;
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        media::uploaded(&state, &key, size).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(refused("The upload form has no file part."))
}

#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    pub expires: Option<i64>,
    pub signature: Option<String>,
}

pub(crate) async fn serve_file(state: &AppState, file: &MediaFile, disposition: Disposition) -> ApiResult<Response> {
    let path = state.config.media_dir().join(&file.storage_path);
    let handle = tokio::fs::File::open(&path).await.map_err(|_| ApiError::not_found())?;
    let len = handle.metadata().await.map_err(ApiError::from_io)?.len();
    let body = HttpBody::from_stream(tokio_util::io::ReaderStream::new(handle));
    // Only a sniffed image is shown inline; anything else is a download.
    let inline = disposition == Disposition::InlineImage && crate::media::is_inline_image(&file.content_type);
    let content_type = if inline || is_plain_mime(&file.content_type) {
        file.content_type.clone()
    } else {
        "application/octet-stream".to_string()
    };
    let kind = if inline { "inline" } else { "attachment" };
    Ok((
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_LENGTH, len.to_string()),
            (CONTENT_DISPOSITION, content_disposition(kind, &file.name)),
            (CACHE_CONTROL, "private, max-age=60".into()),
            // A user's file never runs as a page of this origin.
            (X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'".into()),
        ],
        body,
    )
        .into_response())
}

/// How a file is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Shown in the page if it is an image (product images).
    InlineImage,
    /// Always downloaded.
    Attachment,
}

/// A MIME type of printable ASCII with no parameters that could smuggle a header.
fn is_plain_mime(t: &str) -> bool {
    t.len() <= 100 && t.chars().all(|c| c.is_ascii_graphic()) && t.split_once('/').is_some()
}

/// `attachment; filename="a_b.pdf"; filename*=UTF-8''a%20b.pdf` (RFC 6266):
/// the quoted name keeps only safe ASCII, the extended one has every byte.
fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}", crate::media::percent_encode(name))
}

/// A plan or product file, through a link signed a moment ago.
#[utoipa::path(get, path = "/api/v1/media/files/{id}/{name}", tag = "media",
    params(("id" = String, Path), ("name" = String, Path), ("expires" = i64, Query), ("signature" = String, Query)),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = [u8]), (status = 403, description = "Bad or expired link"), (status = 404)))]
pub async fn download(
    State(state): State<AppState>,
    Path((id, _name)): Path<(String, String)>,
    Query(q): Query<SignedQuery>,
) -> ApiResult<Response> {
    let (Some(expires), Some(signature)) = (q.expires, q.signature) else { return Err(ApiError::Forbidden) };
    let secret = state.store.server_secret(MEDIA_SECRET).await?;
    if expires < state.clock.now().timestamp() || !verify(&secret, format!("{id}:{expires}").as_bytes(), &signature) {
        return Err(ApiError::Forbidden);
    }
    let file = match state.store.find_media_by_id(&id, MediaOwner::PlanFile).await? {
        Some(f) => Some(f),
        None => state.store.find_media_by_id(&id, MediaOwner::ProductFile).await?,
    };
    serve_file(&state, &file.ok_or_else(ApiError::not_found)?, Disposition::Attachment).await
}

/// A product image or the seller's logo (public, like a CDN asset) while it is enabled.
#[utoipa::path(get, path = "/api/v1/media/public/{id}/{name}", tag = "media",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The image", content_type = "application/octet-stream", body = [u8]), (status = 404)))]
pub async fn public_image(
    State(state): State<AppState>,
    Path((id, _name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let file = match state.store.find_media_by_id(&id, MediaOwner::ProductImage).await? {
        Some(f) => Some(f),
        None => state.store.find_media_by_id(&id, MediaOwner::BrandLogo).await?,
    };
    let file = file.filter(|f| f.enabled).ok_or_else(ApiError::not_found)?;
    serve_file(&state, &file, Disposition::InlineImage).await
}
