//! HMAC-SHA256 signatures for things the server hands out and later checks:
//! upload policies and short-lived download links.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex HMAC-SHA256 of `message` under `key`.
pub fn sign(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex signature in constant time.
pub fn verify(key: &[u8], message: &[u8], signature: &str) -> bool {
    let expected = sign(key, message);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

/// A file name safe to keep on disk and in URLs: its last path component,
/// with anything but letters, digits, `.`, `-` and `_` replaced by `_`.
pub fn safe_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(150)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = sign(b"k", b"msg");
        assert_eq!(s.len(), 64);
        assert!(verify(b"k", b"msg", &s));
        assert!(!verify(b"k", b"msh", &s));
        assert!(!verify(b"j", b"msg", &s));
        assert!(!verify(b"k", b"msg", &s[..10]));
    }

    #[test]
    fn file_names() {
        assert_eq!(safe_file_name("terms.pdf").as_deref(), Some("terms.pdf"));
        assert_eq!(safe_file_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_file_name("my file (1).png").as_deref(), Some("my_file__1_.png"));
        assert_eq!(safe_file_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(safe_file_name("dir/"), None);
        assert_eq!(safe_file_name(""), None);
    }
}
