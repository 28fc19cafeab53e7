//! The selling clients: checkout, subscriptions, charges, refunds,
//! transactions and payment methods.

use super::*;
use crate::http::{decode, Host, Http};
use crate::models::Page;
use crate::Error;
use chrono::{NaiveDate, Utc};
use reqwest::Method;
use serde_json::json;

pub struct Checkout<'a> {
    http: &'a Http,
}

impl<'a> Checkout<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `POST /checkout/`.
    pub async fn create_session(&self, params: CreateCheckoutSession) -> Result<CheckoutSessionCreated, Error> {
        if params.trial_period.is_some_and(|d| d < 1) {
            return Err(validation("trialPeriod", "Input should be greater than or equal to 1"));
        }
        if params.custom_amount.is_some_and(|a| !a.is_finite() || a <= 0.0) {
            return Err(validation("customAmount", "Input should be greater than 0"));
        }
        let body = serde_json::to_value(&params).expect("checkout serialises");
        let url = self.http.url(Host::Core, &["checkout"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Subscriptions<'a> {
    http: &'a Http,
}

impl<'a> Subscriptions<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `GET /subscriptions/`.
    pub async fn list(&self, params: ListSubscriptions) -> Result<Page<Subscription>, Error> {
        let mut q = Vec::new();
        for (k, v) in [
            ("customer_id", &params.customer_id),
            ("start_date_after", &params.start_date_after),
            ("start_date_before", &params.start_date_before),
            ("modified_on_after", &params.modified_on_after),
            ("modified_on_before", &params.modified_on_before),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if !params.status.is_empty() {
            q.push(("status", params.status.join(",")));
        }
        if let Some(p) = params.page {
            q.push(("page", p.to_string()));
        }
        if let Some(s) = params.page_size {
            q.push(("page_size", s.to_string()));
        }
        let url = self.http.url(Host::Core, &["subscriptions"], true);
        decode(self.http.request(Method::GET, url, &q, None).await?)
    }

    /// `GET /subscriptions/{id}/`.
    pub async fn retrieve(&self, id: &str) -> Result<Subscription, Error> {
        let url = self.http.url(Host::Core, &["subscriptions", id], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }

    /// `POST /subscriptions/create/`: for a customer with a saved payment method.
    pub async fn create(&self, params: CreateSubscription) -> Result<Subscription, Error> {
        let mut body = json!({
            "plan_identifier": params.plan_identifier,
            "charge_period": params.charge_period,
            "customer_id": params.customer_id,
        });
        if let Some(u) = params.success_url {
            body["success_url"] = json!(u);
        }
        if let Some(f) = params.features {
            body["features"] = json!(f);
        }
        if let Some(ip) = params.ip_address {
            body["ip_address"] = json!(ip);
        }
        let url = self.http.url(Host::Core, &["subscriptions", "create"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    /// `POST /subscriptions/{id}/update/`.
    pub async fn update(&self, id: &str, params: UpdateSubscription) -> Result<UpdateSubscriptionResponse, Error> {
        params.check(Utc::now())?;
        let url = self.http.url(Host::Core, &["subscriptions", id, "update"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&params.body())).await?)
    }

    /// `POST /subscriptions/{id}/update/preview/`: what an update would charge; changes nothing.
    pub async fn preview_update(&self, id: &str, params: UpdateSubscription) -> Result<UpdatePreview, Error> {
        params.check(Utc::now())?;
        let url = self.http.url(Host::Core, &["subscriptions", id, "update", "preview"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&params.body())).await?)
    }

    /// `POST /subscriptions/{id}/cancel/`. `date` (YYYY-MM-DD) is required for SPECIFIC_DATE.
    pub async fn cancel(
        &self,
        id: &str,
        cancellation_type: CancellationType,
        date: Option<&str>,
    ) -> Result<MessageResponse, Error> {
        if let Some(d) = date {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| validation("cancellationDate", "cancellationDate must be in YYYY-MM-DD format."))?;
        } else if cancellation_type == CancellationType::SpecificDate {
            return Err(validation(
                "cancellationDate",
                "cancellationDate is required when cancellationType is SPECIFIC_DATE.",
            ));
        }
        let mut body = json!({ "cancellation_type": cancellation_type });
        if let Some(d) = date {
            body["cancellation_date"] = json!(d);
        }
        let url = self.http.url(Host::Core, &["subscriptions", id, "cancel"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Charges<'a> {
    http: &'a Http,
}

impl<'a> Charges<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `POST /charges/`: charges the customer's saved method once (ONE_TIME).
    pub async fn create(&self, params: CreateCharge) -> Result<Subscription, Error> {
        if let Some(a) = params.custom_amount {
            if !a.is_finite() || a <= 0.0 {
                return Err(validation("customAmount", "Input should be greater than 0"));
            }
            if params.currency_code.is_none() {
                return Err(validation("currencyCode", "currencyCode is required when customAmount is set."));
            }
        }
        let mut body = json!({
            "plan_identifier": params.plan_identifier,
            "charge_period": "ONE_TIME",
            "customer_id": params.customer_id,
        });
        if let Some(f) = params.features {
            body["features"] = json!(f);
        }
        if let Some(c) = params.currency_code {
            body["currency_code"] = json!(c);
        }
        if let Some(a) = params.custom_amount {
            body["custom_amount"] = json!(a);
        }
        if let Some(t) = params.tax_behavior {
            body["tax_behavior"] = json!(t);
        }
        if let Some(ip) = params.ip_address {
            body["ip_address"] = json!(ip);
        }
        let url = self.http.url(Host::Core, &["charges"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }
}

pub struct Refunds<'a> {
    http: &'a Http,
}

impl<'a> Refunds<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    pub async fn list(&self, params: ListMoney) -> Result<Page<Refund>, Error> {
        let url = self.http.url(Host::Core, &["refunds"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }

    /// `POST /refunds/`.
    pub async fn create(&self, params: CreateRefund) -> Result<Refund, Error> {
        if params.order_id.is_empty() {
            return Err(validation("orderId", "String should have at least 1 character"));
        }
        if params.amount_units.is_some_and(|a| a < 1) {
            return Err(validation("amountUnits", "Input should be greater than or equal to 1"));
        }
        if params.amount.is_some_and(|a| !a.is_finite() || a <= 0.0) {
            return Err(validation("amount", "Input should be greater than 0"));
        }
        let mut body = json!({ "order_id": params.order_id });
        if let Some(u) = params.amount_units {
            body["amount_units"] = json!(u);
        }
        if let Some(a) = params.amount {
            body["amount"] = json!(a);
        }
        if let Some(r) = params.reason {
            body["reason"] = json!(r);
        }
        if let Some(n) = params.internal_note {
            body["internal_note"] = json!(n);
        }
        if params.as_credit {
            body["as_credit"] = json!(true);
        }
        let url = self.http.url(Host::Core, &["refunds"], true);
        decode(self.http.request(Method::POST, url, &[], Some(&body)).await?)
    }

    pub async fn retrieve(&self, id: &str) -> Result<Refund, Error> {
        let url = self.http.url(Host::Core, &["refunds", id], true);
        decode(self.http.request(Method::GET, url, &[], None).await?)
    }
}

pub struct Transactions<'a> {
    http: &'a Http,
}

impl<'a> Transactions<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    /// `GET /transaction/` (singular, as the API spells it).
    pub async fn list(&self, params: ListMoney) -> Result<Page<Transaction>, Error> {
        let url = self.http.url(Host::Core, &["transaction"], true);
        decode(self.http.request(Method::GET, url, &params.query(), None).await?)
    }
}

pub struct PaymentMethods<'a> {
    http: &'a Http,
}

impl<'a> PaymentMethods<'a> {
    pub(crate) fn new(http: &'a Http) -> Self {
        Self { http }
    }

    pub async fn list(
        &self,
        customer_id: Option<&str>,
        customer_email: Option<&str>,
        page_size: Option<u32>,
        page: Option<u32>,
    ) -> Result<Page<PaymentMethod>, Error> {
        let mut q = Vec::new();
        if let Some(c) = customer_id {
            q.push(("customer_id", c.to_string()));
        }
        if let Some(e) = customer_email {
            q.push(("customer_email", e.to_string()));
        }
        if let Some(s) = page_size {
            q.push(("page_size", s.to_string()));
        }
        if let Some(p) = page {
            q.push(("page", p.to_string()));
        }
        let url = self.http.url(Host::Core, &["payment-methods"], true);
        decode(self.http.request(Method::GET, url, &q, None).await?)
    }

    /// Makes a method its customer's default: the one renewals charge.
    pub async fn set_default(&self, id: i64) -> Result<(), Error> {
        let url = self.http.url(Host::Core, &["payment-methods", &id.to_string(), "default"], true);
        self.http.request(Method::POST, url, &[], None).await?;
        Ok(())
    }

    /// Removes a method that is not its customer's default (the default
    /// answers 400: make another one the default first).
    pub async fn remove(&self, id: i64) -> Result<(), Error> {
        let url = self.http.url(Host::Core, &["payment-methods", &id.to_string()], true);
        self.http.request(Method::DELETE, url, &[], None).await?;
        Ok(())
    }
}
