//! The storefront settings on the wire.

use kelviq_core::storefront::StorefrontSettings;
use serde::Serialize;
use utoipa::ToSchema;

/// An environment's storefront settings: the portal's rules and the hosted pages' look.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontSettingsOut {
    /// Customers may change plan in the portal.
    pub allow_plan_changes: bool,
    /// The plans (identifiers) customers may change to; null: every published plan of the subscription's product.
    pub allowed_plans: Option<Vec<String>>,
    /// Customers may change quantities (seats) of features their plan sells per unit.
    pub allow_quantity_changes: bool,
    /// AT_PERIOD_END (with undo), IMMEDIATELY or DISABLED.
    pub cancellation_mode: String,
    /// The portal shows usage per metered feature.
    pub show_usage: bool,
    /// The seller's name on the hosted pages; null: the organisation's name.
    pub display_name: Option<String>,
    /// The logo's public address; null: none.
    pub logo_url: Option<String>,
    /// `#rrggbb`; null: the default accent.
    pub brand_color: Option<String>,
    pub support_email: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
}

impl StorefrontSettingsOut {
    pub fn new(s: &StorefrontSettings, base: &str) -> Self {
        StorefrontSettingsOut {
            allow_plan_changes: s.allow_plan_changes,
            allowed_plans: s.allowed_plans.clone(),
            allow_quantity_changes: s.allow_quantity_changes,
            cancellation_mode: s.cancellation_mode.as_str().to_string(),
            show_usage: s.show_usage,
            display_name: s.display_name.clone(),
            logo_url: crate::storefront::logo_path(s).map(|p| format!("{base}{p}")),
            brand_color: s.brand_color.clone(),
            support_email: s.support_email.clone(),
            terms_url: s.terms_url.clone(),
            privacy_url: s.privacy_url.clone(),
        }
    }
}
