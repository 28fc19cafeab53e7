//! A small typed client of Stripe's API, written for the calls the provider
//! makes (rather than a generated crate of the whole API, whose compile
//! time on two cores is minutes). Requests are form-encoded
//! (`kelviq_core::stripe::form_encode`), authenticated with the secret key,
//! and every POST carries an `Idempotency-Key` the caller derives from its
//! own attempt, so a retry after a lost answer never charges twice.

use super::objects::*;
use kelviq_core::stripe::form_encode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;

/// Stripe's public API.
pub const STRIPE_API: &str = "https://api.stripe.com";
/// The API version the objects are read in.
pub const API_VERSION: &str = "2024-06-20";

/// Why a Stripe call did not give an object.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error object (a card error is a 402).
    #[error("stripe {status}: {}", .error.message.clone().unwrap_or_default())]
    Api { status: u16, error: ApiError },
    /// No answer (connection, timeout) or an unreadable one: the call may or
    /// may not have happened; retry it with the same idempotency key.
    #[error("stripe unreachable: {0}")]
    Transport(String),
}

impl StripeError {
    /// A card error's code (`card_declined`, `authentication_required`, …).
    pub fn card_code(&self) -> Option<&str> {
        match self {
            StripeError::Api { error, .. } if error.kind == "card_error" => error.code.as_deref(),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("base", &self.base).field("key", &"***").finish()
    }
}

impl StripeClient {
    pub fn new(http: reqwest::Client, base: &str, key: &str) -> StripeClient {
        StripeClient { http, base: base.trim_end_matches('/').to_string(), key: key.to_string() }
    }

    /// The HTTP client the provider uses: a timeout, no redirects.
    pub fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kelviq/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in")
    }

    async fn answer<T: DeserializeOwned>(res: Result<reqwest::Response, reqwest::Error>) -> Result<T, StripeError> {
        let res = res.map_err(|e| StripeError::Transport(e.to_string()))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| StripeError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|e| StripeError::Transport(format!("unreadable answer: {e}")));
        }
        #[derive(serde::Deserialize)]
        struct Wrapped {
            error: ApiError,
        }
        match serde_json::from_slice::<Wrapped>(&body) {
            Ok(w) => Err(StripeError::Api { status, error: w.error }),
            Err(_) if status >= 500 => Err(StripeError::Transport(format!("status {status}"))),
            Err(_) => {
                Err(StripeError::Api { status, error: ApiError { kind: "api_error".into(), ..Default::default() } })
            }
        }
    }

    /// POST `path` with `params`, under `idempotency_key`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Value,
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", API_VERSION)
            .header("Idempotency-Key", idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_encode(&params));
        Self::answer(req.send().await).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, StripeError> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", API_VERSION)
            .query(query);
        Self::answer(req.send().await).await
    }

    pub async fn create_customer(
        &self,
        email: Option<&str>,
        name: Option<&str>,
        our_id: &str,
        key: &str,
    ) -> Result<Customer, StripeError> {
        let params = json!({"email": email, "name": name, "metadata": {"kelviq_customer_id": our_id}});
        self.post("/v1/customers", strip_nulls(params), key).await
    }

    /// Charges a saved method without the customer present.
    pub async fn charge_off_session(
        &self,
        customer: &str,
        payment_method: &str,
        amount_minor: i64,
        currency: &str,
        metadata: Value,
        key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let params = json!({
            "amount": amount_minor, "currency": currency.to_ascii_lowercase(), "customer": customer,
            "payment_method": payment_method, "off_session": true, "confirm": true, "metadata": metadata,
        });
        self.post("/v1/payment_intents", params, key).await
    }

    pub async fn payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        self.get(&format!("/v1/payment_intents/{id}"), &[]).await
    }

    /// Refunds `amount_minor` of a payment (all of it when None).
    pub async fn refund(
        &self,
        payment_intent: &str,
        amount_minor: Option<i64>,
        key: &str,
    ) -> Result<Refund, StripeError> {
        self.post("/v1/refunds", strip_nulls(json!({"payment_intent": payment_intent, "amount": amount_minor})), key)
            .await
    }

    pub async fn payment_methods(&self, customer: &str) -> Result<List<PaymentMethod>, StripeError> {
        self.get("/v1/payment_methods", &[("customer", customer), ("type", "card"), ("limit", "100")]).await
    }

    pub async fn attach(&self, payment_method: &str, customer: &str, key: &str) -> Result<PaymentMethod, StripeError> {
        self.post(&format!("/v1/payment_methods/{payment_method}/attach"), json!({"customer": customer}), key).await
    }

    pub async fn detach(&self, payment_method: &str, key: &str) -> Result<PaymentMethod, StripeError> {
        self.post(&format!("/v1/payment_methods/{payment_method}/detach"), json!({}), key).await
    }

    /// A Checkout Session for `customer`: `Some(amount)` charges it now and
    /// saves the card for later charges off session (`payment` mode);
    /// `None` only saves the card (`setup` mode).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_checkout_session(
        &self,
        customer: &str,
        charge: Option<(i64, &str, &str)>,
        success_url: &str,
        cancel_url: Option<&str>,
        metadata: Value,
        key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let mut params = json!({"customer": customer, "success_url": success_url, "cancel_url": cancel_url,
            "metadata": metadata, "payment_method_types": ["card"]});
        match charge {
            Some((amount, currency, name)) => {
                params["mode"] = json!("payment");
                params["line_items"] = json!([{"quantity": 1, "price_data": {"currency": currency.to_ascii_lowercase(),
                    "unit_amount": amount, "product_data": {"name": name}}}]);
                params["payment_intent_data"] = json!({"setup_future_usage": "off_session"});
            }
            None => {
                params["mode"] = json!("setup");
                params["currency"] = json!("usd");
            }
        }
        self.post("/v1/checkout/sessions", strip_nulls(params), key).await
    }

    pub async fn payment_method(&self, id: &str) -> Result<PaymentMethod, StripeError> {
        self.get(&format!("/v1/payment_methods/{id}"), &[]).await
    }

    pub async fn dispute(&self, id: &str) -> Result<Dispute, StripeError> {
        self.get(&format!("/v1/disputes/{id}"), &[]).await
    }

    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        self.get(&format!("/v1/checkout/sessions/{id}"), &[]).await
    }

    pub async fn setup_intent(&self, id: &str) -> Result<SetupIntent, StripeError> {
        self.get(&format!("/v1/setup_intents/{id}"), &[]).await
    }

    /// An event as Stripe has it now (to read one again, or check one).
    pub async fn event(&self, id: &str) -> Result<Event, StripeError> {
        self.get(&format!("/v1/events/{id}"), &[]).await
    }

    /// Makes a method the customer's default for invoices (Stripe's side of our default).
    pub async fn set_default(&self, customer: &str, payment_method: &str, key: &str) -> Result<Customer, StripeError> {
        let params = json!({"invoice_settings": {"default_payment_method": payment_method}});
        self.post(&format!("/v1/customers/{customer}"), params, key).await
    }
}

/// Drops null fields: Stripe reads an empty value as "unset", not "absent".
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        other => other,
    }
}
