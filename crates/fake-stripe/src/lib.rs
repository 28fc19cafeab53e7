//! A fake of the part of Stripe's API kelviq's Stripe provider uses, for
//! tests: it keeps state, reads Stripe's form encoding (`a[b]=c`), answers
//! in Stripe's shapes (objects, lists, `{"error": {...}}` with the HTTP
//! statuses Stripe uses), checks the `Bearer sk_test_…` key and replays
//! `Idempotency-Key`s exactly (the same key with other parameters is an
//! `idempotency_error`). Stripe's test cards behave as documented:
//!
//! | card | behaviour |
//! |---|---|
//! | 4242 4242 4242 4242 | succeeds |
//! | 4000 0000 0000 0002 | declined (`card_declined`, `generic_decline`) |
//! | 4000 0000 0000 3155, 4000 0025 0000 3155 | off-session: `authentication_required` |
//! | 4000 0000 0000 0341 | attaches, then every charge is declined |
//!
//! (4000 0000 0000 3155 is the number issue 27 names; Stripe's own card is
//! 4000 0025 0000 3155, which passes the Luhn check. Both behave alike.)
//!
//! Cards are created with `POST /v1/payment_methods` and `card[number]`
//! (what Stripe's test mode accepts from Elements; never from a server).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kelviq_core::stripe::form_decode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub mod checkout;
mod ledger;

pub use ledger::Ledger;
use ledger::{error, missing};

#[derive(Clone, Default)]
pub struct FakeStripe {
    pub ledger: Arc<Mutex<Ledger>>,
    /// Where events go, and the secret they are signed with.
    webhook: Arc<Mutex<Option<(String, String)>>>,
    /// Whether the next charge is left unanswered.
    hold: Arc<std::sync::atomic::AtomicBool>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| kelviq_core::stripe::key_mode(k) == Some(kelviq_core::stripe::KeyMode::Test))
}

fn unauthorised() -> (StatusCode, Value) {
    error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided.", json!({}))
}

fn reply((status, body): (StatusCode, Value)) -> Response {
    (status, Json(body)).into_response()
}

/// Every POST: authorisation, the idempotency replay, then the handler.
/// A charge made while [`FakeStripe::hold_next_charge`] is set is made
/// and recorded (a replay of its key answers it), but never answered.
async fn write(
    State(fake): State<FakeStripe>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = write_now(&fake, method, &path, &headers, &body);
    let replayed = answer.headers().contains_key("idempotent-replayed");
    if path == "payment_intents" && !replayed && fake.hold.swap(false, std::sync::atomic::Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    answer
}

fn write_now(fake: &FakeStripe, method: Method, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    if !authorised(headers) {
        return reply(unauthorised());
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let params = form_decode(&text);
    let mut ledger = fake.ledger.lock().expect("ledger");
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let fingerprint = format!("{method} {path} {params}");
    if let Some(k) = &key {
        if let Some((seen, status, answer)) = ledger.idempotency.get(k) {
            if *seen != fingerprint {
                return reply(error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    None,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    json!({}),
                ));
            }
            let mut res = reply((StatusCode::from_u16(*status).unwrap_or(StatusCode::OK), answer.clone()));
            res.headers_mut().insert("idempotent-replayed", "true".parse().expect("header"));
            return res;
        }
    }
    let segments: Vec<&str> = path.split('/').collect();
    let t = now();
    let answer = match segments.as_slice() {
        ["customers"] => ledger.create_customer(&params, t),
        ["customers", id] => ledger.update_customer(id, &params),
        ["payment_methods"] => ledger.create_payment_method(&params, t),
        ["payment_methods", id, "attach"] => ledger.attach(id, &params),
        ["payment_methods", id, "detach"] => ledger.detach(id),
        ["payment_intents"] => ledger.create_payment_intent(&params, t),
        ["refunds"] => ledger.refund(&params, t),
        ["checkout", "sessions"] => ledger.create_checkout_session(&params, t),
        _ => checkout::unknown("POST", path),
    };
    if let Some(k) = key {
        if answer.0 != StatusCode::UNAUTHORIZED && !answer.0.is_server_error() {
            ledger.idempotency.insert(k, (fingerprint, answer.0.as_u16(), answer.1.clone()));
        }
    }
    reply(answer)
}

async fn read(
    State(fake): State<FakeStripe>,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&headers) {
        return reply(unauthorised());
    }
    let ledger = fake.ledger.lock().expect("ledger");
    let segments: Vec<&str> = path.split('/').collect();
    let found = |map: &HashMap<String, Value>, what: &str, id: &str| match map.get(id) {
        Some(v) => (StatusCode::OK, v.clone()),
        None => missing(what, id),
    };
    reply(match segments.as_slice() {
        ["customers", id] => found(&ledger.customers, "customer", id),
        ["payment_intents", id] => found(&ledger.payment_intents, "payment_intent", id),
        ["refunds", id] => found(&ledger.refunds, "refund", id),
        ["payment_methods", id] => found(&ledger.payment_methods, "payment_method", id),
        ["checkout", "sessions", id] => found(&ledger.checkout_sessions, "checkout.session", id),
        ["setup_intents", id] => found(&ledger.setup_intents, "setup_intent", id),
        ["disputes", id] => found(&ledger.disputes, "dispute", id),
        ["events", id] => match ledger.events.iter().find(|e| e["id"] == *id) {
            Some(e) => (StatusCode::OK, e.clone()),
            None => missing("event", id),
        },
        ["payment_methods"] => {
            let customer = q.get("customer").cloned().unwrap_or_default();
            let mut data: Vec<Value> =
                ledger.payment_methods.values().filter(|m| m["customer"] == customer.as_str()).cloned().collect();
            data.sort_by_key(|m| std::cmp::Reverse(m["created"].as_i64()));
            (StatusCode::OK, json!({"object": "list", "data": data, "has_more": false, "url": "/v1/payment_methods"}))
        }
        _ => checkout::unknown("GET", &path),
    })
}

