//! The blocking client: the same modules as the async one, each call run to
//! completion on a private single-threaded runtime.

use crate::catalog::{CreateFeature, CreateProduct, ListCatalog, UpdateFeature, UpdateProduct, UpdateProductSettings};
use crate::customers::{CreateCustomer, ListCustomers, UpdateCustomer};
use crate::discounts::{Discount, DiscountParams};
use crate::invoices::{Invoice, ListInvoices};
use crate::licenses::{Activated, Deactivated, Heartbeat, License, LicenseChanges, LicenseFile, PublicKey, Validation};
use crate::models::{ArchiveResponse, Customer, Feature, Page, Plan, PlanFeature, PlanPrice, Product, ProductSettings};
use crate::offering::{OfferingParams, ProductOffering};
use crate::plans::{CreatePlan, UpdatePlan};
use crate::promotions::{CountryGroup, Promotion, PromotionParams, PromotionResponse};
use crate::selling::{
    CancellationType, CheckoutSessionCreated, CreateCharge, CreateCheckoutSession, CreateRefund, CreateSubscription,
    ListMoney, ListSubscriptions, MessageResponse, PaymentMethod, Refund, Subscription, Transaction, UpdatePreview,
    UpdateSubscription, UpdateSubscriptionResponse,
};
use crate::tax_rates::{TaxRate, TaxRateParams, TaxSettings, TaxSettingsParams};
use crate::webhook_api::{EndpointParams, ListEvents, WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookLog};
use crate::Error;
use serde_json::Value;
use std::sync::Arc;

/// A blocking Kelviq client. Do not use it from inside an async runtime.
#[derive(Debug, Clone)]
pub struct Kelviq {
    inner: crate::Kelviq,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Kelviq {
    pub(crate) fn new(inner: crate::Kelviq) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(crate::ErrorKind::Api, None, format!("cannot start runtime: {e}"), None))?;
        Ok(Self { inner, rt: Arc::new(rt) })
    }

    pub fn customers(&self) -> Customers<'_> {
        Customers { client: self }
    }

    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { client: self }
    }

    pub fn invoices(&self) -> Invoices<'_> {
        Invoices { client: self }
    }

    pub fn tax_rates(&self) -> TaxRates<'_> {
        TaxRates { client: self }
    }
    pub fn discounts(&self) -> Discounts<'_> {
        Discounts { client: self }
    }
    pub fn promotions(&self) -> Promotions<'_> {
        Promotions { client: self }
    }
    pub fn licenses(&self) -> Licenses<'_> {
        Licenses { client: self }
    }
    pub fn portal(&self) -> Portal<'_> {
        Portal { client: self }
    }
    pub fn offering(&self) -> Offering<'_> {
        Offering { client: self }
    }

    pub fn catalog(&self) -> Catalog<'_> {
        Catalog { client: self }
    }

    pub fn checkout(&self) -> Checkout<'_> {
        Checkout { client: self }
    }

    pub fn entitlements(&self) -> Entitlements<'_> {
        Entitlements { client: self }
    }

    pub fn reporting(&self) -> Reporting<'_> {
        Reporting { client: self }
    }

    pub fn subscriptions(&self) -> Subscriptions<'_> {
        Subscriptions { client: self }
    }

    pub fn charges(&self) -> Charges<'_> {
        Charges { client: self }
    }

    pub fn refunds(&self) -> Refunds<'_> {
        Refunds { client: self }
    }

    pub fn transactions(&self) -> Transactions<'_> {
        Transactions { client: self }
    }

    pub fn payment_methods(&self) -> PaymentMethods<'_> {
        PaymentMethods { client: self }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

pub struct Customers<'a> {
    client: &'a Kelviq,
}

impl Customers<'_> {
    pub fn list(&self, params: ListCustomers) -> Result<Page<Customer>, Error> {
        self.client.block_on(self.client.inner.customers().list(params))
    }
    pub fn create(&self, customer: CreateCustomer) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().create(customer))
    }
    pub fn retrieve(&self, customer_id: &str) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().retrieve(customer_id))
    }
    pub fn update(&self, customer_id: &str, changes: UpdateCustomer) -> Result<Customer, Error> {
        self.client.block_on(self.client.inner.customers().update(customer_id, changes))
    }
    pub fn archive(&self, customer_id: &str) -> Result<ArchiveResponse, Error> {
        self.client.block_on(self.client.inner.customers().archive(customer_id))
    }
}

