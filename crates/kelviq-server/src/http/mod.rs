//! HTTP plumbing shared by every route: the API error and its JSON shapes,
//! request extractors (body, authentication, paging), the request log,
//! metrics, and the checks every URL passes before routing.

pub mod auth;
pub mod cors;
pub mod error;
pub mod extract;
pub mod input;
pub mod metrics;
pub mod paging;
pub mod reqlog;
pub mod urlcheck;
