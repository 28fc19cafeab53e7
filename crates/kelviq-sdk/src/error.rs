use serde_json::Value;

/// Which Python SDK exception an error corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400, or rejected by client-side validation before sending (no status).
    InvalidRequest,
    /// 401 or 403.
    Authentication,
    /// 404.
    NotFound,
    /// 5xx.
    Server,
    /// Any other status, or a network failure or timeout (no status).
    Api,
}

/// An API error: its kind, HTTP status (if a response arrived) and the parsed
/// response body (or client-side validation details).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}{}", status.map(|s| format!(" (Status Code: {s})")).unwrap_or_default())]
pub struct Error {
    kind: ErrorKind,
    status: Option<u16>,
    message: String,
    details: Option<Value>,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        status: Option<u16>,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        Self { kind, status, message: message.into(), details }
    }

    pub(crate) fn invalid_request(message: impl Into<String>, details: Option<Value>) -> Self {
        Self::new(ErrorKind::InvalidRequest, None, message, details)
    }

    /// Maps a non-2xx status and its body as the Python SDK does.
    pub(crate) fn from_status(status: u16, url: &str, details: Option<Value>) -> Self {
        let (kind, message) = match status {
            400 => (ErrorKind::InvalidRequest, "Bad Request".to_string()),
            401 => (ErrorKind::Authentication, "Unauthorized: Access token is invalid, missing, or expired.".into()),
            403 => {
                (ErrorKind::Authentication, "Forbidden: Access token does not grant permission for this action.".into())
            }
            404 => (ErrorKind::NotFound, format!("Not Found: The resource at {url} was not found.")),
            s if s >= 500 => (ErrorKind::Server, "Server Error".into()),
            s => (ErrorKind::Api, format!("HTTP Error {s}")),
        };
        Self::new(kind, Some(status), message, details)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status, or `None` for network failures and client-side validation.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error body the server sent (e.g. `{"email": ["Enter a valid email address."]}`).
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// True for failures where no HTTP response arrived (connection refused, timeout).
    pub fn is_network(&self) -> bool {
        self.kind == ErrorKind::Api && self.status.is_none()
    }
}
