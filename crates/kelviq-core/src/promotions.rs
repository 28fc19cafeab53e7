//! Purchasing-power-parity promotions: a discount percentage per country,
//! from the country's group (`TIER_1` … `TIER_5`) or an override for the
//! country, each country with its own coupon code; a banner's settings; and
//! which visitors get nothing (VPN, Tor, proxy, relay, crawler).

use crate::geo::countries::DEFAULT_GROUPS;
use crate::tax::PERCENT_SCALE;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A group of countries sharing a discount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryGroup {
    pub name: String,
    pub countries: Vec<String>,
}

/// The groups shipped with the product (see [`DEFAULT_GROUPS`]).
pub fn default_groups() -> Vec<CountryGroup> {
    DEFAULT_GROUPS
        .iter()
        .map(|(name, members)| CountryGroup {
            name: (*name).into(),
            countries: members.iter().map(|c| (*c).to_string()).collect(),
        })
        .collect()
}

/// The banner a page shows a visitor with a discount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    pub background_color: String,
    pub font_color: String,
    pub highlight_font_color: String,
    pub font_size: String,
    pub border_radius: String,
    /// `top` or `bottom`.
    pub placement: String,
    pub un_styled: bool,
    pub add_close_icon: bool,
    /// With `{country}`, `{country_flag}`, `{coupon_code}`, `{discount_percentage}`.
    pub country_message: String,
}

impl Default for Banner {
    fn default() -> Self {
        Banner {
            background_color: "#3182CE".into(),
            font_color: "#F9F9F9".into(),
            highlight_font_color: "#DD5C64".into(),
            font_size: "1rem".into(),
            border_radius: "0".into(),
            placement: "top".into(),
            un_styled: false,
            add_close_icon: false,
            country_message: "Hello {country_flag} It looks like you are from <b>{country}</b>. \
                              Use code <b>\u{201c}{coupon_code}\u{201d}</b> to get <b>{discount_percentage}%</b> off."
                .into(),
        }
    }
}

/// Which visitors a promotion turns away (each on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Checks { vpn: true, tor: true, proxy: true, relay: true, crawler: true }
    }
}

/// What the checks found of a visitor (`true`: flagged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
}

impl Flags {
    /// The flags a promotion acts on.
    pub fn turned_away(&self, checks: &Checks) -> bool {
        (checks.vpn && self.vpn)
            || (checks.tor && self.tor)
            || (checks.proxy && self.proxy)
            || (checks.relay && self.relay)
            || (checks.crawler && self.crawler)
    }
}

/// A promotion. Its countries, percentages and codes are fixed when it is
/// made (only its name and banners change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: uuid::Uuid,
    pub name: String,
    pub products: Vec<uuid::Uuid>,
    pub plans: Vec<String>,
    /// Percent (in [`PERCENT_SCALE`]) per group, as asked.
    pub group_percentages: Vec<(String, i64)>,
    /// Percent per country, winning over its group's, as asked.
    pub country_overrides: Vec<(String, i64)>,
    /// Each country with a discount: its percentage and coupon code.
    pub countries: BTreeMap<String, CountryOffer>,
    pub banners: Vec<Banner>,
    pub checks: Checks,
    /// A coupon works only for buyers whose billing country is its country.
    pub strict_country: bool,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// What a promotion offers one country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryOffer {
    pub percentage: i64,
    pub code: String,
}

/// Each country's percentage: its group's, or its override (which wins);
/// countries left at 0 get nothing.
pub fn country_percentages(
    groups: &[CountryGroup],
    group_percentages: &[(String, i64)],
    overrides: &[(String, i64)],
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (group, pct) in group_percentages {
        if let Some(g) = groups.iter().find(|g| g.name == *group) {
            for c in &g.countries {
                out.insert(c.clone(), *pct);
            }
        }
    }
    for (country, pct) in overrides {
        out.insert(country.clone(), *pct);
    }
    out.retain(|_, pct| *pct > 0);
    out
}

/// A coupon code: 11 of `A-Z 0-9`, starting with a letter (≈ 56 bits).
pub fn coupon_code() -> String {
    use rand::Rng;
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let mut code = String::with_capacity(11);
    code.push(LETTERS[rng.gen_range(0..LETTERS.len())] as char);
    for _ in 0..10 {
        code.push(ALPHANUMERIC[rng.gen_range(0..ALPHANUMERIC.len())] as char);
    }
    code
}

/// A percentage in [`PERCENT_SCALE`] as a whole-or-decimal number for
/// templates (`40`, `12.5`).
pub fn percent_text(p: i64) -> String {
    let whole = p / PERCENT_SCALE;
    let frac = p % PERCENT_SCALE;
    if frac == 0 {
        whole.to_string()
    } else {
        crate::tax::percentage_text(p)
    }
}

/// What a visitor is offered: their country's offer, unless a check the
/// promotion makes flags them.
pub fn offer_for<'a>(p: &'a Promotion, country: Option<&str>, flags: &Flags) -> Option<&'a CountryOffer> {
    if flags.turned_away(&p.checks) {
        return None;
    }
    p.countries.get(&country?.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p: i64) -> i64 {
        p * PERCENT_SCALE
    }

    #[test]
    fn overrides_win_and_zero_is_nothing() {
        let groups = default_groups();
        let got = country_percentages(
            &groups,
            &[("TIER_4".into(), pct(40)), ("TIER_3".into(), pct(20))],
            &[("IN".into(), pct(50)), ("BR".into(), 0)],
        );
        assert_eq!(got.get("IN"), Some(&pct(50)));
        assert_eq!(got.get("ID"), Some(&pct(40)));
        assert_eq!(got.get("MX"), Some(&pct(20)));
        assert_eq!(got.get("BR"), None, "an override of 0 removes the group's");
        assert_eq!(got.get("US"), None);
    }

    #[test]
    fn flags_turn_away_only_when_checked() {
        let flags = Flags { vpn: true, ..Flags::default() };
        assert!(flags.turned_away(&Checks::default()));
        assert!(!flags.turned_away(&Checks { vpn: false, ..Checks::default() }));
        assert!(!Flags::default().turned_away(&Checks::default()));
    }

    #[test]
    fn codes() {
        let a = coupon_code();
        assert_eq!(a.len(), 11);
        assert!(a.as_bytes()[0].is_ascii_uppercase());
        assert!(a.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_ne!(a, coupon_code());
        assert_eq!((percent_text(pct(40)), percent_text(125_000)), ("40".into(), "12.5".into()));
    }
}
