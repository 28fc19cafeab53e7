//! The portal's plan and quantity change: the page with its preview, and
//! the confirmation.

use super::{acting, back, signed_in, ActionForm};
use crate::http::error::ApiError;
use crate::portal::changes::{self, Asked};
use crate::portal::{change_page, Viewer};
use crate::routes::hosted::html;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;

fn change_response(status: StatusCode, v: &Viewer, c: &change_page::ChangeView<'_>) -> Response {
    let title = format!("Change {}", c.sub.plan_name);
    let mut r = html(status, v.page(&title, &change_page::render(v, c)));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

/// Renders the change page for `asked`, with its preview when it is valid.
async fn change_view(state: &AppState, v: &Viewer, id: &str, asked: &Asked, error: Option<String>) -> Response {
    let s = match changes::changeable(state, v, id).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let choices = match changes::choices(state, v, &v.settings, &s).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let quantities = if v.settings.allow_quantity_changes {
        match changes::quantities(state, v, &s).await {
            Ok(q) => q,
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else {
        Vec::new()
    };
    let wants = asked.choice.is_some() || !asked.quantities.is_empty();
    let (preview, error) = match (wants, error) {
        (_, Some(e)) => (None, Some(e)),
        (false, None) => (None, None),
        (true, None) => match changes::request(state, v, &v.settings, &s, asked).await {
            Ok(req) => (Some(changes::preview(&s, &req, v)), None),
            Err(e) => match changes::message(&e) {
                Some(m) => (None, Some(m)),
                None => return ApiError::from(e).into_response(),
            },
        },
    };
    let view = change_page::ChangeView {
        sub: &s,
        choices: &choices,
        quantities: &quantities,
        asked,
        preview: preview.as_ref(),
        error: error.as_deref(),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    change_response(status, v, &view)
}

/// The plan change page: choices, and with `?choice=` a preview.
pub async fn change_page(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let v = match signed_in(&state, &slug, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match Asked::parse(&pairs) {
        Ok(asked) => change_view(&state, &v, &id, &asked, None).await,
        Err(m) => change_view(&state, &v, &id, &Asked::default(), Some(m)).await,
    }
}

/// Confirms a previewed change.
pub async fn change(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let v = match acting(&state, &slug, &headers, &ActionForm::of(&pairs)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let asked = match Asked::parse(&pairs) {
        Ok(a) => a,
        Err(m) => return change_view(&state, &v, &id, &Asked::default(), Some(m)).await,
    };
    match changes::apply(&state, &v, &v.settings, &id, &asked).await {
        Ok(()) => back(&v, "changed"),
        Err(e) => match changes::message(&e) {
            Some(m) => change_view(&state, &v, &id, &asked, Some(m)).await,
            None => ApiError::from(e).into_response(),
        },
    }
}
