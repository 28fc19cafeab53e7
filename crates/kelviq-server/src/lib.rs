//! The kelviq server: the REST API under `/api/v1`, operations endpoints, and
//! the pieces the `kelviq` command is built from.

pub mod app;
pub mod catalog_file;
pub mod change_feed;
pub mod cli;
pub mod clock;
pub mod config;
pub mod discounts;
pub mod error;
pub mod geo;
pub mod http;
pub mod invoices;
pub mod licenses;
pub mod mail;
pub mod media;
pub mod offering;
pub mod openapi;
pub mod portal;
pub mod promotions;
pub mod providers;
pub mod routes;
pub mod runtime;
pub mod selling;
pub mod state;
pub mod storefront;
pub mod tax;
pub mod usage;
pub mod webhooks;
pub mod wire;

pub use app::{bootstrap_demo, launch, open_store, router, serve};
pub use config::Config;
pub use state::AppState;
