//! The statuses of the money records, as enums that read and write the
//! strings stored in documents and shown on the wire.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every status, in the documented order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The status as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The status a stored or requested string names.
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// Every status as its string (the choices of a `status` filter).
            pub fn names() -> Vec<&'static str> {
                $name::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Where an order is: paid (COMPLETE), declined (FAILED), refunded in
    /// full or in part. PENDING, CANCELLED and FRAUDULENT are Kelviq's
    /// other statuses, accepted as filters; this server does not make them.
    OrderStatus {
        Pending = "PENDING",
        Complete = "COMPLETE",
        Failed = "FAILED",
        Refunded = "REFUNDED",
        PartialRefund = "PARTIAL_REFUND",
        Cancelled = "CANCELLED",
        Fraudulent = "FRAUDULENT",
    }
}

wire_enum! {
    /// Where an invoice is. Orders show OPEN, PAID or PAYMENT_FAILED; an
    /// invoice may also be voided, or written off as uncollectible after
    /// its retries ran out. DRAFT is accepted as a filter: invoices here
    /// are finalised when they are issued.
    InvoiceStatus {
        Draft = "DRAFT",
        Open = "OPEN",
        Paid = "PAID",
        PaymentFailed = "PAYMENT_FAILED",
        Void = "VOID",
        Uncollectible = "UNCOLLECTIBLE",
    }
}

wire_enum! {
    /// What an invoice line charges or credits.
    LineKind {
        /// The plan's recurring or one-time price.
        Base = "BASE",
        /// A per-unit feature bought in advance (seats).
        Quantity = "QUANTITY",
        /// Metered usage of the period, billed in arrears.
        Usage = "USAGE",
        /// Time on a plan before or after a change.
        Proration = "PRORATION",
        Discount = "DISCOUNT",
        Tax = "TAX",
        /// The customer's balance applied.
        Credit = "CREDIT",
        /// Usage dated in a period already invoiced.
        LateUsage = "LATE_USAGE",
    }
}

#[allow(clippy::derivable_impls)] // the enum comes from `wire_enum!`
impl Default for LineKind {
    fn default() -> Self {
        LineKind::Base
    }
}

wire_enum! {
    /// How a money movement ended.
    TransactionStatus {
        Success = "success",
        Failure = "failure",
        Pending = "pending",
    }
}

wire_enum! {
    /// Where a refund is.
    RefundStatus {
        Pending = "PENDING",
        Processing = "PROCESSING",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
        Canceled = "CANCELED",
    }
}

wire_enum! {
    /// Where a checkout session is. `expired` is never stored: an open
    /// session past its expiry shows as expired.
    SessionStatus {
        Open = "open",
        /// A payer's completion is under way (shown as open).
        Processing = "processing",
        Success = "success",
        Expired = "expired",
    }
}

impl OrderStatus {
    /// Whether money of the order can still be refunded.
    pub fn refundable(self) -> bool {
        matches!(self, OrderStatus::Complete | OrderStatus::PartialRefund)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_from_their_strings() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
            assert_eq!(serde_json::from_value::<OrderStatus>(serde_json::json!(s.as_str())).unwrap(), *s);
        }
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(TransactionStatus::names(), ["success", "failure", "pending"]);
        assert_eq!(RefundStatus::names(), ["PENDING", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELED"]);
        assert!(OrderStatus::parse("complete").is_none());
    }
}
