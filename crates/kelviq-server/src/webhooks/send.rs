//! One attempt: sign the stored envelope, POST it, judge the answer.

use super::target::refused_literal;
use super::Webhooks;
use chrono::{DateTime, Utc};
use kelviq_core::webhooks::{next_attempt, signature_header, verdict, wants, SignatureFormat, Verdict};
use kelviq_store::{Claimed, Finished, Outcome};
use rand::Rng;

/// The most of an answer's body kept with the attempt.
pub const EXCERPT_BYTES: usize = 4096;

/// Makes one attempt of a claimed delivery (or none, when its endpoint was
/// deleted, disabled or no longer wants the event) and says how it ended.
pub async fn attempt(hooks: &Webhooks, clock: &dyn kelviq_core::Clock, claimed: Claimed) -> Finished {
    let started = clock.now();
    let mut finished = Finished {
        seq: claimed.seq,
        lease_token: claimed.lease_token.clone(),
        tenant: claimed.tenant.clone(),
        event_id: claimed.event_id,
        endpoint_id: claimed.endpoint.as_ref().map_or(uuid::Uuid::nil(), |e| e.id),
        fifo: claimed.endpoint.as_ref().is_some_and(|e| e.fifo),
        attempted_at: started,
        status_code: None,
        latency_ms: 0,
        response_excerpt: String::new(),
        outcome: Outcome::Dropped,
    };
    let Claimed { endpoint, payload, round_attempts, event_type, .. } = claimed;
    let Some(endpoint) = endpoint else { return finished };
    if !endpoint.enabled {
        finished.outcome = Outcome::EndpointDisabled;
        return finished;
    }
    if event_type != "webhook.test" && !wants(&endpoint.event_types, &event_type) {
        return finished;
    }
    let mut secrets = Vec::new();
    match hooks.key.open(&endpoint.secret) {
        Ok(s) => secrets.push(s),
        Err(e) => {
            tracing::error!(endpoint = %endpoint.id, error = %e, "cannot open the endpoint's signing secret; is secret_key the one it was sealed with?");
            return failed(hooks, finished, round_attempts, format!("not sent: {e}"));
        }
    }
    let overlap = endpoint.previous_secret_until.is_some_and(|until| until > started);
    if endpoint.signature_format == SignatureFormat::Standard && overlap {
        if let Some(previous) = endpoint.previous_secret.as_deref().and_then(|p| hooks.key.open(p).ok()) {
            secrets.push(previous);
        }
    }
    let url = match url::Url::parse(&endpoint.url) {
        Ok(u) => u,
        Err(e) => return failed(hooks, finished, round_attempts, format!("not sent: bad URL: {e}")),
    };
    if let Some(ip) = refused_literal(&url, &hooks.settings.allowed) {
        return failed(hooks, finished, round_attempts, format!("not sent: {ip} is a private address"));
    }
    let id = finished.event_id.to_string();
    let timestamp = started.timestamp();
    let body = payload.into_bytes();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signature = signature_header(endpoint.signature_format, &refs, &id, timestamp, &body);
    let clock_start = std::time::Instant::now();
    let sent = hooks
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let (status, retry_after, excerpt) = match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let mut kept = Vec::new();
            while kept.len() < EXCERPT_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            kept.truncate(EXCERPT_BYTES);
            (Some(status), retry_after, String::from_utf8_lossy(&kept).into_owned())
        }
        Err(e) => (None, None, error_text(&e)),
    };
    finished.latency_ms = clock_start.elapsed().as_millis() as i64;
    finished.status_code = status;
    let now = clock.now();
    match verdict(status, retry_after.as_deref(), now) {
        Verdict::Delivered => {
            finished.response_excerpt = excerpt;
            finished.outcome = Outcome::Succeeded;
            metrics::counter!("webhook_attempts_total", "result" => "delivered").increment(1);
            finished
        }
        Verdict::Gone => {
            finished.response_excerpt = excerpt;
            finished.outcome = Outcome::Gone;
            metrics::counter!("webhook_attempts_total", "result" => "gone").increment(1);
            finished
        }
        Verdict::Failed { not_before } => {
            finished.outcome = retry_outcome(hooks, round_attempts, not_before, now);
            finished.response_excerpt = excerpt;
            metrics::counter!("webhook_attempts_total", "result" => "failed").increment(1);
            finished
        }
    }
}

fn retry_outcome(
    hooks: &Webhooks,
    round_attempts: u32,
    not_before: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> Outcome {
    let unit = rand::thread_rng().gen_range(-1.0..=1.0);
    match next_attempt(&hooks.settings.schedule, round_attempts + 1, not_before, now, unit) {
        Some(at) => Outcome::Retry(at),
        None => Outcome::Exhausted,
    }
}

/// A failure before anything was sent (it counts as an attempt).
fn failed(hooks: &Webhooks, mut finished: Finished, round_attempts: u32, why: String) -> Finished {
    finished.outcome = retry_outcome(hooks, round_attempts, None, finished.attempted_at);
    finished.response_excerpt = why;
    metrics::counter!("webhook_attempts_total", "result" => "failed").increment(1);
    finished
}

/// An error with its causes, e.g. "error sending request: … resolves only to private addresses".
fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(EXCERPT_BYTES).collect()
}
