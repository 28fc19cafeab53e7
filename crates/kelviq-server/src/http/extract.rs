//! Request extractors: the JSON body (either casing, Kelviq error shapes),
//! API-key authentication, and page-number pagination.

use crate::http::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use kelviq_core::casing::snake_to_camel;
use kelviq_core::keys::KeyKind;
use kelviq_core::{FieldErrors, Tenant};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A JSON request body. Keys may be camelCase or snake_case (normalised to
/// snake_case, except inside `metadata`); type errors name the field.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        Ok(Body(parse_body(&bytes)?))
    }
}

/// A JSON body read straight into `T`, for the hottest POST routes (the
/// license validation): no tree of values, no renamed copy.
///
/// `T` must deny unknown fields and give each field its camelCase spelling
/// as a serde alias. Then what `T` accepts, [`Body`] accepts with the same
/// meaning (serde refuses a field named twice, in either spelling), and what
/// `T` refuses, or text holding an escaped NUL, is read again by [`Body`]'s
/// rules: the errors are [`Body`]'s.
pub struct AliasedBody<T>(pub T);

impl<S, T> FromRequest<S> for AliasedBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        Ok(AliasedBody(parse_aliased(&bytes)?))
    }
}

/// [`AliasedBody`]'s reading of a body.
pub fn parse_aliased<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON text cannot hold a raw NUL: in a string it is written `\u0000`.
    let escaped_nul = bytes.windows(6).any(|w| w == b"\\u0000");
    match serde_json::from_slice(bytes) {
        Ok(v) if !escaped_nul => Ok(v),
        _ => parse_body(bytes),
    }
}

/// A JSON request body, unparsed (for handlers that read it their own way).
pub struct JsonBytes(pub Bytes);

impl<S> FromRequest<S> for JsonBytes
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = AppState::from_ref(state).config.body_limit_bytes;
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or("").trim().to_string();
            if !(essence == "application/json" || essence.ends_with("+json") || essence.is_empty()) {
                return Err(ApiError::UnsupportedMediaType(essence));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest(format!("Could not read the request body: {rejection}"))
            }
        })?;
        Ok(JsonBytes(bytes))
    }
}

/// Parses a request body the way the Kelviq API does. An empty body is `{}`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        kelviq_core::casing::parse_without_repeats(bytes).map_err(|e| {
            let message = e.to_string();
            match message.strip_prefix("duplicate field `").and_then(|rest| rest.split('`').next()) {
                Some(key) => ApiError::field(key, "This field is given more than once."),
                None => ApiError::BadRequest(format!("JSON parse error - {message}")),
            }
        })?
    };
    if !value.is_object() {
        let got = match value {
            Value::Array(_) => "list",
            Value::String(_) => "str",
            Value::Number(_) => "number",
            Value::Bool(_) => "bool",
            _ => "null",
        };
        return Err(ApiError::field(
            "non_field_errors",
            format!("Invalid data. Expected a dictionary, but got {got}."),
        ));
    }
    let value = kelviq_core::casing::underscoreize_strict(value).map_err(|field| {
        ApiError::field(&field, "This field is given more than once (in camelCase and snake_case).")
    })?;
    if let Some(field) = nul_in(&value) {
        return Err(ApiError::field(&field, "NUL characters are not allowed."));
    }
    from_fields(value)
}

/// The path of the first string (or key) holding a NUL character, which no
/// text column stores (PostgreSQL refuses it).
fn nul_in(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_in(v).map(|p| join(&i.to_string(), &p))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(k.replace('\0', ""));
            }
            nul_in(v).map(|p| join(k, &p))
        }),
        _ => None,
    }
}

fn join(head: &str, rest: &str) -> String {
    if rest.is_empty() {
        head.to_string()
    } else {
        format!("{head}.{rest}")
    }
}

/// Reads one JSON object straight from its text into a type that accepts
/// both casings of its fields (serde aliases), naming the field of any error.
///
/// Most objects are valid, so each is read without tracking where the
/// reader is, and only one that fails is read again with its path tracked,
/// to name the field (tracking every key cost about 10 % of the request
/// threads' time in 100-event batches).
pub fn from_json_object<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::field("non_field_errors", "Invalid data. Expected a dictionary."));
    }
    serde_json::from_str(text).or_else(|_| {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| ApiError::Fields(field_error(&e)))
    })
}

/// Reads an object whose keys are already snake_case (a part of a parsed
/// body), naming the field of any error.
pub fn from_fields<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::field("non_field_errors", "Invalid data. Expected a dictionary."));
    }
    // As in `from_json_object`: the path is tracked only to name an error.
    T::deserialize(&value)
        .or_else(|_| serde_path_to_error::deserialize(value).map_err(|e| ApiError::Fields(field_error(&e))))
}

fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldErrors {
    let message = e.inner().to_string();
    // serde reports "missing field `x`" at the path of the enclosing object.
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        let parent = e.path().to_string();
        let field = if parent == "." { name.to_string() } else { format!("{parent}.{name}") };
        return field_named(&field, "This field is required.");
    }
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    let message = if message.starts_with("invalid type: null") {
        "This field may not be null.".to_string()
    } else {
        let mut m = message;
        if let Some(first) = m.get(0..1) {
            m.replace_range(0..1, &first.to_uppercase());
        }
        format!("{m}.")
    };
    field_named(&e.path().to_string(), &message)
}

/// Errors are keyed by the top-level field; a nested location is named in the message.
fn field_named(path: &str, message: &str) -> FieldErrors {
    let mut segments = path.split('.').filter(|s| !s.is_empty() && *s != "?");
    let top = segments.next().unwrap_or("non_field_errors");
    let top = top.split('[').next().unwrap_or(top);
    let rest: Vec<String> = path.split('.').skip(1).filter(|s| !s.is_empty()).map(snake_to_camel).collect();
    let message = if rest.is_empty() { message.to_string() } else { format!("{}: {message}", rest.join(".")) };
    FieldErrors::single(top, message)
}

/// The caller, authenticated by `Authorization: Bearer <key>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub kind: KeyKind,
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated("Authentication credentials were not provided."))?;
        let header = header.to_str().map_err(|_| ApiError::Unauthenticated("Invalid token header."))?;
        let (scheme, secret) = header
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthenticated("Invalid token header. No credentials provided."))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthenticated("Authentication credentials were not provided."));
        }
        let identity = state.keys.resolve(&state.store, secret.trim()).await?;
        let identity = identity.ok_or(ApiError::Unauthenticated("Invalid API key."))?;
        crate::http::reqlog::set_org(identity.tenant.org_seq);
        Ok(Caller { tenant: identity.tenant, kind: identity.kind })
    }
}

/// A caller holding a server key: everything but what client keys may do.
#[derive(Debug, Clone)]
pub struct ServerCaller(pub Tenant);

impl<S> FromRequestParts<S> for ServerCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.kind {
            KeyKind::Server => Ok(ServerCaller(caller.tenant)),
            KeyKind::Client => Err(ApiError::Forbidden),
        }
    }
}

/// `scheme://host` of the request as the client addressed it (`Host`, and
/// `X-Forwarded-Proto` when a proxy says https), as DRF's absolute URIs.
fn request_origin(parts: &Parts) -> String {
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// The server's externally visible base URL (`public_url`, else the
/// request's scheme and Host), for absolute links in responses.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl<S> FromRequestParts<S> for BaseUrl
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if let Some(url) = &state.config.public_url {
            return Ok(BaseUrl(url.trim_end_matches('/').to_string()));
        }
        Ok(BaseUrl(request_origin(parts)))
    }
}

pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MAX_PAGE_SIZE: u64 = 100;

/// Page-number pagination as DRF does it: `page` (1-based) and `page_size`
/// (clamped to 100; missing or unusable ⇒ the default).
#[derive(Debug, Clone)]
pub struct Paging {
    pub page: u64,
    pub size: u64,
    /// Absolute URL of this request, for `next`/`previous`.
    url: url::Url,
}

