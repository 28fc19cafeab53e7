//! Secrets the server must read back (webhook signing secrets, later
//! payment provider keys), sealed at rest with XChaCha20-Poly1305 under the
//! server's secret key: `v1:<base64 of nonce ‖ ciphertext>`. A sealed value
//! opened with another key, or changed by one byte, does not open.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const PREFIX: &str = "v1:";
const NONCE: usize = 24;

/// The server's secret key (32 bytes).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the secret key must be 32 bytes, written as 64 hex digits or in base64")]
    BadKey,
    #[error("a sealed secret did not open: it was sealed under another secret key, or changed")]
    DoesNotOpen,
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        SecretKey(key)
    }

    /// Reads 64 hex digits or base64 of 32 bytes (surrounding space ignored).
    pub fn parse(text: &str) -> Result<SecretKey, SealError> {
        let text = text.trim();
        let bytes = hex::decode(text).or_else(|_| BASE64.decode(text)).map_err(|_| SealError::BadKey)?;
        bytes.try_into().map(SecretKey).map_err(|_| SealError::BadKey)
    }

    /// The key as 64 hex digits (for a key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A 32-byte key for one purpose, derived from this one (HMAC-SHA-256
    /// of the purpose): the same on every process holding the secret key,
    /// and useless for any other purpose.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher.encrypt(XNonce::from_slice(&nonce), plain.as_bytes()).expect("encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed.strip_prefix(PREFIX).and_then(|b| BASE64.decode(b).ok()).ok_or(SealError::DoesNotOpen)?;
        if bytes.len() < NONCE {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, body) = bytes.split_at(NONCE);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let plain = cipher.decrypt(XNonce::from_slice(nonce), body).map_err(|_| SealError::DoesNotOpen)?;
        String::from_utf8(plain).map_err(|_| SealError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let k = SecretKey::generate();
        assert_eq!(SecretKey::parse(&k.to_hex()).unwrap().0, k.0);
        assert_eq!(SecretKey::parse(&BASE64.encode(k.0)).unwrap().0, k.0);
        assert_eq!(SecretKey::parse("abcd").unwrap_err(), SealError::BadKey);
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
    }

    #[test]
    fn another_key_or_a_changed_byte_does_not_open() {
        let (k, other) = (SecretKey::generate(), SecretKey::generate());
        let sealed = k.seal("kq_whsec_abc");
        assert_ne!(k.seal("kq_whsec_abc"), sealed, "a fresh nonce each time");
        assert_eq!(other.open(&sealed), Err(SealError::DoesNotOpen));
        let mut bytes = BASE64.decode(&sealed[3..]).unwrap();
        bytes[30] ^= 1;
        assert_eq!(k.open(&format!("v1:{}", BASE64.encode(bytes))), Err(SealError::DoesNotOpen));
        assert_eq!(k.open("plain"), Err(SealError::DoesNotOpen));
    }

    proptest! {
        #[test]
        fn what_is_sealed_opens(plain in ".{0,200}") {
            let k = SecretKey::generate();
            prop_assert_eq!(k.open(&k.seal(&plain)).unwrap(), plain);
        }
    }
}
