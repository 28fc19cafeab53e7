//! One module per resource, each with its own `router()`.

pub mod catalog;
pub mod charges;
pub mod checkout;
pub mod customers;
pub mod discounts;
pub mod entitlements;
pub mod health;
pub mod hosted;
pub mod invoices;
pub mod licenses;
pub mod media;
pub mod money;
pub mod offering;
pub mod plans;
pub mod portal;
pub mod promotions;
pub mod reporting;
pub mod storefront;
pub mod stripe;
pub mod subscriptions;
pub mod tax_rates;
pub mod test_clock;
pub mod webhooks;

use crate::state::AppState;
use axum::Router;

/// Everything under `/api/v1`.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(customers::router())
        .merge(catalog::router())
        .merge(plans::router())
        .merge(media::router())
        .merge(checkout::router())
        .merge(reporting::router())
        .merge(entitlements::api_router())
        .merge(subscriptions::router())
        .merge(charges::router())
        .merge(money::router())
        .merge(test_clock::router())
        .merge(webhooks::router())
        .merge(tax_rates::router())
        .merge(discounts::router())
        .merge(licenses::router())
        .merge(portal::api_router())
        .merge(storefront::router())
        .merge(promotions::router())
        .merge(offering::router())
        .merge(invoices::router())
}
