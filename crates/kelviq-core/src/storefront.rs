//! A merchant's storefront settings, per environment: what its customers may
//! do in the portal (change plan and among which plans, change quantities,
//! how they cancel, whether usage shows) and how its hosted pages look (the
//! seller's display name, logo, brand colour, support address, terms and
//! privacy links). The rules here are pure: parsing the merchant's input and
//! picking colours that stay readable whatever the brand colour is.

use crate::validation::is_valid_email;
use serde::{Deserialize, Serialize};

/// How customers may cancel in the portal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationMode {
    /// At the end of the paid period, with undo until then (the default).
    #[default]
    AtPeriodEnd,
    /// At once.
    Immediately,
    /// Not in the portal: customers ask the merchant.
    Disabled,
}

impl CancellationMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AT_PERIOD_END" | "CURRENT_PERIOD_ENDS" => Some(Self::AtPeriodEnd),
            "IMMEDIATELY" | "IMMEDIATE" => Some(Self::Immediately),
            "DISABLED" => Some(Self::Disabled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtPeriodEnd => "AT_PERIOD_END",
            Self::Immediately => "IMMEDIATELY",
            Self::Disabled => "DISABLED",
        }
    }

    /// The API's `cancellationType` a portal cancellation uses.
    pub fn cancellation_type(self) -> Option<&'static str> {
        match self {
            Self::AtPeriodEnd => Some("CURRENT_PERIOD_ENDS"),
            Self::Immediately => Some("IMMEDIATE"),
            Self::Disabled => None,
        }
    }
}

/// The logo: a file attached through `/media/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logo {
    pub file_id: uuid::Uuid,
    pub name: String,
}

fn yes() -> bool {
    true
}

/// An environment's storefront settings. Absent settings are the defaults:
/// plan changes among the published plans of the subscription's product,
/// quantity changes, cancellation at period end, usage shown, the
/// organisation's name and no branding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorefrontSettings {
    #[serde(default = "yes")]
    pub allow_plan_changes: bool,
    /// Plan identifiers customers may change to; none: every published plan
    /// of the subscription's product.
    #[serde(default)]
    pub allowed_plans: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub allow_quantity_changes: bool,
    #[serde(default)]
    pub cancellation_mode: CancellationMode,
    #[serde(default = "yes")]
    pub show_usage: bool,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub logo: Option<Logo>,
    /// `#rrggbb`, lower case.
    #[serde(default)]
    pub brand_color: Option<String>,
    #[serde(default)]
    pub support_email: Option<String>,
    #[serde(default)]
    pub terms_url: Option<String>,
    #[serde(default)]
    pub privacy_url: Option<String>,
}

impl Default for StorefrontSettings {
    fn default() -> Self {
        StorefrontSettings {
            allow_plan_changes: true,
            allowed_plans: None,
            allow_quantity_changes: true,
            cancellation_mode: CancellationMode::AtPeriodEnd,
            show_usage: true,
            display_name: None,
            logo: None,
            brand_color: None,
            support_email: None,
            terms_url: None,
            privacy_url: None,
        }
    }
}

/// The default accent of the hosted pages.
pub const DEFAULT_BRAND: Rgb = Rgb(0x1f, 0x4f, 0xd8);

impl StorefrontSettings {
    /// The name shown as the seller.
    pub fn seller_name<'a>(&'a self, org_name: &'a str) -> &'a str {
        self.display_name.as_deref().unwrap_or(org_name)
    }

    /// The brand colour, or the default accent.
    pub fn brand(&self) -> Rgb {
        self.brand_color.as_deref().and_then(Rgb::parse).unwrap_or(DEFAULT_BRAND)
    }

    /// Whether a customer of a plan of a product may move to `identifier`,
    /// given the product's published plans.
    pub fn may_change_to(&self, identifier: &str, product_plans: &[String]) -> bool {
        self.allow_plan_changes
            && match &self.allowed_plans {
                Some(allowed) => allowed.iter().any(|a| a == identifier),
                None => product_plans.iter().any(|p| p == identifier),
            }
    }
}

/// A colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rgb` or `#rrggbb` (either case).
    pub fn parse(s: &str) -> Option<Rgb> {
        let hex = s.trim().strip_prefix('#')?;
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let v = |s: &str| u8::from_str_radix(s, 16).ok();
        match hex.len() {
            3 => {
                let d: Vec<u8> = hex.chars().map(|c| c.to_digit(16).expect("hex") as u8 * 17).collect();
                Some(Rgb(d[0], d[1], d[2]))
            }
            6 => Some(Rgb(v(&hex[0..2])?, v(&hex[2..4])?, v(&hex[4..6])?)),
            _ => None,
        }
    }

    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// WCAG 2 relative luminance.
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    /// WCAG 2 contrast ratio, 1 to 21.
    pub fn contrast(self, other: Rgb) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// The text colour for a button of this colour: white or black,
    /// whichever contrasts more (always at least 4.58:1, the square root of 21).
    pub fn text_on(self) -> Rgb {
        let (white, ink) = (Rgb(255, 255, 255), Rgb(0, 0, 0));
        if self.contrast(white) >= self.contrast(ink) {
            white
        } else {
            ink
        }
    }

    /// This colour darkened until text of it reads on white (4.5:1), for
    /// links and outlines.
    pub fn readable_on_white(self) -> Rgb {
        let white = Rgb(255, 255, 255);
        let mut c = self;
        let mut step = 0u32;
        while c.contrast(white) < 4.5 {
            step += 1;
            let scale = |v: u8| (f64::from(v) * (1.0 - f64::from(step) * 0.05)).max(0.0) as u8;
            c = Rgb(scale(self.0), scale(self.1), scale(self.2));
        }
        c
    }
}

