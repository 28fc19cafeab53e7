//! License keys: what a plan's `license` configuration grants, the key's
//! format, when a license expires, whether it may take another activation,
//! and what validating it answers (Kelviq's codes and ours).

pub mod offline;

use crate::periods::{boundary, Interval};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// The most activations a limited license may have.
pub const MAX_ACTIVATION_LIMIT: u32 = 10_000;
/// The shortest heartbeat interval a floating license may ask for.
pub const MIN_HEARTBEAT_TTL_SECONDS: u32 = 60;
/// How long after its heartbeat is due a silent instance's slot is freed.
pub const HEARTBEAT_REAP_AFTER_SECONDS: i64 = 60;

/// A plan's license configuration, as the stored plan holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePolicy {
    /// None: unlimited activations.
    pub activation_limit: Option<u32>,
    /// How long a license lasts from the purchase; None: it never expires.
    pub duration: Option<Interval>,
    /// Activating again with an instance's `metadata.fingerprint` returns it.
    pub reuse_instance_by_fingerprint: bool,
    /// Floating seats: an instance must send a heartbeat this often.
    pub heartbeat_ttl_seconds: Option<u32>,
    /// Days after expiry during which validation says EXPIRED but valid.
    pub grace_days: u32,
}

impl LicensePolicy {
    /// The policy of a plan's stored `license` (snake_case keys); None when
    /// the plan issues no license.
    pub fn of_plan(license: Option<&Value>) -> Option<LicensePolicy> {
        let l = license?;
        if !l.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
            return None;
        }
        let int = |k: &str| l.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        let flag = |k: &str| l.get(k).and_then(Value::as_bool).unwrap_or(false);
        let activation_limit = flag("activation_limit_enabled")
            .then(|| int("activation_limit").unwrap_or(1).clamp(1, MAX_ACTIVATION_LIMIT));
        let duration = match (flag("has_expiry"), l.get("duration_unit").and_then(Value::as_str), int("duration_value"))
        {
            (true, Some("DAY"), Some(n)) => Some(Interval::Days(n)),
            (true, Some("MONTH"), Some(n)) => Some(Interval::Months(n)),
            (true, Some("YEAR"), Some(n)) => Some(Interval::Years(n)),
            _ => None,
        };
        Some(LicensePolicy {
            activation_limit,
            duration,
            reuse_instance_by_fingerprint: flag("reuse_instance_by_fingerprint"),
            heartbeat_ttl_seconds: int("heartbeat_ttl_seconds").map(|t| t.max(MIN_HEARTBEAT_TTL_SECONDS)),
            grace_days: int("grace_days").unwrap_or(0),
        })
    }

    /// When a license bought at `purchased_at` expires (None: never).
    pub fn expires_at(&self, purchased_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.duration.map(|d| boundary(purchased_at, d, 1))
    }

    /// The activation limit as the API shows it (Kelviq's `activationLimit`
    /// is an integer even when unlimited: 0).
    pub fn limit_shown(&self) -> u32 {
        self.activation_limit.unwrap_or(0)
    }
}

/// A new license key: `LIC-` and 128 random bits as 32 upper-case hex
/// digits in the 8-4-4-4-12 groups of a UUID (40 characters; unlike a v4
/// UUID, every bit is random).
pub fn new_license_key() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let h = hex::encode_upper(b);
    format!("LIC-{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// How a key is found without being stored in the clear: SHA-256 of the
/// key as typed, upper-cased and trimmed (keys are 128 random bits, so a
/// plain hash cannot be searched backwards).
pub fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.trim().to_ascii_uppercase().as_bytes()))
}

/// What a license is now, for validation and activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseState {
    /// Disabled by the merchant or by a full refund.
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the purchase's access ended (cancelled, past its end date).
    pub access_ended_at: Option<DateTime<Utc>>,
    pub grace_days: u32,
}

/// An instance (an activation) as validation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceState {
    pub last_heartbeat_at: DateTime<Utc>,
    pub heartbeat_ttl_seconds: Option<u32>,
}

