//! Field errors in the shape the Kelviq API answers with (spec §2.2):
//! `{"customerId": ["This field is required."]}`, keys in camelCase.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single error on one field. `field` may be given in snake_case or camelCase.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(crate::casing::snake_to_camel(field)).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.0
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {}", v.join(" "))).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for FieldErrors {}

/// Email syntax check in the spirit of Django's `EmailValidator`: a local part
/// and a domain with at least one dot, no spaces, sane lengths.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    }) && labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_alphabetic()) && tld.len() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "john.doe+tag@example.com", "x@sub.domain.org"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in ["", "plain", "a@b", "a@@b.com", "a b@c.com", "@b.com", "a@.com", "a@b.c", "a..b@c.com", "a@b-.com"]
        {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn field_names_are_camelised() {
        let e = FieldErrors::single("customer_id", "This field is required.");
        assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["customerId"]);
    }
}
