//! The OpenAPI document of this server, generated from the handlers and wire
//! types, served at `/api/v1/openapi.json` (see [`router`]) and committed as
//! `openapi.json`. It is assembled from the routes; no route imports it.

use crate::routes::{
    catalog, charges, checkout, customers, discounts, entitlements, health, invoices, licenses, media, money, offering,
    plans, portal, promotions, reporting, storefront, subscriptions, tax_rates, test_clock, webhooks,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "kelviq", description = "Self-hostable monetization API, wire-compatible with Kelviq's REST API v1."),
    paths(
        health::healthz, health::readyz, health::metrics,
        customers::list_customers, customers::create_customer, customers::retrieve_customer,
        customers::update_customer, customers::archive_customer,
        catalog::list_products, catalog::create_product, catalog::retrieve_product, catalog::update_product,
        catalog::archive_product, catalog::get_settings, catalog::update_settings,
        catalog::list_features, catalog::create_feature, catalog::retrieve_feature, catalog::update_feature,
        catalog::archive_feature,
        plans::list_plans, plans::create_plan, plans::retrieve_plan, plans::update_plan, plans::archive_plan,
        plans::publish_plan, plans::discard_plan, plans::list_prices, plans::replace_prices,
        plans::list_plan_features, plans::add_plan_features, plans::update_plan_feature, plans::remove_plan_feature,
        plans::update_plan_file, plans::delete_plan_file, plans::download_plan_file,
        catalog::update_image, catalog::delete_image, catalog::update_file, catalog::delete_file,
        media::presign, media::upload, media::download, media::public_image,
        checkout::create_checkout, checkout::list_sessions, checkout::retrieve_session, checkout::session_events,
        checkout::complete_session,
        subscriptions::list_subscriptions, subscriptions::retrieve_subscription, subscriptions::create_subscription,
        subscriptions::update_subscription, subscriptions::preview_update, subscriptions::cancel_subscription,
        charges::create_charge,
        money::list_orders, money::retrieve_order, money::order_events, money::list_transactions, money::list_refunds,
        money::create_refund, money::retrieve_refund, money::list_payment_methods, test_clock::test_clock,
        test_clock::advance_test_clock, entitlements::get_entitlements,
        reporting::report_usage, reporting::report_event, reporting::report_events_batch, entitlements::consume,
        entitlements::set_override, entitlements::revert_override, entitlements::reset_usage,
        webhooks::create_endpoint, webhooks::list_endpoints, webhooks::retrieve_endpoint, webhooks::update_endpoint,
        webhooks::delete_endpoint, webhooks::rotate_secret, webhooks::test_endpoint, webhooks::recover,
        webhooks::list_events, webhooks::retrieve_event, webhooks::event_attempts, webhooks::resend,
        webhooks::webhook_logs,
        tax_rates::create_tax_rate, tax_rates::list_tax_rates, tax_rates::retrieve_tax_rate,
        tax_rates::update_tax_rate, tax_rates::delete_tax_rate, tax_rates::retrieve_tax_settings,
        tax_rates::update_tax_settings, discounts::create_discount, discounts::list_discounts,
        discounts::retrieve_discount, discounts::update_discount, discounts::delete_discount,
        promotions::create_promotion, promotions::list_or_edge, promotions::retrieve_promotion,
        promotions::update_promotion, promotions::delete_promotion, promotions::list_country_groups,
        promotions::update_country_group, offering::product_offering,
        invoices::list_invoices, invoices::retrieve_invoice, invoices::void_invoice, invoices::pay_invoice,
        invoices::upcoming_invoice, invoices::invoice_document,
        licenses::activate, licenses::deactivate, licenses::validate, licenses::heartbeat, licenses::checkout,
        licenses::public_key, licenses::list_licenses, licenses::retrieve_license, licenses::update_license,
        licenses::regenerate_license, licenses::reset_license, licenses::revoke_instance,
        portal::create_session, money::default_payment_method, money::delete_payment_method, storefront::retrieve_storefront_settings, storefront::update_storefront_settings,
    ),
    components(schemas(customers::CustomerIn, customers::CustomerPatch, customers::CustomerOut, customers::BillingAddressWire,
        catalog::ProductIn, catalog::ProductPatch, catalog::ProductOut, catalog::ProductImageOut, catalog::ProductSettingsOut,
        catalog::FeatureIn, catalog::FeaturePatch, crate::wire::catalog::FeatureOut,
        plans::PlanIn, plans::PlanOut, plans::PublishIn, plans::PricesIn, plans::PlanFeaturesIn, plans::PlanFeatureIn,
        crate::media::MediaPatch, catalog::ProductFileOut, media::PresignIn,
        checkout::CheckoutIn, crate::http::input::FeatureQuantityIn, checkout::CompleteIn,
        subscriptions::CreateSubscriptionIn, subscriptions::UpdateSubscriptionIn, subscriptions::CancelIn, charges::ChargeIn,
        money::RefundIn, test_clock::AdvanceIn,
        crate::usage::report::UsageIn, crate::usage::report::EventIn, crate::usage::report::BatchIn, crate::usage::report::ConsumeIn, crate::usage::overrides::OverrideIn,
        webhooks::EndpointIn, webhooks::RecoverIn, webhooks::ResendIn, tax_rates::TaxRateIn, tax_rates::TaxSettingsIn,
        discounts::DiscountIn, discounts::AmountInput, promotions::PromotionIn, crate::promotions::WidgetFields,
        promotions::GroupPercentageIn, promotions::CountryOverrideIn, promotions::CountryGroupIn,
        crate::wire::promotions::PromotionOut, licenses::ActivateIn, licenses::InstanceIn, licenses::ValidateIn,
        licenses::CheckoutIn, licenses::LicenseIn, portal::PortalSessionIn, storefront::StorefrontSettingsIn)),
    modifiers(&BearerAuth),
    tags((name = "customers"), (name = "catalog"), (name = "plans"), (name = "media"), (name = "checkout"), (name = "entitlements"), (name = "reporting"), (name = "subscriptions"), (name = "money"), (name = "webhooks"), (name = "tax"), (name = "discounts"), (name = "promotions"), (name = "monetization"), (name = "invoices"), (name = "licenses"), (name = "portal"), (name = "operations"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A server key (sk_…) or, for entitlement reads, a client key (ck_…)"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a trailing newline, as committed.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut text = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`: the document, served.
pub fn router() -> axum::Router<crate::state::AppState> {
    axum::Router::new().route(
        "/openapi.json",
        axum::routing::get(|| async {
            axum::Json(serde_json::from_str::<serde_json::Value>(&document()).unwrap_or_default())
        }),
    )
}
