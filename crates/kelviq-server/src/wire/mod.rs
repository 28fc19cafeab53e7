//! The wire: how records are shown to API callers, and small serde helpers
//! shared by the wire types.

pub mod catalog;
pub mod discounts;
pub mod invoices;
pub mod licenses;
pub mod offering;
pub mod ops;
pub mod plans;
pub mod promotions;
pub mod selling;
pub mod storefront;
pub mod tax;
pub mod usage;
pub mod webhooks;

use serde::{Deserialize, Deserializer};

/// For PATCH bodies: absent ⇒ `None`, `null` ⇒ `Some(None)`, a value ⇒ `Some(Some(v))`.
/// Use with `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A stored answer (a report's or a consume's, kept with its idempotency
/// key) read as its wire type.
pub fn stored_answer<T: serde::de::DeserializeOwned>(answer: serde_json::Value) -> crate::error::ServiceResult<T> {
    serde_json::from_value(answer).map_err(|e| {
        crate::error::ServiceError::Internal(anyhow::anyhow!("a stored answer does not read as its type: {e}"))
    })
}