pub struct Catalog<'a> {
    client: &'a Kelviq,
}

impl<'a> Catalog<'a> {
    pub fn products(&self) -> Products<'a> {
        Products { client: self.client }
    }
    pub fn features(&self) -> Features<'a> {
        Features { client: self.client }
    }
    pub fn plans(&self) -> Plans<'a> {
        Plans { client: self.client }
    }
}

pub struct Products<'a> {
    client: &'a Kelviq,
}

impl Products<'_> {
    pub fn list(&self, params: ListCatalog) -> Result<Page<Product>, Error> {
        self.client.block_on(self.client.inner.catalog().products().list(params))
    }
    pub fn create(&self, product: CreateProduct) -> Result<Product, Error> {
        self.client.block_on(self.client.inner.catalog().products().create(product))
    }
    pub fn retrieve(&self, key: &str) -> Result<Product, Error> {
        self.client.block_on(self.client.inner.catalog().products().retrieve(key))
    }
    pub fn update(&self, key: &str, changes: UpdateProduct) -> Result<Product, Error> {
        self.client.block_on(self.client.inner.catalog().products().update(key, changes))
    }
    pub fn archive(&self, key: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.catalog().products().archive(key))
    }
    pub fn settings(&self, key: &str) -> Result<ProductSettings, Error> {
        self.client.block_on(self.client.inner.catalog().products().settings(key))
    }
    pub fn update_settings(&self, key: &str, changes: UpdateProductSettings) -> Result<ProductSettings, Error> {
        self.client.block_on(self.client.inner.catalog().products().update_settings(key, changes))
    }
}

pub struct Features<'a> {
    client: &'a Kelviq,
}

impl Features<'_> {
    pub fn list(&self, params: ListCatalog) -> Result<Page<Feature>, Error> {
        self.client.block_on(self.client.inner.catalog().features().list(params))
    }
    pub fn create(&self, feature: CreateFeature) -> Result<Feature, Error> {
        self.client.block_on(self.client.inner.catalog().features().create(feature))
    }
    pub fn retrieve(&self, key: &str) -> Result<Feature, Error> {
        self.client.block_on(self.client.inner.catalog().features().retrieve(key))
    }
    pub fn update(&self, key: &str, changes: UpdateFeature) -> Result<Feature, Error> {
        self.client.block_on(self.client.inner.catalog().features().update(key, changes))
    }
    pub fn archive(&self, key: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.catalog().features().archive(key))
    }
}

pub struct Plans<'a> {
    client: &'a Kelviq,
}

impl Plans<'_> {
    pub fn list(&self, params: ListCatalog) -> Result<Page<Plan>, Error> {
        self.client.block_on(self.client.inner.catalog().plans().list(params))
    }
    pub fn create(&self, plan: CreatePlan) -> Result<Plan, Error> {
        self.client.block_on(self.client.inner.catalog().plans().create(plan))
    }
    pub fn retrieve(&self, identifier: &str, version: Option<i64>) -> Result<Plan, Error> {
        self.client.block_on(self.client.inner.catalog().plans().retrieve(identifier, version))
    }
    pub fn update(&self, identifier: &str, changes: UpdatePlan) -> Result<Plan, Error> {
        self.client.block_on(self.client.inner.catalog().plans().update(identifier, changes))
    }
    pub fn archive(&self, identifier: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.catalog().plans().archive(identifier))
    }
    pub fn publish(&self, identifier: &str, update_features: bool, update_pricing: bool) -> Result<i64, Error> {
        self.client.block_on(self.client.inner.catalog().plans().publish(identifier, update_features, update_pricing))
    }
    pub fn discard(&self, identifier: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.catalog().plans().discard(identifier))
    }
    pub fn prices(&self, identifier: &str, version: Option<i64>) -> Result<Page<PlanPrice>, Error> {
        self.client.block_on(self.client.inner.catalog().plans().prices(identifier, version))
    }
    pub fn replace_prices(&self, identifier: &str, prices: Vec<Value>) -> Result<Vec<PlanPrice>, Error> {
        self.client.block_on(self.client.inner.catalog().plans().replace_prices(identifier, prices))
    }
    pub fn features(&self, identifier: &str, version: Option<i64>) -> Result<Page<PlanFeature>, Error> {
        self.client.block_on(self.client.inner.catalog().plans().features(identifier, version))
    }
    pub fn add_features(&self, identifier: &str, features: Vec<(String, Value)>) -> Result<Plan, Error> {
        self.client.block_on(self.client.inner.catalog().plans().add_features(identifier, features))
    }
    pub fn update_feature(&self, identifier: &str, feature: &str, details: Value) -> Result<PlanFeature, Error> {
        self.client.block_on(self.client.inner.catalog().plans().update_feature(identifier, feature, details))
    }
    pub fn remove_feature(&self, identifier: &str, feature: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.catalog().plans().remove_feature(identifier, feature))
    }
}

