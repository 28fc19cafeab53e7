//! The one HTTP client every module shares.

use crate::{Error, ErrorKind};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: url::Url,
    edge: url::Url,
}

/// Which host a request goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Host {
    Core,
    #[allow(dead_code)]
    Edge,
}

impl Http {
    pub(crate) fn new(token: &str, base: &str, edge: &str, version: &str, timeout: Duration) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::invalid_request("access_token contains characters not allowed in a header", None))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .user_agent(concat!("kelviq-sdk-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(ErrorKind::Api, None, format!("cannot build HTTP client: {e}"), None))?;
        let parse = |u: &str| {
            url::Url::parse(&format!("{u}/api/{version}/"))
                .map_err(|e| Error::invalid_request(format!("invalid URL {u:?}: {e}"), None))
        };
        Ok(Self { client, base: parse(base)?, edge: parse(edge)? })
    }

    /// Builds `…/api/v1/<segments…>/` with each segment percent-encoded;
    /// `trailing_slash` follows what the Python SDK sends for that route.
    pub(crate) fn url(&self, host: Host, segments: &[&str], trailing_slash: bool) -> url::Url {
        let mut url = match host {
            Host::Core => self.base.clone(),
            Host::Edge => self.edge.clone(),
        };
        {
            let mut path = url.path_segments_mut().expect("http URLs have paths");
            path.pop_if_empty();
            path.extend(segments);
            if trailing_slash {
                path.push("");
            }
        }
        url
    }

    pub(crate) async fn request(
        &self,
        method: Method,
        url: url::Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let (status, bytes, shown) = self.send(method, url, query, body).await?;
        let parsed = parse_body(status, &bytes);
        if (200..300).contains(&status) {
            // A 2xx body that is not a JSON object reads as `{}`, as in the Python SDK.
            return Ok(parsed.filter(Value::is_object).unwrap_or_else(|| Value::Object(Default::default())));
        }
        Err(Error::from_status(status, &shown, parsed))
    }

    /// A GET whose 2xx answer is a file (a document), as bytes.
    pub(crate) async fn download(&self, url: url::Url, query: &[(&str, String)]) -> Result<Vec<u8>, Error> {
        let (status, bytes, shown) = self.send(Method::GET, url, query, None).await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(Error::from_status(status, &shown, parse_body(status, &bytes)))
    }

    async fn send(
        &self,
        method: Method,
        url: url::Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>, String), Error> {
        let shown = url.to_string();
        let mut req = self.client.request(method.clone(), url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| {
            let message = if e.is_timeout() {
                format!("Request timed out for {method} {shown}.")
            } else if e.is_connect() {
                format!("Could not connect to {shown}.")
            } else {
                format!("Request error for {method} {shown}: {e}")
            };
            Error::new(ErrorKind::Api, None, message, None)
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::new(ErrorKind::Api, None, format!("reading response: {e}"), None))?;
        Ok((status, bytes.to_vec(), shown))
    }
}

/// A response body as JSON (a server error's text kept as a string).
fn parse_body(status: u16, bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(_) if status >= 500 => Some(Value::String(String::from_utf8_lossy(bytes).into_owned())),
        Err(_) => Some(Value::String("Invalid JSON response".into())),
    }
}

/// Decodes a response object into a model; a shape mismatch is an API error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value.clone())
        .map_err(|e| Error::new(ErrorKind::Api, None, format!("unexpected response shape: {e}"), Some(value)))
}
