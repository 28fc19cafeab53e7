//! Signing in to the customer portal with a code sent by e-mail: six
//! digits, good for 10 minutes and 5 tries; the fifth wrong try locks the
//! address out for 15 minutes.

use chrono::{DateTime, Duration, Utc};

pub const CODE_MINUTES: i64 = 10;
pub const MAX_TRIES: i64 = 5;
pub const LOCK_MINUTES: i64 = 15;

/// A new code: six decimal digits, leading zeros kept, each equally likely.
pub fn new_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32))
}

/// A code as typed: digits only (spaces and dashes dropped), six of them.
pub fn normalize(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A code waiting to be typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub tries: i64,
    pub locked_until: Option<DateTime<Utc>>,
}

/// What typing a code gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Wrong; `left` tries remain (0: now locked).
    Wrong {
        left: i64,
    },
    Expired,
    Locked {
        until: DateTime<Utc>,
    },
}

impl PendingCode {
    pub fn new(code_hash: String, now: DateTime<Utc>) -> PendingCode {
        PendingCode { code_hash, expires_at: now + Duration::minutes(CODE_MINUTES), tries: 0, locked_until: None }
    }

    /// Whether a new code may be sent (not while locked).
    pub fn locked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|u| now < *u)
    }

    /// Judges a typed code (its hash) and updates the tries.
    pub fn try_code(&mut self, given_hash: &str, now: DateTime<Utc>) -> Verdict {
        if let Some(until) = self.locked(now) {
            return Verdict::Locked { until };
        }
        if now >= self.expires_at {
            return Verdict::Expired;
        }
        if crate::keys::hashes_match(given_hash, &self.code_hash) {
            return Verdict::Accepted;
        }
        self.tries += 1;
        let left = (MAX_TRIES - self.tries).max(0);
        if left == 0 {
            self.locked_until = Some(now + Duration::minutes(LOCK_MINUTES));
        }
        Verdict::Wrong { left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn codes_and_their_typing() {
        let c = new_code();
        assert_eq!(c.len(), 6);
        assert_eq!(normalize(" 012-345 "), Some("012345".into()));
        assert_eq!(normalize("12345"), None);
        assert_eq!(normalize("12345a"), None);
    }

    #[test]
    fn expiry_and_lock() {
        let mut p = PendingCode::new("good".into(), t0());
        assert_eq!(p.try_code("bad", t0()), Verdict::Wrong { left: 4 });
        assert_eq!(p.try_code("good", t0()), Verdict::Accepted);
        assert_eq!(p.try_code("good", t0() + Duration::minutes(10)), Verdict::Expired);
        let mut p = PendingCode::new("good".into(), t0());
        for left in (0..5).rev() {
            assert_eq!(p.try_code("bad", t0()), Verdict::Wrong { left });
        }
        let until = t0() + Duration::minutes(15);
        assert_eq!(p.try_code("good", t0()), Verdict::Locked { until }, "even the right code, while locked");
        assert_eq!(p.locked(until), None);
    }

    proptest! {
        /// However the tries go, at most five wrong ones are judged before the lock.
        #[test]
        fn at_most_five_wrong_tries(tries in proptest::collection::vec(any::<bool>(), 0..20)) {
            let mut p = PendingCode::new("good".into(), t0());
            let mut wrong_judged = 0;
            for right in tries {
                match p.try_code(if right { "good" } else { "bad" }, t0()) {
                    Verdict::Wrong { .. } => wrong_judged += 1,
                    Verdict::Accepted => prop_assert!(p.tries < MAX_TRIES),
                    _ => {}
                }
            }
            prop_assert!(wrong_judged <= MAX_TRIES);
        }
    }
}
