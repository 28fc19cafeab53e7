//! The server's integration tests, one test binary: each module drives the
//! real server (in-process on a random port, or the `kelviq` binary) over HTTP
//! with the Rust SDK and plain requests, on SQLite and PostgreSQL. The shared
//! harness and helpers are in `common`.

#[macro_use]
mod common;

mod api_contract;
mod catalog;
mod catalog_code;
mod cli;
mod customers;
mod discounts;
mod durability;
mod geo_mmdb;
mod hardening;
mod integration_guide;
mod invoices;
mod licenses;
mod local_prices;
mod media;
mod metering;
mod migrations;
mod offering;
mod pay_links;
mod plans;
mod portal;
mod portal_account;
mod portal_changes;
mod portal_signin;
mod promotions;
mod runtime;
mod sdk;
mod sdk_licenses;
mod sdk_metering;
mod sdk_offers;
mod sdk_portal;
mod sdk_selling;
mod selling;
mod shutdown;
mod stripe_client;
mod stripe_kill;
mod stripe_selling;
mod stripe_webhooks;
mod tax_rates;
mod usage_billing;
mod webhook_events;
mod webhooks;
mod wire_openapi;
