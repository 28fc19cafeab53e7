//! Checkout Sessions and the hosted card page a browser fills: `payment`
//! mode charges on the page (a 3-D Secure card asks to approve first),
//! `setup` mode only saves the card. A completed session emits
//! `checkout.session.completed`, sent signed to the configured endpoint,
//! and sends the browser to `success_url` (`{CHECKOUT_SESSION_ID}`
//! replaced, as Stripe does).

use crate::ledger::{error, id, invalid, missing, str_of, Ledger};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// What the page's POST leads to.
pub enum PageOutcome {
    /// Show this HTML (with this status).
    Page(StatusCode, String),
    /// Send the browser here.
    Redirect(String),
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Ledger {
    pub(crate) fn create_checkout_session(&mut self, p: &Value, now: i64) -> (StatusCode, Value) {
        let mode = str_of(p, "mode").unwrap_or_default();
        if !matches!(mode, "payment" | "setup") {
            return invalid("mode must be payment or setup here.", "mode");
        }
        let Some(success) = str_of(p, "success_url") else {
            return invalid("Missing required param: success_url.", "success_url");
        };
        let Some(customer) = str_of(p, "customer") else {
            return invalid("Missing required param: customer.", "customer");
        };
        if !self.customers.contains_key(customer) {
            return missing("customer", customer);
        }
        let (mut amount, mut currency) = (Value::Null, str_of(p, "currency").map(str::to_string));
        if mode == "payment" {
            let item = &p["line_items"][0];
            let unit: i64 = str_of(&item["price_data"], "unit_amount").and_then(|a| a.parse().ok()).unwrap_or(0);
            let quantity: i64 = str_of(item, "quantity").and_then(|q| q.parse().ok()).unwrap_or(1);
            currency = str_of(&item["price_data"], "currency").map(str::to_string);
            if unit <= 0 || currency.is_none() {
                return invalid("line_items[0][price_data] needs unit_amount and currency.", "line_items");
            }
            amount = json!(unit * quantity);
        }
        let sid = id("cs_test");
        let s = json!({"id": sid, "object": "checkout.session", "mode": mode, "status": "open", "payment_status": "unpaid",
            "url": format!("{}/pay/{sid}", self.base), "customer": customer, "amount_total": amount, "currency": currency,
            "success_url": success, "cancel_url": p.get("cancel_url"), "metadata": p.get("metadata").cloned().unwrap_or(json!({})),
            "setup_future_usage": p.pointer("/payment_intent_data/setup_future_usage"),
            "payment_intent": null, "setup_intent": null, "created": now, "expires_at": now + 86_400});
        self.checkout_sessions.insert(sid, s.clone());
        (StatusCode::OK, s)
    }

    /// The hosted card page of an open session.
    pub(crate) fn page(&self, sid: &str, message: Option<&str>) -> PageOutcome {
        let Some(s) = self.checkout_sessions.get(sid) else {
            return PageOutcome::Page(StatusCode::NOT_FOUND, "<h1>Not found</h1>".into());
        };
        if s["status"] != "open" {
            return PageOutcome::Page(StatusCode::OK, "<h1>This session is complete</h1>".into());
        }
        let what = match s["amount_total"].as_i64() {
            Some(a) => {
                format!("Pay {}.{:02} {}", a / 100, a % 100, s["currency"].as_str().unwrap_or_default().to_uppercase())
            }
            None => "Save card".into(),
        };
        let cancel =
            s["cancel_url"].as_str().map(|u| format!("<p><a href=\"{}\">Cancel</a></p>", esc(u))).unwrap_or_default();
        let message = message.map(|m| format!("<p role=\"alert\" id=\"error\">{}</p>", esc(m))).unwrap_or_default();
        PageOutcome::Page(
            StatusCode::OK,
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Fake Stripe Checkout</title></head>\
                 <body><main><h1>Fake Stripe Checkout</h1>{message}<form method=\"post\" action=\"/pay/{sid}\">\
                 <label for=\"card_number\">Card number</label><input id=\"card_number\" name=\"card_number\" required>\
                 <label for=\"expiry\">Expiry (MM/YY)</label><input id=\"expiry\" name=\"expiry\" required>\
                 <label for=\"cvc\">CVC</label><input id=\"cvc\" name=\"cvc\" required>\
                 <button type=\"submit\" id=\"submit\">{what}</button></form>{cancel}</main></body></html>"
            ),
        )
    }

