//! A plain-HTTP client for the API with one key, and the seeding the
//! hardening tests share: a product, a pre-aggregated and a raw-event meter,
//! a priced plan, and subscriptions bought through the sandbox checkout.

use super::TestServer;
use serde_json::{json, Value};

pub struct Api<'a> {
    pub s: &'a TestServer,
    pub key: String,
}

impl<'a> Api<'a> {
    pub fn new(s: &'a TestServer) -> Api<'a> {
        Api { s, key: s.server_key.clone() }
    }

    pub fn with_key(s: &'a TestServer, key: &str) -> Api<'a> {
        Api { s, key: key.to_string() }
    }

    /// The status, headers and body (JSON, or the text as a string).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = super::http().request(method, self.s.url(path)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, body) = self.raw(method, path, body).await;
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// POST that must succeed.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert!((200..300).contains(&status), "POST {path} → {status}: {v}");
        v
    }

    /// The customer's entitlement row for a feature.
    pub async fn row(&self, customer: &str, feature: &str) -> Value {
        let (status, v) = self.get(&format!("/api/v1/entitlements/?customer_id={customer}&feature_id={feature}")).await;
        assert_eq!(status, 200, "{v}");
        v["entitlements"][0].clone()
    }

    /// Checkout for `customer` on `plan`, paid with the sandbox card; the subscription id.
    pub async fn subscribe(&self, plan: &str, customer: &str) -> String {
        let session = self
            .ok("/api/v1/checkout/", json!({"planIdentifier": plan, "chargePeriod": "MONTHLY", "customerId": customer, "successUrl": "https://x.example/"}))
            .await;
        let id = session["checkoutSessionId"].as_str().unwrap();
        let done =
            self.ok(&format!("/api/v1/checkout/sessions/{id}/complete/"), json!({"card": "4242424242424242"})).await;
        done["subscription"]["id"].as_str().unwrap().to_string()
    }

    /// Product `app`; meters `calls` (reported, hard limit 100 a month) and
    /// `tokens` (SUM of `tokens` of `llm` events, soft limit); plan `base`
    /// at 5 USD a month granting both.
    pub async fn seed_metered_plan(&self) {
        self.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
        let units = json!({"singular": "unit", "plural": "units"});
        self.ok(
            "/api/v1/catalog/features/",
            json!({"name": "Calls", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
        )
        .await;
        self.ok(
            "/api/v1/catalog/features/",
            json!({"name": "Tokens", "featureType": "METER", "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units},
                "meter": {"aggregation": {"function": "SUM", "field": "tokens"},
                          "filters": [[{"property": "event_name", "operator": "equals", "value": "llm"}]]}}),
        )
        .await;
        self.ok("/api/v1/catalog/plans/", json!({"name": "Base", "identifier": "base", "product": "app"})).await;
        self.ok(
            "/api/v1/catalog/plans/base/prices/bulk/",
            json!({"prices": [{"priceType": "PAID", "currency": "USD",
                "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 5}}]}]}]}),
        )
        .await;
        self.ok(
            "/api/v1/catalog/plans/base/features/",
            json!({"planEntitlements": [
                {"feature": "calls", "details": {"value": 100, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": true}},
                {"feature": "tokens", "details": {"value": 1000, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": false}}]}),
        )
        .await;
        self.ok("/api/v1/catalog/plans/base/publish/", json!({})).await;
    }

    /// The customer's rows for a feature.
    pub async fn rows(&self, customer: &str, feature: &str) -> Vec<Value> {
        let (status, v) = self
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/entitlements/?customer_id={customer}&feature_id={feature}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["entitlements"].as_array().unwrap().clone()
    }
    pub async fn usage(&self, customer: &str, feature: &str, value: i64, behaviour: &str) -> Value {
        self.ok(
            "/api/v1/report/usage/",
            json!({"customerId": customer, "featureId": feature, "value": value, "behaviour": behaviour}),
        )
        .await
    }
    pub async fn event(&self, customer: &str, key: &str, name: &str, at: &str, properties: Value) -> (u16, Value) {
        self.post("/api/v1/report/event/", json!({"customerId": customer, "eventName": name, "idempotencyKey": key, "timestamp": at, "properties": properties})).await
    }
    pub async fn sub(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/api/v1/subscriptions/{id}/")).await;
        assert_eq!(status, 200, "{v}");
        v
    }
    pub async fn advance_to(&self, to: &str) -> Value {
        self.ok("/api/v1/test-clock/advance/", json!({ "to": to })).await
    }
    /// Checkout for `customer` and pay with `card`; returns the subscription id.
    pub async fn buy(&self, plan: &str, period: &str, customer: &str, card: &str, extra: Value) -> String {
        let mut body = json!({"planIdentifier": plan, "chargePeriod": period, "customerId": customer,
            "successUrl": "https://app.example.com/welcome"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let session = self.ok("/api/v1/checkout/", body).await;
        let id = session["checkoutSessionId"].as_str().unwrap();
        let done = self
            .ok(
                &format!("/api/v1/checkout/sessions/{id}/complete/"),
                json!({"card": card, "email": format!("{customer}@example.com")}),
            )
            .await;
        done["subscription"]["id"].as_str().expect("a subscription").to_string()
    }
    pub async fn orders(&self, customer: &str) -> Vec<Value> {
        let (_, page) = self.get("/api/v1/orders/?page_size=100").await;
        let mut orders: Vec<Value> = page["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["customer"]["customerId"] == customer)
            .cloned()
            .collect();
        orders.reverse();
        orders
    }
    pub async fn event_types(&self) -> Vec<String> {
        let events = self.s.store.list_events(&self.s.tenant, 0, 10_000).await.unwrap();
        events.into_iter().map(|(_, e)| e.event_type).collect()
    }
}
