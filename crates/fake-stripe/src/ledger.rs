//! The fake's state and the operations on it, in Stripe's shapes.

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What the fake remembers.
#[derive(Default)]
pub struct Ledger {
    pub customers: HashMap<String, Value>,
    pub payment_methods: HashMap<String, Value>,
    /// The card number behind each payment method.
    pub(crate) numbers: HashMap<String, String>,
    pub payment_intents: HashMap<String, Value>,
    pub refunds: HashMap<String, Value>,
    /// Every charge attempted, succeeded or not (a retry replayed from an
    /// idempotency key is not one).
    pub charges_attempted: u64,
    pub(crate) idempotency: HashMap<String, (String, u16, Value)>,
    pub checkout_sessions: HashMap<String, Value>,
    pub setup_intents: HashMap<String, Value>,
    pub disputes: HashMap<String, Value>,
    pub events: Vec<Value>,
    /// The fake's own address (for the hosted page's URL).
    pub(crate) base: String,
}

pub(crate) fn id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            e[k] = v;
        }
    }
    (status, json!({ "error": e }))
}

pub(crate) fn invalid(message: &str, param: &str) -> (StatusCode, Value) {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", None, message, json!({"param": param}))
}

pub(crate) fn missing(what: &str, id: &str) -> (StatusCode, Value) {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {what}: '{id}'"),
        json!({}),
    )
}

