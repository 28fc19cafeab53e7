//! The kelviq server: the REST API under `/api/v1`, operations endpoints, and
//! the pieces the `kelviq` command is built from.

pub mod app;
pub mod catalog_io;
pub mod changes;
pub mod cli;
pub mod config;
pub mod entitlements;
pub mod http;
pub mod ingest;
pub mod media;
pub mod payments;
pub mod routes;
pub mod selling;
pub mod tenant_map;
pub mod usage_owner;
pub mod wire;

pub use app::{bootstrap_demo, launch, open_store, router, serve, AppState};
pub use config::Config;
