//! Answers of the operations endpoints, the test clock and media uploads.

use serde::Serialize;
use utoipa::ToSchema;

/// Liveness and readiness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok`.
    pub status: String,
    /// Readiness only: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The sandbox's current time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestClockOut {
    pub now: String,
    pub offset_seconds: i64,
}

/// What moving the test clock did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockAdvancedOut {
    /// Where the clock now stands.
    pub now: String,
    /// How many due items ran.
    pub ran: u64,
    /// False when the clock stopped short of the target (see `detail`).
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The form fields an upload posts with its file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PresignFieldsOut {
    pub key: String,
    pub policy: String,
    pub signature: String,
    #[serde(rename = "Content-Type")]
    pub content_type: String,
}

/// Where and how to upload a file.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresignOut {
    pub url: String,
    pub fields: PresignFieldsOut,
    pub file_key: String,
}
