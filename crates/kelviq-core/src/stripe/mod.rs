//! What talking to Stripe takes, as pure functions: the `Stripe-Signature`
//! of webhooks (made and checked), Stripe's form encoding of nested
//! parameters (`a[b][0]=c`) and its reading, and which secret keys may
//! serve which environment. The HTTP client and the provider live in the
//! server; a fake Stripe for the tests reads requests with the same code.

pub mod form;
pub mod keys;
pub mod signature;

pub use form::{form_decode, form_encode};
pub use keys::{key_mode, KeyMode};
pub use signature::{sign_header, verify_header, SignatureError, TOLERANCE_SECONDS};
