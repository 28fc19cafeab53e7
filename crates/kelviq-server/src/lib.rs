//! The kelviq server: the REST API under `/api/v1`, operations endpoints, and
//! the pieces the `kelviq` command is built from.

pub mod app;
pub mod auth;
pub mod catalog_io;
pub mod changes;
pub mod cli;
pub mod config;
pub mod entitlements;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod media;
pub mod metrics;
pub mod payments;
pub mod reqlog;
pub mod routes;
pub mod selling;
pub mod tenant_map;
pub mod urlcheck;
pub mod usage_owner;
pub mod wire;

pub use app::{bootstrap_demo, launch, open_store, router, serve, AppState};
pub use config::Config;