/// One page of a list, as DRF answers it: `next` and `previous` are
/// absolute links, null at either end.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl Paging {
    pub fn from_parts(parts: &Parts, default_size: u64) -> Result<Self, ApiError> {
        let uri = parts.extensions.get::<OriginalUri>().map(|o| o.0.clone()).unwrap_or_else(|| parts.uri.clone());
        let url = url::Url::parse(&format!("{}{uri}", request_origin(parts)))
            .map_err(|_| ApiError::BadRequest("Malformed request URL.".into()))?;
        let mut page = 1;
        let mut size = default_size;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "page" => {
                    page = match v.as_ref() {
                        "last" => u64::MAX,
                        v => v
                            .parse()
                            .ok()
                            .filter(|p| *p >= 1)
                            .ok_or_else(|| ApiError::NotFound("Invalid page.".into()))?,
                    }
                }
                "page_size" => {
                    if let Ok(s) = v.parse::<u64>() {
                        if s >= 1 {
                            size = s.min(MAX_PAGE_SIZE);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Paging { page, size, url })
    }

    /// Resolves `page=last` against the total and refuses pages past the end.
    pub fn window(&mut self, total: u64) -> Result<(i64, i64), ApiError> {
        let pages = total.div_ceil(self.size).max(1);
        if self.page == u64::MAX {
            self.page = pages;
        }
        if self.page > pages {
            return Err(ApiError::NotFound("Invalid page.".into()));
        }
        Ok((self.size as i64, ((self.page - 1) * self.size) as i64))
    }

    /// This page of a list held in memory, and the list's length.
    pub fn slice<'a, T>(&mut self, items: &'a [T]) -> Result<(&'a [T], u64), ApiError> {
        let total = items.len() as u64;
        let (limit, offset) = self.window(total)?;
        let start = (offset as usize).min(items.len());
        let end = (start + limit as usize).min(items.len());
        Ok((&items[start..end], total))
    }

    fn link(&self, page: u64) -> String {
        let mut url = self.url.clone();
        let kept: Vec<(String, String)> = self
            .url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            if page > 1 {
                q.append_pair("page", &page.to_string());
            }
            for (k, v) in &kept {
                q.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url.to_string()
    }

    /// The DRF page envelope.
    pub fn page<T>(&self, total: u64, results: Vec<T>) -> Page<T> {
        let pages = total.div_ceil(self.size).max(1);
        let next = (self.page < pages).then(|| self.link(self.page + 1));
        let previous = (self.page > 1).then(|| self.link(self.page - 1));
        Page { count: total, next, previous, results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct In {
        customer_id: String,
        email: Option<String>,
        billing_address: Option<Addr>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Addr {
        postal_code: Option<String>,
    }

    fn errors(body: &str) -> Value {
        match parse_body::<In>(body.as_bytes()) {
            Err(ApiError::Fields(f)) => serde_json::to_value(f.fields()).unwrap(),
            Err(other) => panic!("{other:?}"),
            Ok(v) => panic!("accepted {v:?}"),
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(errors("{}"), serde_json::json!({"customerId": ["This field is required."]}));
        assert_eq!(
            errors(r#"{"customerId": null}"#),
            serde_json::json!({"customerId": ["This field may not be null."]})
        );
        let e = errors(r#"{"customerId": "a", "email": 5}"#);
        assert!(e["email"][0].as_str().unwrap().starts_with("Invalid type: integer `5`"), "{e}");
        let e = errors(r#"{"customerId": "a", "billingAddress": {"postalCode": 1}}"#);
        assert!(e["billingAddress"][0].as_str().unwrap().starts_with("postalCode: Invalid type"), "{e}");
        assert_eq!(
            errors("[]"),
            serde_json::json!({"nonFieldErrors": ["Invalid data. Expected a dictionary, but got list."]})
        );
        assert!(
            matches!(parse_body::<In>(b"{nope"), Err(ApiError::BadRequest(m)) if m.starts_with("JSON parse error"))
        );
        let ok: In = parse_body(br#"{"customer_id": "a", "billingAddress": {"postal_code": "1"}}"#).unwrap();
        assert_eq!(ok.billing_address.unwrap().postal_code.as_deref(), Some("1"));
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Aliased {
        #[serde(alias = "licenseKey")]
        license_key: Option<String>,
        #[serde(alias = "instanceId")]
        instance_id: Option<String>,
    }

    fn outcome(r: Result<Aliased, ApiError>) -> Result<Aliased, String> {
        r.map_err(|e| match e {
            ApiError::Fields(f) => serde_json::to_string(f.fields()).unwrap(),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn an_aliased_body_reads_as_a_body_does() {
        let bodies = [
            r#"{"licenseKey": "K", "instanceId": "I"}"#,
            r#"{"license_key": "K"}"#,
            r#"{"licenseKey": "K", "license_key": "K"}"#,
            r#"{"licenseKey": "K", "licenseKey": "L"}"#,
            r#"{"licenseKey": "K\u0000"}"#,
            r#"{"licenseKey": null}"#,
            r#"{"licenseKey": 5}"#,
            r#"{"LicenseKey": "K"}"#,
            r#"{"licenseKey": "K", "other": 1}"#,
            r#"{}"#,
            "  ",
            "[]",
            r#"{"licenseKey": "K"} x"#,
            "{nope",
        ];
        for body in bodies {
            let fast = outcome(parse_aliased::<Aliased>(body.as_bytes()));
            let slow = outcome(parse_body::<Aliased>(body.as_bytes()));
            assert_eq!(fast, slow, "{body}");
        }
        assert!(outcome(parse_aliased::<Aliased>(br#"{"licenseKey": "K\u0000"}"#)).unwrap_err().contains("NUL"));
    }
}
