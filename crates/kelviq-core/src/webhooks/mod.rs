//! Webhook delivery rules: signing secrets and the two signature formats,
//! the retry schedule with jitter, `Retry-After`, what an answer means, the
//! event-type filter, when a failing endpoint is disabled, and which target
//! addresses are private. No IO: the server's dispatcher applies them.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every signing secret starts with this.
pub const SECRET_PREFIX: &str = "kq_whsec_";

/// A new signing secret: the prefix and 32 random bytes in base64 (so the
/// part after `kq_` is a Standard Webhooks secret, `whsec_<base64>`).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// How deliveries to an endpoint are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureFormat {
    /// Kelviq's (spec §3.1): one `v1,<lower-case hex>` keyed by the whole
    /// secret string; the official SDKs verify exactly this.
    Kelviq,
    /// Standard Webhooks: `v1,<base64>` keyed by the base64-decoded part of
    /// the secret after `kq_whsec_`, one per secret, space-separated.
    Standard,
}

impl SignatureFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::Kelviq => "kelviq",
            SignatureFormat::Standard => "standard",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kelviq" => Some(SignatureFormat::Kelviq),
            "standard" => Some(SignatureFormat::Standard),
            _ => None,
        }
    }
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` header of one delivery. `secrets` lists the
/// secrets that sign, newest first: the Kelviq format signs with the newest
/// only, the standard format with each of them.
pub fn signature_header(format: SignatureFormat, secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    match format {
        SignatureFormat::Kelviq => {
            let newest = secrets.first().copied().unwrap_or_default();
            format!("v1,{}", hex::encode(mac(newest.as_bytes(), id, timestamp, body)))
        }
        SignatureFormat::Standard => secrets
            .iter()
            .map(|s| format!("v1,{}", BASE64.encode(mac(&standard_key(s), id, timestamp, body))))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The key of a secret in the standard format: its base64 part decoded (a
/// secret whose part is not base64 signs with the part's bytes).
pub fn standard_key(secret: &str) -> Vec<u8> {
    let part = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    BASE64.decode(part).unwrap_or_else(|_| part.as_bytes().to_vec())
}

/// The delays between attempts: after the n-th failed attempt the next one
/// waits `delays[n-1]`, ±`jitter_percent`. `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    pub delays: Vec<Duration>,
    pub jitter_percent: i64,
}

impl Default for RetrySchedule {
    /// Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over ~27.6 h), ±20 %.
    fn default() -> Self {
        let delays = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000].map(Duration::seconds).to_vec();
        RetrySchedule { delays, jitter_percent: 20 }
    }
}

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::hours(24);

impl RetrySchedule {
    /// Parses `5s,5m,30m,2h,5h,10h,10h` (units s, m, h, d).
    pub fn parse(text: &str, jitter_percent: i64) -> Result<Self, String> {
        let mut delays = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (number, unit) = part.split_at(part.len() - 1);
            let n: i64 = number.parse().map_err(|_| format!("{part:?}: write a number and a unit, e.g. 5m"))?;
            let seconds = match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3_600,
                "d" => n * 86_400,
                _ => return Err(format!("{part:?}: the unit is one of s, m, h, d")),
            };
            if !(1..=7 * 86_400).contains(&seconds) {
                return Err(format!("{part:?}: a delay is between 1 s and 7 days"));
            }
            delays.push(Duration::seconds(seconds));
        }
        if delays.len() > 20 {
            return Err("at most 20 retries".into());
        }
        if !(0..=50).contains(&jitter_percent) {
            return Err("jitter is between 0 and 50 percent".into());
        }
        Ok(RetrySchedule { delays, jitter_percent })
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The wait before the next attempt after `failed` attempts have failed
    /// (`None`: none is left). `unit` in [-1, 1] picks the jitter.
    pub fn next_delay(&self, failed: u32, unit: f64) -> Option<Duration> {
        let base = self.delays.get((failed as usize).checked_sub(1)?)?;
        let per_mille = (unit.clamp(-1.0, 1.0) * self.jitter_percent as f64 * 10.0).round() as i64;
        let ms = base.num_milliseconds();
        Some(Duration::milliseconds(ms + ms * per_mille / 1000))
    }
}

/// What an endpoint's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later (at least `not_before` later, when the endpoint said so).
    Failed {
        not_before: Option<Duration>,
    },
    /// 410 Gone: the endpoint asks never to be called again.
    Gone,
}

/// The verdict on an answer's status (`None`: no answer: timeout, refused
/// connection) and its `Retry-After` header.
pub fn verdict(status: Option<u16>, retry_after: Option<&str>, now: DateTime<Utc>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 503) => Verdict::Failed { not_before: retry_after.and_then(|h| parse_retry_after(h, now)) },
        _ => Verdict::Failed { not_before: None },
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<i64>() {
        Ok(seconds) if seconds >= 0 => Duration::seconds(seconds.min(MAX_RETRY_AFTER.num_seconds())),
        Ok(_) => return None,
        Err(_) => DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc) - now,
    };
    Some(wait.clamp(Duration::zero(), MAX_RETRY_AFTER))
}