impl InstanceState {
    /// Whether a floating instance missed its heartbeat (it validates as
    /// HEARTBEAT_DEAD from then on).
    pub fn dead(&self, now: DateTime<Utc>) -> bool {
        self.heartbeat_ttl_seconds.is_some_and(|ttl| now > self.last_heartbeat_at + Duration::seconds(i64::from(ttl)))
    }

    /// Whether its slot is freed (TTL + 60 s after its last heartbeat).
    pub fn reaped(&self, now: DateTime<Utc>) -> bool {
        self.heartbeat_ttl_seconds.is_some_and(|ttl| {
            now > self.last_heartbeat_at + Duration::seconds(i64::from(ttl) + HEARTBEAT_REAP_AFTER_SECONDS)
        })
    }
}

/// What validating answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    /// Past its expiry; `valid` while in the grace period.
    Expired {
        in_grace: bool,
    },
    Disabled,
    SubscriptionInactive,
    HeartbeatDead,
    InstanceNotFound,
    InvalidKey,
}

impl Validity {
    pub fn code(self) -> &'static str {
        match self {
            Validity::Valid => "VALID",
            Validity::Expired { .. } => "EXPIRED",
            Validity::Disabled => "DISABLED",
            Validity::SubscriptionInactive => "SUBSCRIPTION_INACTIVE",
            Validity::HeartbeatDead => "HEARTBEAT_DEAD",
            Validity::InstanceNotFound => "INSTANCE_NOT_FOUND",
            Validity::InvalidKey => "INVALID_KEY",
        }
    }

    /// The answer's `valid`.
    pub fn valid(self) -> bool {
        matches!(self, Validity::Valid | Validity::Expired { in_grace: true })
    }
}

impl LicenseState {
    fn expired(&self, now: DateTime<Utc>) -> Option<bool> {
        let at = self.expires_at.filter(|e| now >= *e)?;
        Some(now < at + Duration::days(i64::from(self.grace_days)))
    }

    /// Validates the license (and an instance of it, when one is named:
    /// `Some(None)` is an instance id the license does not have).
    pub fn validate(&self, instance: Option<Option<InstanceState>>, now: DateTime<Utc>) -> Validity {
        if !self.enabled {
            return Validity::Disabled;
        }
        if self.access_ended_at.is_some_and(|e| now >= e) {
            return Validity::SubscriptionInactive;
        }
        let instance_check = match instance {
            Some(None) => Some(Validity::InstanceNotFound),
            Some(Some(i)) if i.dead(now) => Some(Validity::HeartbeatDead),
            _ => None,
        };
        if let Some(v) = instance_check {
            return v;
        }
        match self.expired(now) {
            Some(in_grace) => Validity::Expired { in_grace },
            None => Validity::Valid,
        }
    }

    /// Whether one more instance may be activated, with `active` live ones
    /// (floating instances past their reaping time not counted).
    pub fn may_activate(&self, active: u32, limit: Option<u32>, now: DateTime<Utc>) -> Result<(), ActivationRefusal> {
        if !self.enabled {
            return Err(ActivationRefusal::Disabled);
        }
        if self.access_ended_at.is_some_and(|e| now >= e) || self.expired(now).is_some() {
            return Err(ActivationRefusal::Expired);
        }
        match limit {
            Some(n) if active >= n => Err(ActivationRefusal::LimitReached(n)),
            _ => Ok(()),
        }
    }
}

/// Why an activation is refused (Kelviq's 403 messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationRefusal {
    Expired,
    Disabled,
    LimitReached(u32),
}