async fn page(State(fake): State<FakeStripe>, Path(sid): Path<String>) -> Response {
    let outcome = fake.ledger.lock().expect("ledger").page(&sid, None);
    fake.answer_page(outcome, Vec::new())
}

async fn submit(State(fake): State<FakeStripe>, Path(sid): Path<String>, body: Bytes) -> Response {
    let form = form_decode(&String::from_utf8_lossy(&body));
    let (outcome, events) = fake.ledger.lock().expect("ledger").submit_page(&sid, &form, now());
    fake.answer_page(outcome, events)
}

async fn authenticate(State(fake): State<FakeStripe>, Path(sid): Path<String>, body: Bytes) -> Response {
    let form = form_decode(&String::from_utf8_lossy(&body));
    let approve = form["result"] == "approve";
    let (outcome, events) = fake.ledger.lock().expect("ledger").authenticate(&sid, approve, now());
    fake.answer_page(outcome, events)
}

/// The fake's own control (not Stripe's API): `{"url": …, "secret": …}`
/// says where events go, as an account's webhook endpoint would.
async fn set_webhook(State(fake): State<FakeStripe>, Json(to): Json<Value>) -> Response {
    match (to["url"].as_str(), to["secret"].as_str()) {
        (Some(url), Some(secret)) => {
            fake.send_events_to(url, secret);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => reply(error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "url and secret", json!({}))),
    }
}

impl FakeStripe {
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/{*path}", post(write).get(read))
            .route("/pay/{id}", axum::routing::get(page).post(submit))
            .route("/pay/{id}/authenticate", post(authenticate))
            .route("/_fake/webhook", post(set_webhook))
            .with_state(self.clone())
    }

    fn answer_page(&self, outcome: checkout::PageOutcome, events: Vec<Value>) -> Response {
        for e in events {
            self.send(&e);
        }
        match outcome {
            checkout::PageOutcome::Page(status, html) => (status, axum::response::Html(html)).into_response(),
            checkout::PageOutcome::Redirect(to) => {
                (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, to)]).into_response()
            }
        }
    }

    /// Sends events, signed with `secret`, to `url` (Stripe's webhook endpoint).
    pub fn send_events_to(&self, url: &str, secret: &str) {
        *self.webhook.lock().expect("webhook") = Some((url.to_string(), secret.to_string()));
    }

    /// Sends an event to the endpoint now, signed as Stripe signs (also to
    /// send one again); the endpoint's status, or None when none answered.
    pub async fn deliver(&self, event: &Value) -> Option<u16> {
        let (url, secret) = self.webhook.lock().expect("webhook").clone()?;
        let body = serde_json::to_vec(event).expect("an event serialises");
        let header = kelviq_core::stripe::sign_header(&secret, now(), &body);
        let res = reqwest::Client::new()
            .post(&url)
            .header("Stripe-Signature", header)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .ok()?;
        Some(res.status().as_u16())
    }

    fn send(&self, event: &Value) {
        let (me, event) = (self.clone(), event.clone());
        tokio::spawn(async move {
            me.deliver(&event).await;
        });
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.ledger.lock().expect("ledger").events.clone()
    }

    /// Serves on a free local port; the base URL to give the client.
    pub async fn start(&self) -> std::io::Result<String> {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr`; the base URL to give the client.
    pub async fn start_on(&self, addr: &str) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        self.ledger.lock().expect("ledger").base = format!("http://{addr}");
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://{addr}"))
    }

    /// A copy of a stored object, for assertions.
    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        self.ledger.lock().expect("ledger").payment_intents.get(id).cloned()
    }

    /// The cardholder disputes a succeeded payment (as Stripe's dispute test
    /// cards do): a dispute of its whole amount, `needs_response`, and its
    /// `charge.dispute.created` event, sent to the endpoint. Returns the event.
    pub fn dispute(&self, payment_intent: &str, reason: &str) -> Option<Value> {
        let event = {
            let mut ledger = self.ledger.lock().expect("ledger");
            let pi = ledger.payment_intents.get(payment_intent)?.clone();
            if pi["status"] != "succeeded" {
                return None;
            }
            let d = json!({"id": ledger::id("dp"), "object": "dispute", "amount": pi["amount"], "currency": pi["currency"],
                "charge": pi["latest_charge"], "payment_intent": payment_intent, "reason": reason,
                "status": "needs_response", "created": now()});
            ledger.disputes.insert(d["id"].as_str().unwrap_or_default().to_string(), d.clone());
            ledger.event("charge.dispute.created", d, now())
        };
        self.send(&event);
        Some(event)
    }

    /// Makes the next charge (`POST /v1/payment_intents`) and never answers
    /// it, as when the caller dies between Stripe's answer and its commit.
    pub fn hold_next_charge(&self) {
        self.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn charges_attempted(&self) -> u64 {
        self.ledger.lock().expect("ledger").charges_attempted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_pass_luhn() {
        for n in ["4242424242424242", "4000000000000002", "4000002500003155", "4000000000000341"] {
            assert!(ledger::luhn(n), "{n}");
        }
        let mut l = Ledger::default();
        let p =
            form_decode("type=card&card%5Bnumber%5D=4242424242424242&card%5Bexp_month%5D=12&card%5Bexp_year%5D=2030");
        let (status, pm) = l.create_payment_method(&p, 0);
        assert_eq!(status, StatusCode::OK, "{pm}");
    }
}
