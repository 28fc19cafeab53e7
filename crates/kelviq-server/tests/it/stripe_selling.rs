//! Issue 27: selling through Stripe, against the fake Stripe, through the
//! real server on SQLite and PostgreSQL. The hosted checkout hands the
//! payer to Stripe's page and completes on the return and on Stripe's
//! webhook (racing, once); renewals are charged off session with the
//! saved card; a declined renewal goes past due as the sandbox's does.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use fake_stripe::FakeStripe;
use serde_json::{json, Value};

pub(crate) const SECRET: &str = "whsec_kelviq_tests_0001";

/// A server whose sandbox sells through the fake Stripe (which sends its
/// events to the server's webhook endpoint).
pub(crate) async fn stripe_server(backend: Backend) -> (TestServer, FakeStripe) {
    let fake = FakeStripe::default();
    let base = fake.start().await.unwrap();
    let s = TestServer::start_with(backend, |c| c.stripe_api_base = base).await;
    kelviq_server::providers::set_stripe(&s.state, &s.tenant, "sk_test_51KelviqTests0001", SECRET).await.unwrap();
    fake.send_events_to(&s.url("/stripe/webhook/sandbox"), SECRET);
    (s, fake)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()[reqwest::header::LOCATION].to_str().unwrap().to_string()
}

/// What the payer met at the end.
pub(crate) struct Bought {
    pub session: String,
    /// Where the return sent the payer (the seller's success URL).
    pub landed: String,
}

/// Buys through the hosted checkout and the fake Stripe's card page with
/// `card` (a 3-D Secure card is approved on its page).
pub(crate) async fn buy_on_stripe(s: &TestServer, api: &Api<'_>, plan: &str, customer: &str, card: &str) -> Bought {
    let session = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": plan, "chargePeriod": "MONTHLY", "customerId": customer,
                "successUrl": "https://app.example.com/welcome"}),
        )
        .await;
    let id = session["checkoutSessionId"].as_str().unwrap().to_string();
    let landed = pay_on_stripe(&s.url(""), &id, customer, card).await;
    Bought { session: id, landed }
}

