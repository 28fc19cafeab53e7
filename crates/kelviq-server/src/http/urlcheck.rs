//! What every request's URL must be before any route sees it, and the shape
//! of every rejection.
//!
//! - A path whose decoded text has a control character (`%00`, `%0A`, …) or
//!   is not UTF-8 (`%ff`) names nothing: 404 in the JSON error shape. No
//!   id, identifier or slug may hold one, so nothing reaches the store (on
//!   PostgreSQL a NUL in a bound string is an error).
//! - A query parameter whose decoded name or value has one is a 400 naming
//!   the parameter (`?search=%00` would otherwise reach a `LIKE`).
//! - An error answered in plain text by an extractor of the framework (a
//!   path that does not parse, a form of the wrong type) is rewritten into
//!   the JSON error shape, `{"detail": "…"}`.
//!
//! Only URLs with a `%` are decoded, so the hot paths pay one scan. Both
//! run around the router by `serve` (app.rs), not as a layer of it.

use crate::http::error::ApiError;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;

/// The largest plain-text error body rewritten into JSON.
const PLAIN_ERROR_MAX: usize = 4096;

/// Refuses a URL whose path or query holds a control character (or bytes
/// that are not UTF-8) once decoded.
pub fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    let path = uri.path();
    if path.contains('%') {
        match percent_decode(path) {
            Some(text) if !text.chars().any(char::is_control) => {}
            _ => return Err(ApiError::not_found()),
        }
    }
    if let Some(query) = uri.query().filter(|q| q.contains('%')) {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if name.chars().any(char::is_control) || value.chars().any(char::is_control) {
                let name: String = name.chars().filter(|c| !c.is_control()).collect();
                return Err(ApiError::field(&name, "Control characters are not allowed."));
            }
        }
    }
    Ok(())
}

/// `%XX`-decoded text, or `None` if a sequence is malformed or the result
/// is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A plain-text error body becomes `{"detail": "…"}`; others pass as they are.
pub async fn json_errors(response: Response) -> Response {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let plain =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, PLAIN_ERROR_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let detail = if text.is_empty() { parts.status.canonical_reason().unwrap_or("Error").to_string() } else { text };
    let body = serde_json::json!({ "detail": detail }).to_string();
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%00").as_deref(), Some("/a\0"));
        assert_eq!(percent_decode("/a%ff"), None);
        assert_eq!(percent_decode("/a%f"), None);
        assert_eq!(percent_decode("/a%zz"), None);
    }

    #[test]
    fn control_characters_are_refused() {
        let ok: axum::http::Uri = "/api/v1/customers/a%20b/?search=x%20y".parse().unwrap();
        assert!(check_uri(&ok).is_ok());
        for bad in ["/api/v1/customers/%00/", "/api/v1/customers/%ff/", "/x?search=%00", "/x?a=1&b=%0A"] {
            let uri: axum::http::Uri = bad.parse().unwrap();
            assert!(check_uri(&uri).is_err(), "{bad}");
        }
    }
}