impl ActivationRefusal {
    pub fn message(self) -> String {
        match self {
            ActivationRefusal::Expired => "This license has expired.".into(),
            ActivationRefusal::Disabled => "This license has been disabled.".into(),
            ActivationRefusal::LimitReached(n) => format!("Activation limit reached ({n}/{n})."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(day: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 1, day).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
    }

    fn state() -> LicenseState {
        LicenseState { enabled: true, expires_at: Some(at(20)), access_ended_at: None, grace_days: 3 }
    }

    #[test]
    fn policies_from_plans() {
        assert_eq!(LicensePolicy::of_plan(None), None);
        assert_eq!(LicensePolicy::of_plan(Some(&json!({"enabled": false, "activation_limit": 5}))), None);
        let p = LicensePolicy::of_plan(Some(
            &json!({"enabled": true, "activation_limit_enabled": true, "activation_limit": 5,
            "has_expiry": true, "duration_unit": "MONTH", "duration_value": 1, "heartbeat_ttl_seconds": 10}),
        ))
        .unwrap();
        assert_eq!((p.activation_limit, p.limit_shown(), p.heartbeat_ttl_seconds), (Some(5), 5, Some(60)));
        // A month from 31 January is the last day of February, as billing periods count.
        let bought = chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap().and_hms_opt(10, 0, 0).unwrap().and_utc();
        assert_eq!(p.expires_at(bought).unwrap().to_rfc3339(), "2026-02-28T10:00:00+00:00");
        let unlimited = LicensePolicy::of_plan(Some(&json!({"enabled": true}))).unwrap();
        assert_eq!(
            (unlimited.activation_limit, unlimited.limit_shown(), unlimited.expires_at(bought)),
            (None, 0, None)
        );
    }

    #[test]
    fn keys() {
        let k = new_license_key();
        assert_eq!(k.len(), 40);
        assert!(k.starts_with("LIC-"));
        let groups: Vec<usize> = k[4..].split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(k[4..].bytes().all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_ne!(k, new_license_key());
    }

    #[test]
    fn validation_in_order() {
        let s = state();
        assert_eq!(s.validate(None, at(10)), Validity::Valid);
        assert_eq!(s.validate(None, at(20)), Validity::Expired { in_grace: true });
        assert!(s.validate(None, at(22)).valid());
        assert_eq!(s.validate(None, at(23)), Validity::Expired { in_grace: false });
        assert!(!s.validate(None, at(23)).valid());
        assert_eq!(s.validate(Some(None), at(10)).code(), "INSTANCE_NOT_FOUND");
        let floating = InstanceState { last_heartbeat_at: at(10), heartbeat_ttl_seconds: Some(600) };
        assert_eq!(s.validate(Some(Some(floating)), at(10) + Duration::seconds(600)), Validity::Valid);
        assert_eq!(s.validate(Some(Some(floating)), at(10) + Duration::seconds(601)), Validity::HeartbeatDead);
        assert!(!floating.reaped(at(10) + Duration::seconds(660)) && floating.reaped(at(10) + Duration::seconds(661)));
        let ended = LicenseState { access_ended_at: Some(at(15)), ..state() };
        assert_eq!(ended.validate(None, at(15)), Validity::SubscriptionInactive);
        let off = LicenseState { enabled: false, ..state() };
        assert_eq!(off.validate(None, at(1)), Validity::Disabled);
    }

    #[test]
    fn activations() {
        let s = state();
        assert_eq!(s.may_activate(4, Some(5), at(10)), Ok(()));
        let full = s.may_activate(5, Some(5), at(10)).unwrap_err();
        assert_eq!(full.message(), "Activation limit reached (5/5).");
        assert_eq!(s.may_activate(1_000, None, at(10)), Ok(()));
        assert_eq!(s.may_activate(0, Some(5), at(21)).unwrap_err().message(), "This license has expired.");
    }

    proptest! {
        #[test]
        fn never_more_than_the_limit(limit in 1u32..50, attempts in 0u32..200) {
            let s = state();
            let mut active = 0;
            for _ in 0..attempts {
                if s.may_activate(active, Some(limit), at(10)).is_ok() {
                    active += 1;
                }
            }
            prop_assert_eq!(active, attempts.min(limit));
        }
    }
}