    /// The card typed on the page: saved to the session's customer, then
    /// charged (payment mode); the events to send, and where the browser goes.
    pub(crate) fn submit_page(&mut self, sid: &str, form: &Value, now: i64) -> (PageOutcome, Vec<Value>) {
        let Some(s) = self.checkout_sessions.get(sid).cloned() else { return (self.page(sid, None), Vec::new()) };
        if s["status"] != "open" {
            return (self.page(sid, None), Vec::new());
        }
        let (m, y) = str_of(form, "expiry").and_then(|e| e.split_once('/')).unwrap_or(("", ""));
        let year = y.trim().parse::<i32>().map(|y| if y < 100 { 2000 + y } else { y }).unwrap_or(0);
        let card = json!({"type": "card", "card": {"number": str_of(form, "card_number").unwrap_or_default(),
            "exp_month": m.trim(), "exp_year": year.to_string()}});
        let (status, pm) = self.create_payment_method(&card, now);
        if status != StatusCode::OK {
            return (self.page(sid, pm.pointer("/error/message").and_then(Value::as_str)), Vec::new());
        }
        let pm_id = pm["id"].as_str().unwrap_or_default().to_string();
        let customer = s["customer"].as_str().unwrap_or_default().to_string();
        let (status, attached) = self.attach(&pm_id, &json!({"customer": customer}));
        if status != StatusCode::OK {
            return (self.page(sid, attached.pointer("/error/message").and_then(Value::as_str)), Vec::new());
        }
        if s["mode"] == "setup" {
            let seti = json!({"id": id("seti"), "object": "setup_intent", "status": "succeeded", "customer": customer,
                "payment_method": pm_id, "usage": "off_session"});
            self.setup_intents.insert(seti["id"].as_str().unwrap_or_default().to_string(), seti.clone());
            return self.complete(sid, json!({"setup_intent": seti["id"]}), now);
        }
        let params = json!({"amount": s["amount_total"].to_string(), "currency": s["currency"], "customer": customer,
            "payment_method": pm_id, "confirm": "true", "metadata": s["metadata"]});
        let (status, pi) = self.create_payment_intent(&params, now);
        if status != StatusCode::OK {
            return (self.page(sid, pi.pointer("/error/message").and_then(Value::as_str)), Vec::new());
        }
        let pi_id = pi["id"].as_str().unwrap_or_default().to_string();
        if pi["status"] == "requires_action" {
            self.checkout_sessions.get_mut(sid).expect("known")["payment_intent"] = json!(pi_id);
            return (PageOutcome::Page(StatusCode::OK, three_d_secure(sid)), Vec::new());
        }
        self.complete(sid, json!({"payment_intent": pi_id, "payment_status": "paid"}), now)
    }

    /// The 3-D Secure step: approved, the payment goes through; refused, the page asks again.
    pub(crate) fn authenticate(&mut self, sid: &str, approve: bool, now: i64) -> (PageOutcome, Vec<Value>) {
        let Some(pi_id) =
            self.checkout_sessions.get(sid).and_then(|s| s["payment_intent"].as_str().map(str::to_string))
        else {
            return (self.page(sid, None), Vec::new());
        };
        let Some(pi) = self.payment_intents.get_mut(&pi_id) else { return (self.page(sid, None), Vec::new()) };
        if !approve {
            pi["status"] = json!("requires_payment_method");
            pi["last_payment_error"] = json!({"type": "card_error", "code": "payment_intent_authentication_failure",
                "message": "We are unable to authenticate your payment method."});
            return (self.page(sid, Some("We are unable to authenticate your payment method.")), Vec::new());
        }
        let amount = pi["amount"].clone();
        pi["status"] = json!("succeeded");
        pi["amount_received"] = amount;
        pi["latest_charge"] = json!(id("ch"));
        self.complete(sid, json!({"payment_intent": pi_id, "payment_status": "paid"}), now)
    }

    fn complete(&mut self, sid: &str, changes: Value, now: i64) -> (PageOutcome, Vec<Value>) {
        let s = self.checkout_sessions.get_mut(sid).expect("known");
        s["status"] = json!("complete");
        if s["payment_status"] == "unpaid" && s["mode"] == "setup" {
            s["payment_status"] = json!("no_payment_required");
        }
        if let Value::Object(m) = changes {
            for (k, v) in m {
                s[k] = v;
            }
        }
        let s = s.clone();
        let to = s["success_url"].as_str().unwrap_or_default().replace("{CHECKOUT_SESSION_ID}", sid);
        let event = self.event("checkout.session.completed", s, now);
        (PageOutcome::Redirect(to), vec![event])
    }

    /// Records an event (kept for `GET /v1/events/{id}`).
    pub(crate) fn event(&mut self, kind: &str, object: Value, now: i64) -> Value {
        let e = json!({"id": id("evt"), "object": "event", "type": kind, "created": now, "livemode": false,
            "api_version": "2024-06-20", "data": {"object": object}});
        self.events.push(e.clone());
        e
    }
}

/// The page a 3-D Secure card shows: approve or refuse.
fn three_d_secure(sid: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authenticate</title></head><body><main>\
         <h1>Authenticate your payment</h1><form method=\"post\" action=\"/pay/{sid}/authenticate\">\
         <button name=\"result\" value=\"approve\" id=\"approve\">Complete authentication</button>\
         <button name=\"result\" value=\"fail\" id=\"fail\">Fail authentication</button></form></main></body></html>"
    )
}

/// Refuses what this fake does not serve, in Stripe's shape.
pub(crate) fn unknown(method: &str, path: &str) -> (StatusCode, Value) {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!("Unrecognized request URL ({method}: /v1/{path})."),
        json!({}),
    )
}
