//! What a service (selling, usage, the clock, media, the wire) can answer
//! instead of a result. Services know nothing of HTTP: the one conversion
//! to an HTTP error (status and Kelviq's body shapes) is in `http::error`.

use kelviq_core::FieldErrors;
use kelviq_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Fields of the request are invalid.
    #[error("invalid fields: {0}")]
    Fields(FieldErrors),
    /// The request conflicts with an earlier one, naming fields (an
    /// idempotency key reused for a different request).
    #[error("conflicting fields: {0}")]
    FieldConflict(FieldErrors),
    /// The request cannot be done as asked.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// As `BadRequest`, in the shape some endpoints answer (refunds).
    #[error("error: {0}")]
    Error(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Try again shortly (shutting down, the database busy).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A fault of the server's, logged with its cause.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Fields(FieldErrors::single(field, message))
    }

    /// A filesystem failure: a server-side problem, logged with its cause.
    pub fn from_io(e: std::io::Error) -> Self {
        ServiceError::Internal(anyhow::anyhow!("file storage: {e}"))
    }

    pub fn not_found() -> Self {
        ServiceError::NotFound("Not found.".into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::not_found(),
            StoreError::Conflict(what) => ServiceError::Conflict(format!("{what} already exists.")),
            StoreError::Invalid(errors) => ServiceError::Fields(errors),
            busy if busy.is_busy() => ServiceError::Unavailable("The database is busy; retry shortly.".into()),
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<FieldErrors> for ServiceError {
    fn from(e: FieldErrors) -> Self {
        ServiceError::Fields(e)
    }
}