pub struct Checkout<'a> {
    client: &'a Kelviq,
}

impl Checkout<'_> {
    pub fn create_session(&self, params: CreateCheckoutSession) -> Result<CheckoutSessionCreated, Error> {
        self.client.block_on(self.client.inner.checkout().create_session(params))
    }
}

pub struct Subscriptions<'a> {
    client: &'a Kelviq,
}

impl Subscriptions<'_> {
    pub fn list(&self, params: ListSubscriptions) -> Result<Page<Subscription>, Error> {
        self.client.block_on(self.client.inner.subscriptions().list(params))
    }
    pub fn retrieve(&self, id: &str) -> Result<Subscription, Error> {
        self.client.block_on(self.client.inner.subscriptions().retrieve(id))
    }
    pub fn create(&self, params: CreateSubscription) -> Result<Subscription, Error> {
        self.client.block_on(self.client.inner.subscriptions().create(params))
    }
    pub fn update(&self, id: &str, params: UpdateSubscription) -> Result<UpdateSubscriptionResponse, Error> {
        self.client.block_on(self.client.inner.subscriptions().update(id, params))
    }
    pub fn preview_update(&self, id: &str, params: UpdateSubscription) -> Result<UpdatePreview, Error> {
        self.client.block_on(self.client.inner.subscriptions().preview_update(id, params))
    }
    pub fn cancel(&self, id: &str, kind: CancellationType, date: Option<&str>) -> Result<MessageResponse, Error> {
        self.client.block_on(self.client.inner.subscriptions().cancel(id, kind, date))
    }
}

pub struct Charges<'a> {
    client: &'a Kelviq,
}

impl Charges<'_> {
    pub fn create(&self, params: CreateCharge) -> Result<Subscription, Error> {
        self.client.block_on(self.client.inner.charges().create(params))
    }
}

pub struct Refunds<'a> {
    client: &'a Kelviq,
}

impl Refunds<'_> {
    pub fn list(&self, params: ListMoney) -> Result<Page<Refund>, Error> {
        self.client.block_on(self.client.inner.refunds().list(params))
    }
    pub fn create(&self, params: CreateRefund) -> Result<Refund, Error> {
        self.client.block_on(self.client.inner.refunds().create(params))
    }
    pub fn retrieve(&self, id: &str) -> Result<Refund, Error> {
        self.client.block_on(self.client.inner.refunds().retrieve(id))
    }
}

pub struct Transactions<'a> {
    client: &'a Kelviq,
}

impl Transactions<'_> {
    pub fn list(&self, params: ListMoney) -> Result<Page<Transaction>, Error> {
        self.client.block_on(self.client.inner.transactions().list(params))
    }
}

pub struct PaymentMethods<'a> {
    client: &'a Kelviq,
}

impl PaymentMethods<'_> {
    pub fn list(
        &self,
        customer_id: Option<&str>,
        customer_email: Option<&str>,
        page_size: Option<u32>,
        page: Option<u32>,
    ) -> Result<Page<PaymentMethod>, Error> {
        self.client.block_on(self.client.inner.payment_methods().list(customer_id, customer_email, page_size, page))
    }

    pub fn set_default(&self, id: i64) -> Result<(), Error> {
        self.client.block_on(self.client.inner.payment_methods().set_default(id))
    }

    pub fn remove(&self, id: i64) -> Result<(), Error> {
        self.client.block_on(self.client.inner.payment_methods().remove(id))
    }
}

pub struct Entitlements<'a> {
    client: &'a Kelviq,
}

