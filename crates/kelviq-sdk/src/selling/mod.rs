//! Selling: checkout, subscriptions, charges, refunds, transactions and
//! payment methods, with the Python SDK's client-side checks (§5.5) and its
//! enums (§5.6).

mod clients;
mod models;

pub use clients::*;
pub use models::*;

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            /// Raw strings are accepted wherever the enum is.
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(validation(stringify!($name), &format!("\"{other}\" is not one of {}", [$($text),+].join(", ")))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Billing cycles (spec §4.8).
    ChargePeriod {
        OneTime = "ONE_TIME",
        Monthly = "MONTHLY",
        Yearly = "YEARLY",
        Weekly = "WEEKLY",
        Daily = "DAILY",
        TwentyEightDays = "TWENTY_EIGHT_DAYS",
        ThreeMonths = "THREE_MONTHS",
        SixMonths = "SIX_MONTHS",
    }
);

string_enum!(
    CancellationType { Immediate = "IMMEDIATE", CurrentPeriodEnds = "CURRENT_PERIOD_ENDS", SpecificDate = "SPECIFIC_DATE" }
);

string_enum!(
    ProrationBehavior {
        ImmediateCharge = "IMMEDIATE_CHARGE",
        ProrateNextInvoice = "PRORATE_NEXT_INVOICE",
        NoProration = "NO_PRORATION",
    }
);

string_enum!(TaxBehavior { Inclusive = "INCLUSIVE", Exclusive = "EXCLUSIVE" });

string_enum!(
    RefundReason { Duplicate = "DUPLICATE", Fraudulent = "FRAUDULENT", RequestedByCustomer = "REQUESTED_BY_CUSTOMER", Other = "OTHER" }
);

string_enum!(
    RefundStatus { Pending = "PENDING", Processing = "PROCESSING", Succeeded = "SUCCEEDED", Failed = "FAILED", Canceled = "CANCELED" }
);

string_enum!(TransactionStatus { Success = "success", Failure = "failure", Pending = "pending" });

/// A pydantic-style validation error, raised before anything is sent.
pub(super) fn validation(field: &str, message: &str) -> Error {
    Error::invalid_request(
        format!("Invalid parameters: {field} {message}"),
        Some(json!([{ "loc": [field], "msg": message, "type": "value_error" }])),
    )
}

/// A feature quantity (seats and other purchased units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureQuantity {
    pub identifier: String,
    pub quantity: i64,
}

impl FeatureQuantity {
    pub fn new(identifier: impl Into<String>, quantity: i64) -> Self {
        Self { identifier: identifier.into(), quantity }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn enums_read_raw_strings() {
        assert_eq!("TWENTY_EIGHT_DAYS".parse::<ChargePeriod>().unwrap(), ChargePeriod::TwentyEightDays);
        assert!("QUARTERLY".parse::<ChargePeriod>().is_err());
        assert_eq!(ChargePeriod::ALL.len(), 8);
        assert_eq!(json!(ProrationBehavior::NoProration), json!("NO_PRORATION"));
        assert_eq!(CancellationType::SpecificDate.to_string(), "SPECIFIC_DATE");
    }

    #[test]
    fn trial_end_checks() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let mut u = UpdateSubscription::new("pro", ChargePeriod::Monthly);
        u.trial_end = Some("now".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2026-12-31 23:59:59".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2027-12-31T23:59:59Z".into());
        assert!(u.check(now).is_ok());
        u.trial_end = Some("2026-01-01 00:00:00".into());
        assert_eq!(u.check(now).unwrap_err().details().unwrap()[0]["loc"], json!(["trialEnd"]));
        u.trial_end = Some("someday".into());
        assert!(u.check(now).is_err());
        u.trial_end = None;
        u.payment_behavior = Some("sometime".into());
        assert!(u.check(now).is_err());
        let body = UpdateSubscription {
            ip_address: Some("1.2.3.4".into()),
            ..UpdateSubscription::new("pro", ChargePeriod::Yearly)
        }
        .body();
        assert_eq!(body, json!({"plan_identifier": "pro", "charge_period": "YEARLY", "ipAddress": "1.2.3.4"}));
    }
}
