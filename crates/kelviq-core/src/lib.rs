//! Kelviq's domain rules as plain functions over plain data: no IO, no HTTP, no SQL.
//!
//! Everything here is unit-testable without a server or a database.

pub mod billing;
pub mod casing;
pub mod catalog;
pub mod clock;
pub mod customer;
pub mod discounts;
pub mod entitlements;
pub mod events;
pub mod geo;
pub mod ids;
pub mod keys;
pub mod licenses;
pub mod meters;
pub mod money;
pub mod periods;
pub mod plans;
pub mod promotions;
pub mod sandbox_cards;
pub mod sealing;
pub mod signin;
pub mod signing;
pub mod storefront;
pub mod stripe;
pub mod tax;
pub mod tax_ids;
pub mod timefmt;
pub mod validation;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use validation::FieldErrors;

/// The two environments every organisation has. All tenant data is scoped to
/// an (organisation, environment) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sandbox" | "test" => Ok(Environment::Sandbox),
            "production" | "prod" | "live" => Ok(Environment::Production),
            other => Err(format!("unknown environment {other:?}: use sandbox or production")),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request acts for: one organisation in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub org_id: uuid::Uuid,
    /// The organisation's small numeric id, shown as `orgId` in report responses.
    pub org_seq: i64,
    pub env: Environment,
}
