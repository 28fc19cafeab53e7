//! Selling: what a plan costs for a charge period, the subscription record
//! and its state machine (what falls due next), and the money records.
//!
//! Amounts are integer minor units of the record's currency throughout.

mod change;
mod invoice;
mod overage;
mod quote;
mod records;
mod status;
mod subscription;
#[cfg(test)]
mod tests;
mod transitions;

pub use change::*;
pub use invoice::*;
pub use overage::*;
pub use quote::*;
pub use records::*;
pub use status::*;
pub use subscription::*;
pub use transitions::*;
