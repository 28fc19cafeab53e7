//! The sandbox test clock: read it, move it forward.

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Body, ServerCaller};
use crate::selling::test_clock::{self as clock, Move, MAX_ADVANCE_ITEMS};
use crate::state::AppState;
use crate::wire::ops::{ClockAdvancedOut, TestClockOut};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kelviq_core::timefmt::iso_seconds;
use serde::Deserialize;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new().route("/test-clock", get(test_clock)).route("/test-clock/advance", post(advance_test_clock))
}

/// The sandbox's current time.
#[utoipa::path(get, path = "/api/v1/test-clock/", tag = "money", security(("bearer" = [])),
    responses((status = 200, description = "The sandbox's time", body = TestClockOut), (status = 400, description = "Production"), (status = 401)))]
pub async fn test_clock(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
) -> ApiResult<Json<TestClockOut>> {
    let (now, offset) = clock::test_clock(&state, &tenant).await?;
    Ok(Json(TestClockOut { now: iso_seconds(now), offset_seconds: offset.num_seconds() }))
}

/// Body of `POST /test-clock/advance/`: `seconds` or `to`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AdvanceIn {
    pub seconds: Option<i64>,
    /// An ISO 8601 datetime in the future.
    pub to: Option<String>,
}

/// Sandbox only: move the environment's clock forward, running everything that falls due, in order.
#[utoipa::path(post, path = "/api/v1/test-clock/advance/", tag = "money", request_body = AdvanceIn, security(("bearer" = [])),
    responses((status = 200, description = "Where the clock stands and what ran", body = ClockAdvancedOut), (status = 400), (status = 401)))]
pub async fn advance_test_clock(
    State(state): State<AppState>,
    ServerCaller(tenant): ServerCaller,
    Body(input): Body<AdvanceIn>,
) -> ApiResult<Json<ClockAdvancedOut>> {
    let to = match (input.seconds, input.to.as_deref()) {
        (Some(seconds), None) => Move::By { seconds },
        (None, Some(instant)) => Move::To { instant },
        _ => {
            clock::sandbox_only(&tenant)?;
            return Err(ApiError::field("seconds", "Give either seconds or to."));
        }
    };
    let moved = clock::advance(&state, &tenant, to).await?;
    let ran = moved.ran;
    crate::http::reqlog::in_span(|| tracing::info!(now = %iso_seconds(moved.now), ran, "test clock advanced"));
    Ok(Json(ClockAdvancedOut {
        now: iso_seconds(moved.now),
        ran,
        complete: moved.short_of.is_none(),
        detail: moved.short_of.map(|target| {
            format!(
                "Stopped after {MAX_ADVANCE_ITEMS} due items at {}; advance again to reach {}.",
                iso_seconds(moved.now),
                iso_seconds(target)
            )
        }),
    }))
}
