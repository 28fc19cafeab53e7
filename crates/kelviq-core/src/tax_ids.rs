//! Buyers' tax ids and the B2B reverse charge.
//!
//! A tax id is checked for its format only (no registry is asked): the
//! VAT numbers of the EU's member states, of the United Kingdom and of
//! Northern Ireland by their published patterns; elsewhere any 2–20
//! letters and digits. Reverse charge applies when the merchant enables
//! it and the buyer's id has its country's format (and, when the merchant
//! names its own country, the buyer is in another one): no tax is charged,
//! and the invoice says the buyer accounts for it.

use crate::FieldErrors;
use serde::{Deserialize, Serialize};

/// An environment's tax settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSettings {
    /// How prices that leave it UNSPECIFIED are taxed: `EXCLUSIVE` or
    /// `INCLUSIVE`; none: the server's default.
    #[serde(default)]
    pub default_behavior: Option<String>,
    /// Whether a business buyer with a tax id of its country's format pays
    /// no tax (reverse charge).
    #[serde(default)]
    pub reverse_charge: bool,
    /// The merchant's own country: its buyers are never reverse charged.
    #[serde(default)]
    pub origin_country: Option<String>,
}

/// Formats per country: `9` a digit, `A` a letter, `X` a letter or digit,
/// any other character itself. The id is written with its country prefix
/// (Greece: `EL`), without spaces, dots or dashes.
const FORMATS: &[(&str, &[&str])] = &[
    ("AT", &["ATU99999999"]),
    ("BE", &["BE0999999999", "BE1999999999"]),
    ("BG", &["BG999999999", "BG9999999999"]),
    ("CY", &["CY99999999A"]),
    ("CZ", &["CZ99999999", "CZ999999999", "CZ9999999999"]),
    ("DE", &["DE999999999"]),
    ("DK", &["DK99999999"]),
    ("EE", &["EE999999999"]),
    ("GR", &["EL999999999"]),
    ("ES", &["ESX9999999X"]),
    ("FI", &["FI99999999"]),
    ("FR", &["FRXX999999999"]),
    ("HR", &["HR99999999999"]),
    ("HU", &["HU99999999"]),
    ("IE", &["IE9999999A", "IE9999999AA", "IE9X99999A"]),
    ("IT", &["IT99999999999"]),
    ("LT", &["LT999999999", "LT999999999999"]),
    ("LU", &["LU99999999"]),
    ("LV", &["LV99999999999"]),
    ("MT", &["MT99999999"]),
    ("NL", &["NL999999999B99"]),
    ("PL", &["PL9999999999"]),
    ("PT", &["PT999999999"]),
    (
        "RO",
        &["RO99", "RO999", "RO9999", "RO99999", "RO999999", "RO9999999", "RO99999999", "RO999999999", "RO9999999999"],
    ),
    ("SE", &["SE999999999901"]),
    ("SI", &["SI99999999"]),
    ("SK", &["SK9999999999"]),
    ("GB", &["GB999999999", "GB999999999999", "GBGD999", "GBHA999"]),
    ("XI", &["XI999999999", "XI999999999999", "XIGD999", "XIHA999"]),
];

/// The longest tax id kept.
pub const MAX_TAX_ID: usize = 20;

/// A tax id as written: upper case, without spaces, dots or dashes.
pub fn normalise_tax_id(id: &str) -> String {
    id.chars().filter(|c| !matches!(c, ' ' | '.' | '-')).map(|c| c.to_ascii_uppercase()).collect()
}

fn matches_format(id: &str, format: &str) -> bool {
    id.len() == format.len()
        && id.chars().zip(format.chars()).all(|(c, f)| match f {
            '9' => c.is_ascii_digit(),
            'A' => c.is_ascii_uppercase(),
            'X' => c.is_ascii_uppercase() || c.is_ascii_digit(),
            f => c == f,
        })
}