impl Entitlements<'_> {
    pub fn has_access(&self, customer_id: &str, feature_id: &str) -> Result<bool, Error> {
        self.client.block_on(self.client.inner.entitlements().has_access(customer_id, feature_id))
    }
    pub fn get_entitlement(
        &self,
        customer_id: &str,
        feature_id: &str,
    ) -> Result<Option<crate::entitlements::Entitlement>, Error> {
        self.client.block_on(self.client.inner.entitlements().get_entitlement(customer_id, feature_id))
    }
    pub fn get_entitlements(&self, customer_id: &str) -> Result<Vec<crate::entitlements::Entitlement>, Error> {
        self.client.block_on(self.client.inner.entitlements().get_entitlements(customer_id))
    }
    pub fn get_raw_entitlements(&self, customer_id: &str) -> Result<crate::entitlements::RawEntitlements, Error> {
        self.client.block_on(self.client.inner.entitlements().get_raw_entitlements(customer_id))
    }
    pub fn get_raw_entitlement(
        &self,
        customer_id: &str,
        feature_id: &str,
    ) -> Result<crate::entitlements::RawEntitlements, Error> {
        self.client.block_on(self.client.inner.entitlements().get_raw_entitlement(customer_id, feature_id))
    }
    pub fn consume(
        &self,
        customer_id: &str,
        feature_id: &str,
        value: i64,
        key: &str,
    ) -> Result<crate::entitlements::ConsumeResponse, Error> {
        self.client.block_on(self.client.inner.entitlements().consume(customer_id, feature_id, value, key))
    }
}

pub struct Reporting<'a> {
    client: &'a Kelviq,
}

impl Reporting<'_> {
    pub fn report_usage(&self, report: crate::reporting::ReportUsage) -> Result<crate::reporting::UsageReport, Error> {
        self.client.block_on(self.client.inner.reporting().report_usage(report))
    }
    pub fn report_event(&self, event: crate::reporting::ReportEvent) -> Result<crate::reporting::EventReport, Error> {
        self.client.block_on(self.client.inner.reporting().report_event(event))
    }
    pub fn report_events_batch(
        &self,
        events: Vec<crate::reporting::ReportEvent>,
    ) -> Result<crate::reporting::BatchResponse, Error> {
        self.client.block_on(self.client.inner.reporting().report_events_batch(events))
    }
    pub fn flush(&self) -> usize {
        self.client.block_on(self.client.inner.reporting().flush())
    }
}

/// Webhook management, blocking (see [`crate::webhook_api::Webhooks`]).
pub struct Webhooks<'a> {
    client: &'a Kelviq,
}

impl Webhooks<'_> {
    pub fn create_endpoint(&self, params: EndpointParams) -> Result<WebhookEndpoint, Error> {
        self.client.block_on(self.client.inner.webhooks().create_endpoint(params))
    }
    pub fn list_endpoints(&self, page: Option<u32>) -> Result<Page<WebhookEndpoint>, Error> {
        self.client.block_on(self.client.inner.webhooks().list_endpoints(page))
    }
    pub fn retrieve_endpoint(&self, id: &str) -> Result<WebhookEndpoint, Error> {
        self.client.block_on(self.client.inner.webhooks().retrieve_endpoint(id))
    }
    pub fn update_endpoint(&self, id: &str, changes: EndpointParams) -> Result<WebhookEndpoint, Error> {
        self.client.block_on(self.client.inner.webhooks().update_endpoint(id, changes))
    }
    pub fn delete_endpoint(&self, id: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.webhooks().delete_endpoint(id))
    }
    pub fn rotate_secret(&self, id: &str) -> Result<String, Error> {
        self.client.block_on(self.client.inner.webhooks().rotate_secret(id))
    }
    pub fn test_endpoint(&self, id: &str) -> Result<String, Error> {
        self.client.block_on(self.client.inner.webhooks().test_endpoint(id))
    }
    pub fn recover(&self, id: &str, since: &str) -> Result<u64, Error> {
        self.client.block_on(self.client.inner.webhooks().recover(id, since))
    }
    pub fn list_events(&self, params: ListEvents) -> Result<Page<WebhookEvent>, Error> {
        self.client.block_on(self.client.inner.webhooks().list_events(params))
    }
    pub fn retrieve_event(&self, id: &str) -> Result<WebhookEvent, Error> {
        self.client.block_on(self.client.inner.webhooks().retrieve_event(id))
    }
    pub fn attempts(&self, event_id: &str) -> Result<Vec<WebhookAttempt>, Error> {
        self.client.block_on(self.client.inner.webhooks().attempts(event_id))
    }
    pub fn resend(&self, event_id: &str, endpoint_id: Option<&str>) -> Result<u64, Error> {
        self.client.block_on(self.client.inner.webhooks().resend(event_id, endpoint_id))
    }
    pub fn logs(
        &self,
        start_date: Option<&str>,
        end_date: Option<&str>,
        page: Option<u32>,
    ) -> Result<Page<WebhookLog>, Error> {
        self.client.block_on(self.client.inner.webhooks().logs(start_date, end_date, page))
    }
}

