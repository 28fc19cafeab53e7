//! The wire: how records are shown to API callers, and small serde helpers
//! shared by the wire types.

pub mod catalog;
pub mod selling;

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