/// Whether a (normalised) tax id has the format of `country`'s ids.
pub fn tax_id_format_valid(country: &str, id: &str) -> bool {
    match FORMATS.iter().find(|(c, _)| c.eq_ignore_ascii_case(country)) {
        Some((_, formats)) => formats.iter().any(|f| matches_format(id, f)),
        None => (2..=MAX_TAX_ID).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric()),
    }
}

/// Checks a tax id given with a billing address in `country`, returning
/// it normalised; a wrong one is named in `errors` under `field`.
pub fn parse_tax_id(country: Option<&str>, id: &str, field: &str, errors: &mut FieldErrors) -> Option<String> {
    let id = normalise_tax_id(id);
    if id.is_empty() {
        return None;
    }
    match country {
        None => errors.add(field, "A tax id needs the billing address's country."),
        Some(c) if !tax_id_format_valid(c, &id) => {
            errors.add(field, format!("{id} is not a tax id of the format used in {c}."))
        }
        Some(_) => return Some(id),
    }
    None
}

/// Whether a buyer in `country` with `tax_id` pays no tax because of the
/// reverse charge: the merchant enables it, the id has its country's
/// format, and the buyer is not in the merchant's own country (when named).
pub fn reverse_charged(enabled: bool, origin_country: Option<&str>, country: &str, tax_id: Option<&str>) -> bool {
    enabled
        && tax_id.is_some_and(|id| tax_id_format_valid(country, id))
        && origin_country.is_none_or(|o| !o.eq_ignore_ascii_case(country))
}

/// The text of a reverse-charged invoice's tax line.
pub fn reverse_charge_note(tax_id: &str) -> String {
    format!("Reverse charge: tax to be accounted for by the recipient (tax id {tax_id})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_formats() {
        for (country, id) in [
            ("DE", "DE123456789"),
            ("FR", "FRAB123456789"),
            ("NL", "NL123456789B01"),
            ("GR", "EL123456789"),
            ("IE", "IE1234567FA"),
            ("GB", "GBGD123"),
            ("US", "123456789"),
        ] {
            assert!(tax_id_format_valid(country, id), "{country} {id}");
        }
        for (country, id) in [("DE", "DE12345678"), ("DE", "FR123456789"), ("NL", "NL123456789C01"), ("US", "1")] {
            assert!(!tax_id_format_valid(country, id), "{country} {id}");
        }
        assert_eq!(normalise_tax_id("de 123.456-789"), "DE123456789");
    }

    #[test]
    fn reverse_charge_needs_all_of_it() {
        assert!(reverse_charged(true, Some("FR"), "DE", Some("DE123456789")));
        assert!(reverse_charged(true, None, "DE", Some("DE123456789")));
        assert!(!reverse_charged(false, None, "DE", Some("DE123456789")), "not enabled");
        assert!(!reverse_charged(true, Some("DE"), "DE", Some("DE123456789")), "a domestic sale");
        assert!(!reverse_charged(true, None, "DE", Some("DE1")), "a wrong format");
        assert!(!reverse_charged(true, None, "DE", None), "no id");
    }

    proptest! {
        /// Every id a format describes is valid for its country and none
        /// other of the table, and survives normalising.
        #[test]
        fn formats_generate_valid_ids(i in 0..FORMATS.len(), seed in proptest::collection::vec(0u8..36, 20)) {
            let (country, formats) = FORMATS[i];
            let format = formats[seed[0] as usize % formats.len()];
            let id: String = format.chars().zip(seed.iter().cycle()).map(|(f, s)| match f {
                '9' => (b'0' + s % 10) as char,
                'A' => (b'A' + s % 26) as char,
                'X' => if *s < 10 { (b'0' + s) as char } else { (b'A' + s - 10) as char },
                f => f,
            }).collect();
            prop_assert!(tax_id_format_valid(country, &id));
            prop_assert_eq!(normalise_tax_id(&id.to_lowercase()), id.clone());
            for (other, _) in FORMATS.iter().filter(|(c, _)| *c != country) {
                prop_assert!(!tax_id_format_valid(other, &id), "{} also valid for {}", id, other);
            }
        }
    }
}
