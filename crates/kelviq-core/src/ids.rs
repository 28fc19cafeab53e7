//! Identifier formats of spec §2.4.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// A random string of ASCII letters and digits, from the OS-seeded thread RNG.
pub fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// A 32-character lower-case hex id (uuid4 without hyphens), as the server
/// makes for generated customer ids and usage idempotency keys.
pub fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Turns a display name into an identifier slug: lower case ASCII letters and
/// digits separated by single hyphens.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_dash = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Demo organisation"), "demo-organisation");
        assert_eq!(slugify("  Pro  Plan!! 2 "), "pro-plan-2");
        assert_eq!(slugify("Ünïcode"), "n-code");
    }

    #[test]
    fn random_ids_have_their_shape() {
        let s = random_alphanumeric(45);
        assert_eq!(s.len(), 45);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        let h = hex32();
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
