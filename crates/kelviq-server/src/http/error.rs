//! The API error: knows its status and renders the Kelviq body shapes
//! (spec §2.2): `{"field": ["message"]}` for validation, `{"detail": "…"}` otherwise.

use crate::error::ServiceError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kelviq_core::FieldErrors;
use kelviq_store::StoreError;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid fields: {0}")]
    Fields(FieldErrors),
    /// A 409 naming fields: the request conflicts with an earlier one (an
    /// idempotency key reused for a different request).
    #[error("conflicting fields: {0}")]
    FieldConflict(FieldErrors),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A 400 in the `{"error": "…"}` shape (refunds, licenses).
    #[error("error: {0}")]
    Error(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("forbidden")]
    Forbidden,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    #[error("request body over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Fields(FieldErrors::single(field, message))
    }

    /// A filesystem failure: a server-side problem, logged with its cause.
    pub fn from_io(e: std::io::Error) -> Self {
        ApiError::Internal(anyhow::anyhow!("file storage: {e}"))
    }

    pub fn not_found() -> Self {
        ApiError::NotFound("Not found.".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Fields(_) | ApiError::BadRequest(_) | ApiError::Error(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) | ApiError::FieldConflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        let detail = |s: &str| json!({ "detail": s });
        match self {
            ApiError::Fields(errors) | ApiError::FieldConflict(errors) => {
                let map: Map<String, Value> = errors.fields().iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                Value::Object(map)
            }
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m)
            | ApiError::TooManyRequests(m) => detail(m),
            ApiError::Unauthenticated(m) => detail(m),
            ApiError::Error(m) => json!({ "error": m }),
            ApiError::Forbidden => detail("You do not have permission to perform this action."),
            ApiError::MethodNotAllowed(m) => detail(&format!("Method \"{m}\" not allowed.")),
            ApiError::PayloadTooLarge(limit) => detail(&format!("Request body is too large (limit is {limit} bytes).")),
            ApiError::UnsupportedMediaType(t) => detail(&format!("Unsupported media type \"{t}\" in request.")),
            ApiError::Internal(_) => detail("A server error occurred."),
        }
    }
}

impl From<StoreError> for ApiError {
    /// As a service would answer it (one mapping of store errors).
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

/// The one place a service's error becomes an HTTP one.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Fields(f) => ApiError::Fields(f),
            ServiceError::FieldConflict(f) => ApiError::FieldConflict(f),
            ServiceError::BadRequest(m) => ApiError::BadRequest(m),
            ServiceError::Error(m) => ApiError::Error(m),
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::Fields(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Logged with the request's context and the whole cause chain;
            // the client sees only a generic message.
            ApiError::Internal(cause) => {
                crate::http::reqlog::in_span(|| tracing::error!(error = format!("{cause:#}"), "internal error"))
            }
            ApiError::Unavailable(why) => crate::http::reqlog::in_span(|| tracing::warn!(reason = %why, "unavailable")),
            _ => {}
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        response
    }
}