/// Tax rates, blocking (see [`crate::tax_rates::TaxRates`]).
pub struct TaxRates<'a> {
    client: &'a Kelviq,
}

impl TaxRates<'_> {
    pub fn create(&self, params: TaxRateParams) -> Result<TaxRate, Error> {
        self.client.block_on(self.client.inner.tax_rates().create(params))
    }
    pub fn list(&self, country: Option<&str>, page: Option<u32>) -> Result<Page<TaxRate>, Error> {
        self.client.block_on(self.client.inner.tax_rates().list(country, page))
    }
    pub fn retrieve(&self, id: &str) -> Result<TaxRate, Error> {
        self.client.block_on(self.client.inner.tax_rates().retrieve(id))
    }
    pub fn update(&self, id: &str, changes: TaxRateParams) -> Result<TaxRate, Error> {
        self.client.block_on(self.client.inner.tax_rates().update(id, changes))
    }
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.tax_rates().delete(id))
    }
    pub fn settings(&self) -> Result<TaxSettings, Error> {
        self.client.block_on(self.client.inner.tax_rates().settings())
    }
    pub fn update_settings(&self, changes: TaxSettingsParams) -> Result<TaxSettings, Error> {
        self.client.block_on(self.client.inner.tax_rates().update_settings(changes))
    }
}

/// Invoices, blocking (see [`crate::invoices::Invoices`]).
pub struct Invoices<'a> {
    client: &'a Kelviq,
}

impl Invoices<'_> {
    pub fn list(&self, q: ListInvoices) -> Result<Page<Invoice>, Error> {
        self.client.block_on(self.client.inner.invoices().list(q))
    }
    pub fn retrieve(&self, id: &str) -> Result<Invoice, Error> {
        self.client.block_on(self.client.inner.invoices().retrieve(id))
    }
    pub fn upcoming(&self, subscription_id: &str) -> Result<Invoice, Error> {
        self.client.block_on(self.client.inner.invoices().upcoming(subscription_id))
    }
    pub fn document(&self, id: &str, format: &str) -> Result<Vec<u8>, Error> {
        self.client.block_on(self.client.inner.invoices().document(id, format))
    }
    pub fn void(&self, id: &str) -> Result<Invoice, Error> {
        self.client.block_on(self.client.inner.invoices().void(id))
    }
    pub fn pay(&self, id: &str) -> Result<Invoice, Error> {
        self.client.block_on(self.client.inner.invoices().pay(id))
    }
}

/// Discount codes, blocking (see [`crate::discounts::Discounts`]).
pub struct Discounts<'a> {
    client: &'a Kelviq,
}

impl Discounts<'_> {
    pub fn create(&self, params: DiscountParams) -> Result<Discount, Error> {
        self.client.block_on(self.client.inner.discounts().create(params))
    }
    pub fn list(&self, page: Option<u32>) -> Result<Page<Discount>, Error> {
        self.client.block_on(self.client.inner.discounts().list(page))
    }
    pub fn retrieve(&self, id: &str) -> Result<Discount, Error> {
        self.client.block_on(self.client.inner.discounts().retrieve(id))
    }
    pub fn update(&self, id: &str, changes: DiscountParams) -> Result<Discount, Error> {
        self.client.block_on(self.client.inner.discounts().update(id, changes))
    }
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.discounts().delete(id))
    }
}

/// Promotions, blocking (see [`crate::promotions::Promotions`]).
pub struct Promotions<'a> {
    client: &'a Kelviq,
}