/// The checks on the settings' free-text fields, each an error message.
pub fn check_display_name(s: &str) -> Result<String, &'static str> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 80 || s.chars().any(char::is_control) {
        return Err("A name of 1 to 80 characters without control characters is required.");
    }
    Ok(s.to_string())
}

pub fn check_brand_color(s: &str) -> Result<String, &'static str> {
    Rgb::parse(s).map(Rgb::hex).ok_or("A colour like #1f4fd8 (or #14d) is required.")
}

pub fn check_support_email(s: &str) -> Result<String, &'static str> {
    let s = s.trim();
    if is_valid_email(s) {
        Ok(s.to_string())
    } else {
        Err("Enter a valid email address.")
    }
}

/// A public `https://` link (at most 500 characters, no spaces or controls).
pub fn check_link(s: &str) -> Result<String, &'static str> {
    let s = s.trim();
    let rest = s.strip_prefix("https://").ok_or("An https:// address is required.")?;
    if s.len() > 500
        || rest.is_empty()
        || rest.starts_with('/')
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("An https:// address of at most 500 characters without spaces is required.");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn colours_parse_in_both_lengths() {
        assert_eq!(Rgb::parse("#1F4FD8"), Some(Rgb(0x1f, 0x4f, 0xd8)));
        assert_eq!(Rgb::parse("#14d"), Some(Rgb(0x11, 0x44, 0xdd)));
        assert_eq!(Rgb::parse("1f4fd8"), None);
        assert_eq!(Rgb::parse("#12345"), None);
        assert_eq!(Rgb::parse("#ggg"), None);
        assert_eq!(check_brand_color(" #ABCDEF "), Ok("#abcdef".into()));
    }

    #[test]
    fn contrast_is_the_wcag_ratio() {
        let (black, white) = (Rgb(0, 0, 0), Rgb(255, 255, 255));
        assert!((black.contrast(white) - 21.0).abs() < 1e-9);
        assert!((white.contrast(white) - 1.0).abs() < 1e-9);
        assert_eq!(Rgb(0xff, 0xd7, 0x00).text_on(), Rgb(0, 0, 0));
        assert_eq!(DEFAULT_BRAND.text_on(), white);
    }

    #[test]
    fn plan_changes_follow_the_settings() {
        let product = vec!["basic".to_string(), "pro".to_string()];
        let mut s = StorefrontSettings::default();
        assert!(s.may_change_to("pro", &product));
        assert!(!s.may_change_to("other-product", &product));
        s.allowed_plans = Some(vec!["basic".into()]);
        assert!(!s.may_change_to("pro", &product));
        assert!(s.may_change_to("basic", &product));
        s.allow_plan_changes = false;
        assert!(!s.may_change_to("basic", &product));
    }

    #[test]
    fn links_must_be_public_https() {
        assert!(check_link("https://example.com/terms").is_ok());
        assert!(check_link("http://example.com").is_err());
        assert!(check_link("javascript:alert(1)").is_err());
        assert!(check_link("https://").is_err());
        assert!(check_link("https://exa mple.com").is_err());
    }

    #[test]
    fn absent_fields_read_as_the_defaults() {
        let s: StorefrontSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, StorefrontSettings::default());
        assert_eq!(CancellationMode::parse("immediately"), Some(CancellationMode::Immediately));
    }

    proptest! {
        #[test]
        fn button_text_always_reads(r in any::<u8>(), g in any::<u8>(), b in any::<u8>()) {
            let c = Rgb(r, g, b);
            prop_assert!(c.text_on().contrast(c) >= 4.5);
        }

        #[test]
        fn darkened_brand_reads_on_white(r in any::<u8>(), g in any::<u8>(), b in any::<u8>()) {
            let c = Rgb(r, g, b);
            let d = c.readable_on_white();
            prop_assert!(d.contrast(Rgb(255, 255, 255)) >= 4.5);
            prop_assert!(d.0 <= c.0 && d.1 <= c.1 && d.2 <= c.2);
            if c.contrast(Rgb(255, 255, 255)) >= 4.5 { prop_assert_eq!(d, c); }
        }

        #[test]
        fn hex_round_trips(r in any::<u8>(), g in any::<u8>(), b in any::<u8>()) {
            let c = Rgb(r, g, b);
            prop_assert_eq!(Rgb::parse(&c.hex()), Some(c));
        }
    }
}
