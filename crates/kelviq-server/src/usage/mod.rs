//! Usage: the writer that commits events, reports and consumes (group
//! commit), the in-memory entitlement engine the edge check reads, which
//! process defers counters on PostgreSQL, and meter matching.
//!
//! Dependencies run one way: `items` (what a request asks) ← `engine`
//! (entitlement state) ← `handle` (the queues and deferred sums) ← `owner`
//! (who defers) ← `apply` (one group's transaction) ← `writer` (the loop).

mod apply;
pub mod engine;
mod handle;
pub mod items;
pub mod meters;
pub mod overrides;
pub mod owner;
pub mod report;
pub mod tenant_map;
mod writer;

pub use handle::{writer_of, Ingest, STALL_AFTER};
pub use items::{AlertSpec, ConsumeOp, Counted, EventData, Item, Op, Outcome, Target};
pub use writer::{start, Writer};
