//! Tax rates as the API shows them.

use kelviq_core::tax::{percentage_number, TaxRate};
use kelviq_core::tax_ids::TaxSettings;
use kelviq_core::timefmt::iso_micros;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A tax rate of the environment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxRateOut {
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The region (ISO 3166-2, after the dash); null: the whole country.
    pub region: Option<String>,
    /// Percent, at most four decimals (`8.875`).
    #[schema(value_type = f64)]
    pub percentage: Value,
    pub created_on: String,
    pub modified_on: String,
}

impl From<&TaxRate> for TaxRateOut {
    fn from(r: &TaxRate) -> Self {
        TaxRateOut {
            id: r.id.to_string(),
            name: r.name.clone(),
            country: r.country.clone(),
            region: (!r.region.is_empty()).then(|| r.region.clone()),
            percentage: percentage_number(r.percentage),
            created_on: iso_micros(r.created_at),
            modified_on: iso_micros(r.modified_at),
        }
    }
}

/// An environment's tax settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxSettingsOut {
    /// EXCLUSIVE or INCLUSIVE; null: the server's default (`KELVIQ_DEFAULT_TAX_BEHAVIOR`).
    pub default_tax_behavior: Option<String>,
    pub reverse_charge: bool,
    pub origin_country: Option<String>,
}

impl From<&TaxSettings> for TaxSettingsOut {
    fn from(s: &TaxSettings) -> Self {
        TaxSettingsOut {
            default_tax_behavior: s.default_behavior.clone(),
            reverse_charge: s.reverse_charge,
            origin_country: s.origin_country.clone(),
        }
    }
}