/// Pays checkout `id` of the server at `base` on the fake Stripe's page;
/// where the payer lands in the end.
pub(crate) async fn pay_on_stripe(base: &str, id: &str, customer: &str, card: &str) -> String {
    let b = browser();
    let page = b.get(format!("{base}/checkout/{id}")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Continue to payment") && !page.contains("card_number"), "no card field here: {page}");
    let email = format!("{customer}@example.com");
    let res = b
        .post(format!("{base}/checkout/{id}/"))
        .form(&[("email", email.as_str()), ("name", "Pat Payer"), ("country", "US")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let stripe_page = location(&res);
    assert!(stripe_page.contains("/pay/cs_test"), "{stripe_page}");
    let html = b.get(&stripe_page).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Fake Stripe Checkout"), "{html}");
    let mut res =
        b.post(&stripe_page).form(&[("card_number", card), ("expiry", "12/30"), ("cvc", "123")]).send().await.unwrap();
    if res.status() == 200 {
        let html = res.text().await.unwrap();
        assert!(html.contains("Authenticate"), "{html}");
        res = b.post(format!("{stripe_page}/authenticate")).form(&[("result", "approve")]).send().await.unwrap();
    }
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.contains(&format!("/checkout/{id}/return?session_id=cs_test")), "{back}");
    let res = b.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    location(&res)
}

async fn the_one_subscription(api: &Api<'_>, customer: &str) -> Value {
    let (status, page) = api.get(&format!("/api/v1/subscriptions/?customer_id={customer}")).await;
    assert_eq!(status, 200, "{page}");
    let subs = page["results"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "one subscription: {page}");
    subs[0].clone()
}

async fn checkout_and_renewals_through_stripe(backend: Backend) {
    let (s, fake) = stripe_server(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;

    let bought = buy_on_stripe(&s, &api, "basic", "ann", "4242424242424242").await;
    assert_eq!(bought.landed, "https://app.example.com/welcome");
    // The webhook raced the return: one purchase either way.
    let (_, cs) = api.get(&format!("/api/v1/checkout/sessions/{}/", bought.session)).await;
    assert_eq!(cs["status"], "success", "{cs}");
    let sub = the_one_subscription(&api, "ann").await;
    assert_eq!(sub["status"], "active");
    let orders = api.orders("ann").await;
    assert_eq!(orders.len(), 1);
    assert_eq!((orders[0]["status"].clone(), orders[0]["amountTotal"].clone()), (json!("COMPLETE"), json!("10.00")));
    assert_eq!(fake.charges_attempted(), 1, "paid on Stripe's page only");
    let (_, methods) = api.get("/api/v1/payment-methods/?customer_id=ann").await;
    let card = &methods["results"][0];
    assert_eq!((card["methodData"]["last4"].clone(), card["isDefault"].clone()), (json!("4242"), json!(true)));
    // Stripe's delivery of the completion (received once, whatever came first).
    for _ in 0..50 {
        if fake.events().iter().any(|e| e["type"] == "checkout.session.completed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let completed = fake.events().into_iter().find(|e| e["type"] == "checkout.session.completed").unwrap();
    for _ in 0..3 {
        assert_eq!(fake.deliver(&completed).await, Some(200), "a repeated delivery is answered 2xx");
    }
    assert_eq!(api.orders("ann").await.len(), 1, "and changes nothing");

    // The renewal: charged off session with the saved card.
    let due = sub["billingPeriodEndTime"].as_str().unwrap().to_string();
    api.advance_to(&due).await;
    let orders = api.orders("ann").await;
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_eq!((orders[1]["isRenewal"].clone(), orders[1]["status"].clone()), (json!(true), json!("COMPLETE")));
    assert_eq!(fake.charges_attempted(), 2);
    let intents: Vec<Value> = {
        let ledger = fake.ledger.lock().unwrap();
        ledger.payment_intents.values().cloned().collect()
    };
    let renewal = intents
        .iter()
        .find(|pi| pi["metadata"]["kelviq_purpose"].as_str().is_some_and(|p| p.starts_with("renewal:")))
        .expect("a renewal intent");
    assert_eq!((renewal["status"].clone(), renewal["amount"].clone()), (json!("succeeded"), json!(1000)));
    assert_eq!(the_one_subscription(&api, "ann").await["status"], "active");

    // The cardholder disputes the renewal: recorded on its order, sent as an event.
    let renewal_id = renewal["id"].as_str().unwrap().to_string();
    fake.dispute(&renewal_id, "fraudulent").expect("a succeeded payment to dispute");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let disputed = loop {
        assert!(std::time::Instant::now() < deadline, "no order.disputed");
        let events = s.store.list_events(&s.tenant, 0, 10_000).await.unwrap();
        if let Some((_, e)) = events.iter().find(|(_, e)| e.event_type == "order.disputed") {
            break e.payload["data"]["object"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (disputed["dispute"]["reason"].clone(), disputed["dispute"]["amountUnits"].clone()),
        (json!("fraudulent"), json!(1000))
    );
    let renewal_order = api.orders("ann").await.into_iter().find(|o| o["isRenewal"] == json!(true)).unwrap();
    let order_id = renewal_order["id"].as_str().unwrap();
    let (_, log) = api.get(&format!("/api/v1/orders/{order_id}/events/")).await;
    assert!(log.to_string().contains("order.disputed"), "{log}");

    // A plan change charged now, and a one-time charge: off session at Stripe.
    let sub_id = sub["id"].as_str().unwrap();
    let change = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "prorationBehavior": "IMMEDIATE_CHARGE"});
    api.ok(&format!("/api/v1/subscriptions/{sub_id}/update/"), change).await;
    api.ok("/api/v1/charges/", json!({"planIdentifier": "lifetime", "chargePeriod": "ONE_TIME", "customerId": "ann"}))
        .await;
    let orders = api.orders("ann").await;
    assert_eq!(orders.len(), 4, "{orders:?}");
    assert!(orders.iter().all(|o| o["status"] == "COMPLETE"), "{orders:?}");
    let purposes: Vec<(String, i64)> = {
        let ledger = fake.ledger.lock().unwrap();
        let mut p: Vec<(String, i64)> = ledger
            .payment_intents
            .values()
            .filter(|pi| pi["status"] == "succeeded")
            .filter_map(|pi| {
                Some((
                    pi["metadata"]["kelviq_purpose"].as_str()?.split(':').next()?.to_string(),
                    pi["amount"].as_i64()?,
                ))
            })
            .collect();
        p.sort();
        p
    };
    let change_charge =
        orders.iter().find(|o| o["amountTotalUnits"] != json!(1000) && o["amountTotalUnits"] != json!(9900));
    let change_units = change_charge.expect("the change's order")["amountTotalUnits"].as_i64().unwrap();
    assert_eq!(
        purposes,
        vec![("change".to_string(), change_units), ("purchase".to_string(), 9900), ("renewal".to_string(), 1000)],
        "each charge once, with its purpose"
    );

    // A trial saves the card without charging; a card that attaches and then
    // fails makes the first renewal fail: past due, as in the sandbox.
    let bought = buy_on_stripe(&s, &api, "trial", "bob", "4000000000000341").await;
    assert_eq!(bought.landed, "https://app.example.com/welcome");
    let sub = the_one_subscription(&api, "bob").await;
    assert_eq!(sub["status"], "trialing");
    let charged = fake.charges_attempted();
    let trial_end = sub["trialEnd"].as_str().or(sub["billingPeriodEndTime"].as_str()).unwrap().to_string();
    api.advance_to(&trial_end).await;
    let sub = the_one_subscription(&api, "bob").await;
    assert_eq!(sub["status"], "past_due", "{sub}");
    assert_eq!(fake.charges_attempted(), charged + 1, "one off-session charge, declined");
    let failed = api.orders("bob").await.last().unwrap().clone();
    assert_eq!((failed["status"].clone(), failed["invoiceStatus"].clone()), (json!("FAILED"), json!("PAYMENT_FAILED")));
    // The retries fail too; after the grace period the subscription ends.
    let ended = (chrono::DateTime::parse_from_rfc3339(&trial_end).unwrap() + chrono::Duration::days(15)).to_rfc3339();
    api.advance_to(&ended).await;
    let sub = api.sub(sub["id"].as_str().unwrap()).await;
    assert_eq!(
        (sub["status"].clone(), sub["cancellationReason"].clone()),
        (json!("canceled"), json!("CANCELLED_BY_PROVIDER"))
    );
    assert!(fake.charges_attempted() > charged + 2, "the retries were charged off session");
}

/// The payment link of the customer's last failed invoice, from its
/// `invoice.payment_failed` event.
pub(crate) async fn payment_link(s: &TestServer, invoice_id: &str) -> String {
    let events = s.store.list_events(&s.tenant, 0, 10_000).await.unwrap();
    let failed = events
        .iter()
        .rev()
        .find(|(_, e)| e.event_type == "invoice.payment_failed" && e.payload["data"]["object"]["id"] == invoice_id)
        .unwrap_or_else(|| panic!("no invoice.payment_failed for {invoice_id}"));
    failed.1.payload["data"]["object"]["payment_link"].as_str().expect("a payment link").to_string()
}

async fn authentication_refunds_through_stripe(backend: Backend) {
    let (s, fake) = stripe_server(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    // A 3-D Secure card: approved on Stripe's page at checkout.
    let bought = buy_on_stripe(&s, &api, "basic", "cat", "4000002500003155").await;
    assert_eq!(bought.landed, "https://app.example.com/welcome");
    let sub = the_one_subscription(&api, "cat").await;
    assert_eq!(sub["status"], "active");

    // Off session the bank asks for authentication: the invoice waits on its link.
    api.advance_to(sub["billingPeriodEndTime"].as_str().unwrap()).await;
    assert_eq!(the_one_subscription(&api, "cat").await["status"], "past_due");
    let failed = api.orders("cat").await.last().unwrap().clone();
    assert_eq!((failed["status"].clone(), failed["invoiceStatus"].clone()), (json!("FAILED"), json!("PAYMENT_FAILED")));
    let (_, invoices) = api.get("/api/v1/invoices/?customer_id=cat&status=PAYMENT_FAILED").await;
    let invoice = invoices["results"][0]["id"].as_str().expect("the failed invoice").to_string();
    let link = payment_link(&s, &invoice).await;
    let b = browser();
    // A changed token opens nothing.
    let forged = link.replace("token=", "token=0");
    assert_eq!(b.get(s.url(&forged)).send().await.unwrap().status(), 404);
    let page = b.get(s.url(&link)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("10.00") && page.contains("Stripe"), "{page}");
    let res = b.post(s.url(&link)).form(&[("go", "1")]).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let stripe_page = location(&res);
    let res = b
        .post(&stripe_page)
        .form(&[("card_number", "4000002500003155"), ("expiry", "12/30"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("Authenticate"), "3-D Secure on Stripe's page");
    let res = b.post(format!("{stripe_page}/authenticate")).form(&[("result", "approve")]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = location(&res);
    let page = b.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("This invoice is paid"), "{page}");
    assert_eq!(the_one_subscription(&api, "cat").await["status"], "active", "active again");
    let (_, paid) = api.get(&format!("/api/v1/invoices/{invoice}/")).await;
    assert_eq!(paid["status"], "PAID", "{paid}");

    // Refunds through Stripe: part, then the rest (which ends the subscription).
    let first = api.orders("cat").await[0].clone();
    let order = first["orderId"].as_str().or(first["id"].as_str()).unwrap().to_string();
    api.ok("/api/v1/refunds/", json!({"orderId": order, "amountUnits": 400, "reason": "OTHER"})).await;
    api.ok("/api/v1/refunds/", json!({"orderId": order})).await;
    let refunds: Vec<Value> = fake.ledger.lock().unwrap().refunds.values().cloned().collect();
    let mut amounts: Vec<i64> = refunds.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    amounts.sort();
    assert_eq!(amounts, vec![400, 600], "{refunds:?}");
    assert!(refunds.iter().all(|r| r["status"] == "succeeded"));
}

/// Cards in the portal with Stripe: added on Stripe's page (setup mode),
/// made the default (here and at Stripe), and removed (detached at Stripe).
async fn portal_cards_through_stripe(backend: Backend) {
    use crate::portal::{form_token, page, sign_in};
    let (s, fake) = stripe_server(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    buy_on_stripe(&s, &api, "basic", "eve", "4242424242424242").await;
    let session = api.ok("/api/v1/portal/session/", json!({"customerId": "eve"})).await;
    let url = session["customerPortalUrl"].as_str().unwrap().to_string();
    let cookie = sign_in(&s, &url, session["token"].as_str().unwrap()).await;
    let (_, html) = page(&s, Some(&cookie)).await;
    assert!(html.contains("Add a card on Stripe") && !html.contains("card-number"), "{html}");
    let form = form_token(&html);

    let b = browser();
    let cookie_header = (reqwest::header::COOKIE, cookie.clone());
    let res = b
        .post(s.url("/portal/demo/payment-methods"))
        .header(cookie_header.0.clone(), &cookie_header.1)
        .form(&[("form", form.as_str()), ("make_default", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let stripe_page = location(&res);
    assert!(b.get(&stripe_page).send().await.unwrap().text().await.unwrap().contains("Save card"));
    let res = b
        .post(&stripe_page)
        .form(&[("card_number", "4000000000000341"), ("expiry", "12/30"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = location(&res);
    assert!(back.contains("/portal/demo/payment-methods/stripe-return?session_id=cs_test"), "{back}");
    let res = b.get(&back).header(cookie_header.0.clone(), &cookie_header.1).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    // Once, however the return and the webhook raced.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, methods) = api.get("/api/v1/payment-methods/?customer_id=eve").await;
    let methods = methods["results"].as_array().unwrap().clone();
    assert_eq!(methods.len(), 2, "{methods:?}");
    let new = methods.iter().find(|m| m["methodData"]["last4"] == "0341").expect("the new card");
    assert_eq!(new["isDefault"], true);
    let old = methods.iter().find(|m| m["methodData"]["last4"] == "4242").unwrap();
    let stripe_default = |fake: &FakeStripe| {
        let ledger = fake.ledger.lock().unwrap();
        let customer =
            ledger.customers.values().find(|c| c["metadata"]["kelviq_customer_id"] == "eve").unwrap().clone();
        customer["invoice_settings"]["default_payment_method"].as_str().map(str::to_string)
    };
    let pm_0341 = {
        let ledger = fake.ledger.lock().unwrap();
        let pm = ledger.payment_methods.values().find(|m| m["card"]["last4"] == "0341").unwrap().clone();
        pm["id"].as_str().unwrap().to_string()
    };
    assert_eq!(stripe_default(&fake).as_deref(), Some(pm_0341.as_str()), "the default at Stripe too");

    // The renewal charges the new default, which fails off session.
    let sub = api.get("/api/v1/subscriptions/?customer_id=eve").await.1["results"][0].clone();
    api.advance_to(sub["billingPeriodEndTime"].as_str().unwrap()).await;
    assert_eq!(api.get("/api/v1/subscriptions/?customer_id=eve").await.1["results"][0]["status"], "past_due");

    // The old card the default again, the new one removed: detached at Stripe.
    let old_id = old["id"].as_i64().unwrap();
    let new_id = new["id"].as_i64().unwrap();
    assert_eq!(
        api.send(reqwest::Method::POST, &format!("/api/v1/payment-methods/{old_id}/default/"), None).await.0,
        204
    );
    assert_eq!(api.send(reqwest::Method::DELETE, &format!("/api/v1/payment-methods/{new_id}/"), None).await.0, 204);
    let detached = fake.ledger.lock().unwrap().payment_methods[&pm_0341].clone();
    assert!(detached["customer"].is_null(), "{detached}");
    assert_ne!(stripe_default(&fake).as_deref(), Some(pm_0341.as_str()));
}

/// The price changed while the payer was on Stripe's page (a tax rate
/// came in): nothing is bought, and the payment made there is refunded.
async fn a_payment_that_buys_nothing_is_refunded(backend: Backend) {
    let (s, fake) = stripe_server(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    let session = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "basic", "chargePeriod": "MONTHLY", "customerId": "dan",
                "successUrl": "https://app.example.com/welcome"}),
        )
        .await;
    let id = session["checkoutSessionId"].as_str().unwrap();
    let b = browser();
    let res = b
        .post(s.url(&format!("/checkout/{id}/")))
        .form(&[("email", "dan@example.com"), ("country", "US")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let stripe_page = location(&res);
    api.ok("/api/v1/tax-rates/", json!({"name": "US sales tax", "country": "US", "percentage": 10})).await;
    let res = b
        .post(&stripe_page)
        .form(&[("card_number", "4242424242424242"), ("expiry", "12/30"), ("cvc", "123")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = b.get(location(&res)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("Your payment was refunded"), "{page}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let refunds: Vec<Value> = fake.ledger.lock().unwrap().refunds.values().cloned().collect();
    assert_eq!(refunds.len(), 1, "refunded once, whatever the webhook did: {refunds:?}");
    assert_eq!(refunds[0]["amount"], 1000);
    let (_, subs) = api.get("/api/v1/subscriptions/?customer_id=dan").await;
    assert_eq!(subs["count"], 0, "nothing was bought");
}

on_both_backends!(
    checkout_and_renewals_through_stripe,
    authentication_refunds_through_stripe,
    portal_cards_through_stripe,
    a_payment_that_buys_nothing_is_refunded
);