impl Promotions<'_> {
    pub fn get(&self, promotion_id: &str) -> Result<PromotionResponse, Error> {
        self.client.block_on(self.client.inner.promotions().get(promotion_id))
    }
    pub fn create(&self, params: PromotionParams) -> Result<Promotion, Error> {
        self.client.block_on(self.client.inner.promotions().create(params))
    }
    pub fn list(&self, page: Option<u32>) -> Result<Page<Promotion>, Error> {
        self.client.block_on(self.client.inner.promotions().list(page))
    }
    pub fn retrieve(&self, id: &str) -> Result<Promotion, Error> {
        self.client.block_on(self.client.inner.promotions().retrieve(id))
    }
    pub fn update(&self, id: &str, changes: PromotionParams) -> Result<Promotion, Error> {
        self.client.block_on(self.client.inner.promotions().update(id, changes))
    }
    pub fn delete(&self, id: &str) -> Result<(), Error> {
        self.client.block_on(self.client.inner.promotions().delete(id))
    }
    pub fn country_groups(&self) -> Result<Page<CountryGroup>, Error> {
        self.client.block_on(self.client.inner.promotions().country_groups())
    }
    pub fn update_country_group(&self, group: &str, countries: Vec<String>) -> Result<CountryGroup, Error> {
        self.client.block_on(self.client.inner.promotions().update_country_group(group, countries))
    }
}

/// Product offerings, blocking (see [`crate::offering::Offering`]).
pub struct Offering<'a> {
    client: &'a Kelviq,
}

impl Offering<'_> {
    pub fn get(&self, product_id: &str, params: OfferingParams) -> Result<ProductOffering, Error> {
        self.client.block_on(self.client.inner.offering().get(product_id, params))
    }
}

/// Licenses, blocking (see [`crate::licenses::Licenses`]).
pub struct Licenses<'a> {
    client: &'a Kelviq,
}

impl Licenses<'_> {
    pub fn activate(
        &self,
        license_key: &str,
        customer_id: Option<&str>,
        instance_name: Option<&str>,
        metadata: Option<Value>,
    ) -> Result<Activated, Error> {
        self.client.block_on(self.client.inner.licenses().activate(license_key, customer_id, instance_name, metadata))
    }
    pub fn deactivate(&self, license_key: &str, instance_id: &str) -> Result<Deactivated, Error> {
        self.client.block_on(self.client.inner.licenses().deactivate(license_key, instance_id))
    }
    pub fn validate(&self, license_key: &str, instance_id: Option<&str>) -> Result<Validation, Error> {
        self.client.block_on(self.client.inner.licenses().validate(license_key, instance_id))
    }
    pub fn heartbeat(&self, license_key: &str, instance_id: &str) -> Result<Heartbeat, Error> {
        self.client.block_on(self.client.inner.licenses().heartbeat(license_key, instance_id))
    }
    pub fn checkout(
        &self,
        license_key: &str,
        instance_id: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<LicenseFile, Error> {
        self.client.block_on(self.client.inner.licenses().checkout(license_key, instance_id, ttl_seconds))
    }
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        self.client.block_on(self.client.inner.licenses().public_key())
    }
    pub fn list(&self, customer_id: Option<&str>, page: Option<u32>) -> Result<Page<License>, Error> {
        self.client.block_on(self.client.inner.licenses().list(customer_id, page))
    }
    pub fn retrieve(&self, id: &str) -> Result<License, Error> {
        self.client.block_on(self.client.inner.licenses().retrieve(id))
    }
    pub fn update(&self, id: &str, changes: LicenseChanges) -> Result<License, Error> {
        self.client.block_on(self.client.inner.licenses().update(id, changes))
    }
    pub fn regenerate(&self, id: &str) -> Result<License, Error> {
        self.client.block_on(self.client.inner.licenses().regenerate(id))
    }
    pub fn reset(&self, id: &str) -> Result<License, Error> {
        self.client.block_on(self.client.inner.licenses().reset(id))
    }
    pub fn revoke_instance(&self, id: &str, instance_id: &str) -> Result<License, Error> {
        self.client.block_on(self.client.inner.licenses().revoke_instance(id, instance_id))
    }
}

/// Portal sessions, blocking (see [`crate::portal::Portal`]).
pub struct Portal<'a> {
    client: &'a Kelviq,
}

impl Portal<'_> {
    pub fn settings(&self) -> Result<crate::portal::StorefrontSettings, Error> {
        self.client.block_on(self.client.inner.portal().settings())
    }

    pub fn update_settings(
        &self,
        changes: crate::portal::StorefrontSettingsParams,
    ) -> Result<crate::portal::StorefrontSettings, Error> {
        self.client.block_on(self.client.inner.portal().update_settings(changes))
    }

    pub fn create_session(&self, customer_id: &str) -> Result<crate::portal::PortalSession, Error> {
        self.client.block_on(self.client.inner.portal().create_session(customer_id))
    }
}
