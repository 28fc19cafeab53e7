//! Webhook verification (spec §5.4), as the Python SDK's `validate_event`:
//! headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<hex>`,
//! where the hex is HMAC-SHA256 over `"{id}.{timestamp}.{raw body}"` keyed by
//! the whole signing secret (`kq_whsec_…`) as UTF-8.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a webhook was not accepted. The messages are the Python SDK's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookVerificationError(pub String);

fn err(m: &str) -> WebhookVerificationError {
    WebhookVerificationError(m.to_string())
}

/// The `webhook-signature` header value for a delivery: `v1,<hex>`.
pub fn sign(id: &str, timestamp: &str, body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", hex::encode(mac.finalize().into_bytes()))
}

/// One signing secret, or several (a receiver switching secrets after a
/// rotation accepts a delivery signed by any of them).
pub trait Secrets {
    fn each(&self) -> Vec<&str>;
}

impl Secrets for &str {
    fn each(&self) -> Vec<&str> {
        vec![self]
    }
}

impl Secrets for &String {
    fn each(&self) -> Vec<&str> {
        vec![self.as_str()]
    }
}

impl Secrets for &[&str] {
    fn each(&self) -> Vec<&str> {
        self.to_vec()
    }
}

impl<const N: usize> Secrets for [&str; N] {
    fn each(&self) -> Vec<&str> {
        self.to_vec()
    }
}

impl Secrets for &[String] {
    fn each(&self) -> Vec<&str> {
        self.iter().map(String::as_str).collect()
    }
}

/// Verifies a delivery and returns its parsed JSON. `payload` must be the raw
/// body as received; header names are matched case-insensitively; `secret`
/// is one secret or a list (any of them may have signed it).
pub fn validate_event<'a, I, S>(payload: &[u8], headers: I, secret: S) -> Result<Value, WebhookVerificationError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
    S: Secrets,
{
    let (mut id, mut timestamp, mut signature) = (None, None, None);
    for (name, value) in headers {
        match name.to_ascii_lowercase().as_str() {
            "webhook-id" => id = Some(value),
            "webhook-timestamp" => timestamp = Some(value),
            "webhook-signature" => signature = Some(value),
            _ => {}
        }
    }
    let (Some(id), Some(timestamp), Some(signature)) = (id, timestamp, signature) else {
        return Err(err("Missing required webhook headers."));
    };
    let Some(given) = signature.strip_prefix("v1,") else {
        return Err(err("Invalid signature format."));
    };
    let matches = |secret: &str| {
        let expected = sign(id, timestamp, payload, secret);
        let expected = &expected["v1,".len()..];
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    };
    // Every secret is tried, so the time taken does not say which matched.
    let matched = secret.each().into_iter().fold(false, |found, s| matches(s) | found);
    if !matched {
        return Err(err("Webhook signature verification failed."));
    }
    serde_json::from_slice(payload).map_err(|e| err(&format!("Webhook payload is not JSON: {e}")))
}

/// [`validate_event`] that also refuses deliveries whose timestamp is more
/// than `tolerance_seconds` from `now_unix` (the docs recommend 300 s; the
/// official SDKs do not check it, so it is opt-in here).
pub fn validate_event_with_tolerance<'a, I, S>(
    payload: &[u8],
    headers: I,
    secret: S,
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<Value, WebhookVerificationError>
where
    I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
    S: Secrets,
{
    let timestamp = headers
        .clone()
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("webhook-timestamp"))
        .and_then(|(_, v)| v.trim().parse::<i64>().ok());
    let event = validate_event(payload, headers, secret)?;
    match timestamp {
        Some(t) if (now_unix - t).abs() <= tolerance_seconds => Ok(event),
        _ => Err(err("Webhook timestamp is outside the allowed tolerance.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "kq_whsec_test_secret";
    const ID: &str = "6a1b2c3d-0000-4000-8000-000000000001";
    const TS: &str = "1717243200";
    const BODY: &str = r#"{"id":"6a1b2c3d-0000-4000-8000-000000000001","type":"customer.created","created_at":"2024-06-01T12:00:00Z","data":{"object":{"object":"customer","customer_id":"user-123"}}}"#;
    /// Accepted by the official Python SDK's `validate_event` (checked when this test was written).
    const SIGNATURE: &str = "v1,b1af21d7a89b9edcd264fdb54cc679ae45fc968152766722a7bad76fa5219cc7";

    #[test]
    fn matches_the_official_sdk() {
        assert_eq!(sign(ID, TS, BODY.as_bytes(), SECRET), SIGNATURE);
        let headers = [
            ("Webhook-Id", ID),
            ("WEBHOOK-TIMESTAMP", TS),
            ("webhook-signature", SIGNATURE),
            ("Content-Type", "application/json"),
        ];
        let event = validate_event(BODY.as_bytes(), headers, SECRET).unwrap();
        assert_eq!(event["type"], "customer.created");
    }

    #[test]
    fn refusals_say_why() {
        let msg = |r: Result<Value, WebhookVerificationError>| r.unwrap_err().0;
        assert_eq!(
            msg(validate_event(BODY.as_bytes(), [("webhook-id", ID)], SECRET)),
            "Missing required webhook headers."
        );
        let unprefixed = [("webhook-id", ID), ("webhook-timestamp", TS), ("webhook-signature", &SIGNATURE[3..])];
        assert_eq!(msg(validate_event(BODY.as_bytes(), unprefixed, SECRET)), "Invalid signature format.");
        let good = [("webhook-id", ID), ("webhook-timestamp", TS), ("webhook-signature", SIGNATURE)];
        assert_eq!(msg(validate_event(b"{\"tampered\":1}", good, SECRET)), "Webhook signature verification failed.");
        assert_eq!(
            msg(validate_event(BODY.as_bytes(), good, "kq_whsec_other")),
            "Webhook signature verification failed."
        );
        assert!(validate_event_with_tolerance(BODY.as_bytes(), good, SECRET, 1_717_243_200 + 299, 300).is_ok());
        // A list: any of its secrets may have signed it.
        assert!(validate_event(BODY.as_bytes(), good, ["kq_whsec_new", SECRET]).is_ok());
        assert!(validate_event(BODY.as_bytes(), good, ["kq_whsec_new", "kq_whsec_other"]).is_err());
        assert!(validate_event_with_tolerance(BODY.as_bytes(), good, SECRET, 1_717_243_200 + 301, 300).is_err());
    }
}