pub(crate) fn str_of<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(crate) fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Ledger {
    pub(crate) fn create_customer(&mut self, p: &Value, now: i64) -> (StatusCode, Value) {
        let c = json!({"id": id("cus"), "object": "customer", "email": p.get("email"), "name": p.get("name"),
            "metadata": p.get("metadata").cloned().unwrap_or(json!({})), "created": now,
            "invoice_settings": {"default_payment_method": null}});
        self.customers.insert(c["id"].as_str().unwrap_or_default().to_string(), c.clone());
        (StatusCode::OK, c)
    }

    pub(crate) fn update_customer(&mut self, cid: &str, p: &Value) -> (StatusCode, Value) {
        let Some(c) = self.customers.get_mut(cid) else { return missing("customer", cid) };
        if let Some(pm) = p.pointer("/invoice_settings/default_payment_method").and_then(Value::as_str) {
            c["invoice_settings"]["default_payment_method"] = json!(pm);
        }
        for k in ["email", "name"] {
            if let Some(v) = str_of(p, k) {
                c[k] = json!(v);
            }
        }
        (StatusCode::OK, c.clone())
    }

    pub(crate) fn create_payment_method(&mut self, p: &Value, now: i64) -> (StatusCode, Value) {
        if str_of(p, "type") != Some("card") {
            return invalid("Only card payment methods are supported here.", "type");
        }
        let number: String =
            str_of(&p["card"], "number").unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
        if !(12..=19).contains(&number.len()) || !(luhn(&number) || number == "4000000000003155") {
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "card_error",
                Some("incorrect_number"),
                "Your card number is incorrect.",
                json!({"param": "card[number]"}),
            );
        }
        let exp_month: u32 = str_of(&p["card"], "exp_month").and_then(|m| m.parse().ok()).unwrap_or(0);
        let exp_year: i32 = str_of(&p["card"], "exp_year").and_then(|y| y.parse().ok()).unwrap_or(0);
        if !(1..=12).contains(&exp_month) || exp_year < 2000 {
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "card_error",
                Some("invalid_expiry_month"),
                "Your card's expiration date is invalid.",
                json!({"param": "card[exp_month]"}),
            );
        }
        let brand = match number.as_bytes()[0] {
            b'4' => "visa",
            b'5' => "mastercard",
            b'3' => "amex",
            _ => "unknown",
        };
        let pm = json!({"id": id("pm"), "object": "payment_method", "type": "card", "customer": null, "created": now,
            "card": {"brand": brand, "last4": &number[number.len() - 4..], "exp_month": exp_month, "exp_year": exp_year,
                "funding": "credit", "country": "US"}});
        let pid = pm["id"].as_str().unwrap_or_default().to_string();
        self.numbers.insert(pid.clone(), number);
        self.payment_methods.insert(pid, pm.clone());
        (StatusCode::OK, pm)
    }

    pub(crate) fn attach(&mut self, pid: &str, p: &Value) -> (StatusCode, Value) {
        let Some(cid) = str_of(p, "customer") else { return invalid("Missing required param: customer.", "customer") };
        if !self.customers.contains_key(cid) {
            return missing("customer", cid);
        }
        let number = self.numbers.get(pid).cloned().unwrap_or_default();
        let Some(pm) = self.payment_methods.get_mut(pid) else { return missing("payment_method", pid) };
        if number == "4000000000000002" {
            return error(
                StatusCode::PAYMENT_REQUIRED,
                "card_error",
                Some("card_declined"),
                "Your card was declined.",
                json!({"decline_code": "generic_decline"}),
            );
        }
        pm["customer"] = json!(cid);
        (StatusCode::OK, pm.clone())
    }

    pub(crate) fn detach(&mut self, pid: &str) -> (StatusCode, Value) {
        let Some(pm) = self.payment_methods.get_mut(pid) else { return missing("payment_method", pid) };
        pm["customer"] = Value::Null;
        (StatusCode::OK, pm.clone())
    }

    pub(crate) fn create_payment_intent(&mut self, p: &Value, now: i64) -> (StatusCode, Value) {
        let Some(amount) = str_of(p, "amount").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0) else {
            return invalid("Missing required param: amount.", "amount");
        };
        let Some(currency) = str_of(p, "currency") else {
            return invalid("Missing required param: currency.", "currency");
        };
        let customer = str_of(p, "customer").map(str::to_string);
        let pm = str_of(p, "payment_method").map(str::to_string);
        let mut pi = json!({"id": id("pi"), "object": "payment_intent", "amount": amount, "currency": currency,
            "customer": customer, "payment_method": pm, "status": "requires_payment_method", "created": now,
            "latest_charge": null, "last_payment_error": null, "amount_received": 0, "amount_refunded": 0,
            "metadata": p.get("metadata").cloned().unwrap_or(json!({}))});
        let pid = pi["id"].as_str().unwrap_or_default().to_string();
        if str_of(p, "confirm") == Some("true") {
            let Some(pm) = pm else { return invalid("A payment method is required to confirm.", "payment_method") };
            let Some(number) = self.numbers.get(&pm).cloned() else { return missing("payment_method", &pm) };
            let owner = self.payment_methods[&pm]["customer"].as_str().map(str::to_string);
            if owner.is_some() && owner != customer {
                return invalid("The payment method belongs to another customer.", "payment_method");
            }
            self.charges_attempted += 1;
            let off_session = str_of(p, "off_session") == Some("true");
            let failure = match number.as_str() {
                "4000000000000002" | "4000000000000341" => {
                    Some(("card_declined", Some("generic_decline"), "Your card was declined."))
                }
                "4000000000003155" | "4000002500003155" if off_session => Some((
                    "authentication_required",
                    Some("authentication_required"),
                    "This payment requires authentication by the customer.",
                )),
                "4000000000003155" | "4000002500003155" => {
                    pi["status"] = json!("requires_action");
                    None
                }
                _ => None,
            };
            match failure {
                Some((code, decline, message)) => {
                    let e = json!({"type": "card_error", "code": code, "decline_code": decline, "message": message});
                    pi["last_payment_error"] = e;
                    self.payment_intents.insert(pid.clone(), pi.clone());
                    return error(
                        StatusCode::PAYMENT_REQUIRED,
                        "card_error",
                        Some(code),
                        message,
                        json!({"decline_code": decline, "payment_intent": pi}),
                    );
                }
                None if pi["status"] == "requires_action" => {}
                None => {
                    pi["status"] = json!("succeeded");
                    pi["amount_received"] = json!(amount);
                    pi["latest_charge"] = json!(id("ch"));
                }
            }
        }
        self.payment_intents.insert(pid, pi.clone());
        (StatusCode::OK, pi)
    }

    pub(crate) fn refund(&mut self, p: &Value, now: i64) -> (StatusCode, Value) {
        let Some(piid) = str_of(p, "payment_intent") else {
            return invalid("Missing required param: payment_intent.", "payment_intent");
        };
        let Some(pi) = self.payment_intents.get_mut(piid) else { return missing("payment_intent", piid) };
        if pi["status"] != "succeeded" {
            return invalid("This PaymentIntent does not have a successful charge to refund.", "payment_intent");
        }
        let received = pi["amount_received"].as_i64().unwrap_or(0);
        let refunded = pi["amount_refunded"].as_i64().unwrap_or(0);
        let amount = match str_of(p, "amount") {
            Some(a) => match a.parse::<i64>() {
                Ok(a) if a > 0 => a,
                _ => return invalid("Invalid positive integer", "amount"),
            },
            None => received - refunded,
        };
        if amount > received - refunded {
            return invalid(
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({}).",
                    received - refunded
                ),
                "amount",
            );
        }
        pi["amount_refunded"] = json!(refunded + amount);
        let r = json!({"id": id("re"), "object": "refund", "amount": amount, "currency": pi["currency"],
            "payment_intent": piid, "status": "succeeded", "created": now});
        self.refunds.insert(r["id"].as_str().unwrap_or_default().to_string(), r.clone());
        (StatusCode::OK, r)
    }
}