/// When the next attempt is due after a failure, or `None` when the
/// delivery has had all its attempts.
pub fn next_attempt(
    schedule: &RetrySchedule,
    failed: u32,
    not_before: Option<Duration>,
    now: DateTime<Utc>,
    unit: f64,
) -> Option<DateTime<Utc>> {
    let delay = schedule.next_delay(failed, unit)?;
    Some(now + not_before.map_or(delay, |n| n.max(delay)))
}

/// When an endpoint that keeps failing is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// Failing without a success for this long …
    pub after: Duration,
    /// … with at least this much time between the first and the last failure.
    pub min_span: Duration,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        DisablePolicy { after: Duration::days(5), min_span: Duration::hours(12) }
    }
}

impl DisablePolicy {
    /// Whether an endpoint failing since `first_failure` (no success since)
    /// is disabled by a failure at `now`.
    pub fn disables(&self, first_failure: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        first_failure <= self.cutoff(now)
    }

    /// The latest first failure that a failure at `now` disables (the store
    /// asks it of the endpoint row in the same statement that disables it).
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.after.max(self.min_span)
    }
}

/// Every event type the product emits, and the notice of a disabled endpoint.
pub const EVENT_TYPES: &[&str] = &[
    "checkout.completed",
    "customer.created",
    "customer.updated",
    "order.created",
    "order.updated",
    "order.completed",
    "order.payment_failed",
    "order.refunded",
    "invoice.created",
    "invoice.paid",
    "invoice.payment_failed",
    "subscription.created",
    "subscription.updated",
    "subscription.cancelled",
    "subscription.plan_changed",
    "refund.created",
    "refund.updated",
    "payment_method.created",
    "payment_method.updated",
    "payment_method.deleted",
    "feature.usage_alert",
    "endpoint.disabled",
    "webhook.test",
];

/// Whether an endpoint with this filter (empty: every type) wants an event.
pub fn wants(filter: &[String], event_type: &str) -> bool {
    filter.is_empty() || filter.iter().any(|t| t == event_type)
}

/// Whether an address is one a webhook must not reach unless the
/// configuration allows it: private, loopback, link-local, unique-local,
/// unspecified, broadcast, documentation, shared (CGNAT), multicast, and
/// IPv4 hidden in IPv6 (mapped, compatible, 6to4, NAT64) that is one of those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d), 6to4 (2002:a.b.c.d::/16) and NAT64 (64:ff9b::/96).
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return private_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return private_v4(embedded(s[1], s[2]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return private_v4(embedded(s[6], s[7]));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// A subnet the configuration allows (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an address or CIDR subnet"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{text:?}: bad prefix length"))?
            }
            None => max,
        };
        Ok(Subnet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn mask_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = ((prefix / 8) as usize, prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// Whether a webhook may be sent to `ip`: a public address, or one inside an allowed subnet.
pub fn may_reach(ip: IpAddr, allowed: &[Subnet]) -> bool {
    !is_private(ip) || allowed.iter().any(|s| s.contains(ip))
}

#[cfg(test)]
mod tests;

/// A webhook endpoint as stored. Its secrets are sealed (see `sealing`).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: uuid::Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// `manual`, `gone` (it answered 410) or `failing` (see [`DisablePolicy`]).
    pub disabled_reason: Option<String>,
    /// Most messages a second, when limited.
    pub rate_limit: Option<i64>,
    pub fifo: bool,
    pub signature_format: SignatureFormat,
    pub secret: String,
    /// The secret before the last rotation, and until when it still signs
    /// (standard format only).
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The first failure since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// How long the secret before a rotation keeps signing in the standard format.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);

/// The longest a delivery to a `fifo` endpoint waits for an older one to
/// that endpoint (still being attempted or retried); after it, it goes.
pub const FIFO_MAX_WAIT: Duration = Duration::seconds(60);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    /// Out of attempts, or its endpoint is disabled; can be recovered.
    Failed,
    /// Its endpoint was deleted.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Succeeded => "SUCCEEDED",
            DeliveryStatus::Failed => "FAILED",
            DeliveryStatus::Cancelled => "CANCELLED",
        }
    }
}

/// The merchant's customer id an event is about, for the events API's filter:
/// the embedded customer's `customer_id`, or a customer object's own.
pub fn event_customer(payload: &serde_json::Value) -> Option<String> {
    let object = payload.get("data")?.get("object")?;
    let id = match object.get("customer").and_then(|c| c.get("customer_id")) {
        Some(id) => id,
        None if object.get("object").and_then(|o| o.as_str()) == Some("customer") => object.get("customer_id")?,
        None => return None,
    };
    id.as_str().map(str::to_string)
}
