//! Stripe as a payment provider: the typed client and the objects it reads.

pub mod charges;
pub mod checkout;
pub mod client;
pub mod invoice;
pub mod methods;
pub mod objects;
pub mod webhook;

pub use client::{StripeClient, StripeError, STRIPE_API};
