//! Promotions as the API shows them, and the edge answer.

use crate::promotions::edge::EdgeAnswer;
use kelviq_core::promotions::{Banner, CountryGroup, Flags, Promotion};
use kelviq_core::tax::percentage_number;
use kelviq_core::timefmt::iso_micros;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A promotion's banner.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetOut {
    /// Always BANNER.
    #[serde(rename = "type")]
    pub kind: String,
    pub background_color: String,
    pub font_color: String,
    pub highlight_font_color: String,
    pub font_size: String,
    pub border_radius: String,
    /// top or bottom.
    pub placement: String,
    pub un_styled: bool,
    pub add_close_icon: bool,
    /// With `{country}`, `{country_flag}`, `{coupon_code}`, `{discount_percentage}`.
    pub country_message: String,
}

impl From<&Banner> for WidgetOut {
    fn from(b: &Banner) -> Self {
        WidgetOut {
            kind: "BANNER".into(),
            background_color: b.background_color.clone(),
            font_color: b.font_color.clone(),
            highlight_font_color: b.highlight_font_color.clone(),
            font_size: b.font_size.clone(),
            border_radius: b.border_radius.clone(),
            placement: b.placement.clone(),
            un_styled: b.un_styled,
            add_close_icon: b.add_close_icon,
            country_message: b.country_message.clone(),
        }
    }
}

/// What the security checks found (`true`: flagged).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityOut {
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
}

impl From<&Flags> for SecurityOut {
    fn from(f: &Flags) -> Self {
        SecurityOut { vpn: f.vpn, tor: f.tor, proxy: f.proxy, relay: f.relay, crawler: f.crawler }
    }
}

/// `GET /promotions?promotion_id=`: the promotion for the visitor's country.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionEdgeOut {
    /// The country's English name ("" when unknown).
    pub country: String,
    pub country_code: String,
    /// Percent off; 0: none (no discount for the country, or a check flagged the visitor).
    #[schema(value_type = f64)]
    pub percentage: Value,
    /// The coupon to use at checkout ("" when none).
    pub code: String,
    pub message: String,
    pub widgets: Vec<WidgetOut>,
    pub security: SecurityOut,
}

impl From<&EdgeAnswer> for PromotionEdgeOut {
    fn from(a: &EdgeAnswer) -> Self {
        let code = a.country_code.clone().unwrap_or_default();
        PromotionEdgeOut {
            country: kelviq_core::geo::country_name(&code).unwrap_or_default().to_string(),
            country_code: code,
            percentage: percentage_number(a.percentage),
            code: a.code.clone(),
            message: String::new(),
            widgets: a.promotion.banners.iter().map(WidgetOut::from).collect(),
            security: SecurityOut::from(&a.flags),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupPercentageOut {
    pub group: String,
    #[schema(value_type = f64)]
    pub percentage: Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountryPercentageOut {
    pub country_code: String,
    #[schema(value_type = f64)]
    pub percentage: Value,
}

/// A country's coupon.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponOut {
    pub country_code: String,
    pub code: String,
    #[schema(value_type = f64)]
    pub percentage: Value,
}

/// A promotion of the environment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionOut {
    pub id: String,
    pub name: String,
    pub products: Vec<String>,
    pub plans: Vec<String>,
    pub group_percentages: Vec<GroupPercentageOut>,
    pub country_overrides: Vec<CountryPercentageOut>,
    pub widgets: Vec<WidgetOut>,
    pub vpn: bool,
    pub tor: bool,
    pub proxy: bool,
    pub relay: bool,
    pub crawler: bool,
    pub strict_country: bool,
    /// Each country with a discount, its coupon (a discount code checkout takes).
    pub coupon_codes: Vec<CouponOut>,
    pub created_on: String,
    pub modified_on: String,
}

impl From<&Promotion> for PromotionOut {
    fn from(p: &Promotion) -> Self {
        PromotionOut {
            id: p.id.to_string(),
            name: p.name.clone(),
            products: p.products.iter().map(ToString::to_string).collect(),
            plans: p.plans.clone(),
            group_percentages: p
                .group_percentages
                .iter()
                .map(|(g, pct)| GroupPercentageOut { group: g.clone(), percentage: percentage_number(*pct) })
                .collect(),
            country_overrides: p
                .country_overrides
                .iter()
                .map(|(c, pct)| CountryPercentageOut { country_code: c.clone(), percentage: percentage_number(*pct) })
                .collect(),
            widgets: p.banners.iter().map(WidgetOut::from).collect(),
            vpn: p.checks.vpn,
            tor: p.checks.tor,
            proxy: p.checks.proxy,
            relay: p.checks.relay,
            crawler: p.checks.crawler,
            strict_country: p.strict_country,
            coupon_codes: p
                .countries
                .iter()
                .map(|(c, o)| CouponOut {
                    country_code: c.clone(),
                    code: o.code.clone(),
                    percentage: percentage_number(o.percentage),
                })
                .collect(),
            created_on: iso_micros(p.created_at),
            modified_on: iso_micros(p.modified_at),
        }
    }
}

/// A group of countries promotions give one percentage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountryGroupOut {
    pub group: String,
    pub countries: Vec<String>,
}

impl From<&CountryGroup> for CountryGroupOut {
    fn from(g: &CountryGroup) -> Self {
        CountryGroupOut { group: g.name.clone(), countries: g.countries.clone() }
    }
}

/// `GET /promotions/`: the edge answer with `promotion_id`, else a page of promotions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PromotionsAnswer {
    Edge(PromotionEdgeOut),
    Page(crate::http::extract::Page<PromotionOut>),
}
