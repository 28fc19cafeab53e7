//! Issue 27's Stripe client against the in-repository fake Stripe, over
//! HTTP with Stripe's form encoding: customers, cards, off-session
//! charges with Stripe's test cards (success, decline, authentication
//! required, fails later), refunds within what was paid, and idempotency
//! keys replayed exactly (a retry after a lost answer charges once).

use fake_stripe::FakeStripe;
use kelviq_server::providers::stripe::objects::{Customer, PaymentMethod};
use kelviq_server::providers::stripe::{StripeClient, StripeError};
use serde_json::json;

async fn card(client: &StripeClient, customer: &Customer, number: &str, key: &str) -> PaymentMethod {
    let pm: PaymentMethod = client
        .post(
            "/v1/payment_methods",
            json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030}}),
            &format!("{key}-create"),
        )
        .await
        .unwrap();
    client.attach(&pm.id, &customer.id, &format!("{key}-attach")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stripe_client_against_the_fake() {
    let fake = FakeStripe::default();
    let base = fake.start().await.unwrap();
    let client = StripeClient::new(StripeClient::http(), &base, "sk_test_fakekey123456");
    let wrong = StripeClient::new(StripeClient::http(), &base, "sk_live_fakekey123456");
    let refused = wrong.create_customer(None, None, "x", "k0").await.unwrap_err();
    assert!(matches!(refused, StripeError::Api { status: 401, .. }), "{refused:?}");

    let customer = client.create_customer(Some("ann@example.com"), Some("Ann"), "ann", "cus-ann").await.unwrap();
    assert!(customer.id.starts_with("cus_"));
    let visa = card(&client, &customer, "4242424242424242", "visa").await;
    assert_eq!(
        (visa.customer.as_deref(), visa.card.as_ref().unwrap().last4.as_str()),
        (Some(customer.id.as_str()), "4242")
    );

    // A charge, and its retry with the same key: one charge.
    let meta = json!({"kelviq_order": "ORD-1"});
    let paid = client.charge_off_session(&customer.id, &visa.id, 2500, "USD", meta.clone(), "attempt-1").await.unwrap();
    assert_eq!((paid.status.as_str(), paid.amount, paid.currency.as_str()), ("succeeded", 2500, "usd"));
    let again =
        client.charge_off_session(&customer.id, &visa.id, 2500, "USD", meta.clone(), "attempt-1").await.unwrap();
    assert_eq!(again.id, paid.id, "the key replays the first answer");
    assert_eq!(fake.charges_attempted(), 1);
    let other =
        client.charge_off_session(&customer.id, &visa.id, 999, "USD", meta.clone(), "attempt-1").await.unwrap_err();
    assert!(
        matches!(&other, StripeError::Api { status: 400, error } if error.kind == "idempotency_error"),
        "{other:?}"
    );

    // Declines and authentication, as Stripe's test cards do.
    let declined = client.post::<PaymentMethod>(
        "/v1/payment_methods",
        json!({"type": "card", "card": {"number": "4000000000000002", "exp_month": 1, "exp_year": 2031}}),
        "declined-create",
    );
    let declined = declined.await.unwrap();
    let e = client.attach(&declined.id, &customer.id, "declined-attach").await.unwrap_err();
    assert_eq!(e.card_code(), Some("card_declined"));
    let three_ds = card(&client, &customer, "4000000000003155", "3ds").await;
    let e =
        client.charge_off_session(&customer.id, &three_ds.id, 500, "usd", meta.clone(), "attempt-2").await.unwrap_err();
    assert_eq!(e.card_code(), Some("authentication_required"));
    let StripeError::Api { status: 402, error } = &e else { panic!("{e:?}") };
    assert_eq!(error.payment_intent.as_ref().unwrap().status, "requires_payment_method");
    let later = card(&client, &customer, "4000000000000341", "later").await;
    let e =
        client.charge_off_session(&customer.id, &later.id, 500, "usd", meta.clone(), "attempt-3").await.unwrap_err();
    assert_eq!(e.card_code(), Some("card_declined"));
    assert_eq!(client.payment_methods(&customer.id).await.unwrap().data.len(), 3);
    client.detach(&later.id, "detach-later").await.unwrap();
    assert_eq!(client.payment_methods(&customer.id).await.unwrap().data.len(), 2);

    // Refunds: partial, the rest, then nothing left.
    let part = client.refund(&paid.id, Some(1000), "refund-1").await.unwrap();
    assert_eq!((part.amount, part.status.as_str()), (1000, "succeeded"));
    let rest = client.refund(&paid.id, None, "refund-2").await.unwrap();
    assert_eq!(rest.amount, 1500);
    let e = client.refund(&paid.id, Some(1), "refund-3").await.unwrap_err();
    assert!(matches!(&e, StripeError::Api { status: 400, error } if error.param.as_deref() == Some("amount")), "{e:?}");
    assert_eq!(client.payment_intent(&paid.id).await.unwrap().status, "succeeded");

    // Nobody answers: a transport error, so the caller retries with its key.
    let gone = StripeClient::new(StripeClient::http(), "http://127.0.0.1:9", "sk_test_fakekey123456");
    assert!(matches!(gone.payment_intent("pi_x").await.unwrap_err(), StripeError::Transport(_)));
}

/// A webhook endpoint for the fake to send to: what it received.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>) {
    use axum::http::HeaderMap;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let sig = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                keep.lock().unwrap().push((sig, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn fill(page: &str, number: &str) -> reqwest::Response {
    no_redirects()
        .post(page)
        .form(&[("card_number", number), ("expiry", "12/30"), ("cvc", "123")])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_sessions_on_the_fake_card_page() {
    let fake = FakeStripe::default();
    let base = fake.start().await.unwrap();
    let (hook, received) = receiver().await;
    fake.send_events_to(&hook, "whsec_fake_endpoint_secret");
    let client = StripeClient::new(StripeClient::http(), &base, "sk_test_fakekey123456");
    let customer = client.create_customer(Some("bo@example.com"), None, "bo", "cus-bo").await.unwrap();
    let success = "https://shop.example/done?cs={CHECKOUT_SESSION_ID}";

    // Payment mode: the page charges, saves the card and goes to successUrl.
    let meta = json!({"kelviq_session": "cs_ours"});
    let session = client
        .create_checkout_session(
            &customer.id,
            Some((2500, "USD", "Pro")),
            success,
            Some("https://shop.example/back"),
            meta.clone(),
            "cs-1",
        )
        .await
        .unwrap();
    let page = session.url.clone().unwrap();
    let html = reqwest::get(&page).await.unwrap().text().await.unwrap();
    assert!(html.contains("Pay 25.00 USD") && html.contains("https://shop.example/back"), "{html}");
    let declined = fill(&page, "4000 0000 0000 0002").await;
    assert_eq!(declined.status(), 200);
    assert!(declined.text().await.unwrap().contains("Your card was declined."));
    let paid = fill(&page, "4242 4242 4242 4242").await;
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()["location"], format!("https://shop.example/done?cs={}", session.id).as_str());
    let done = client.checkout_session(&session.id).await.unwrap();
    assert_eq!((done.status.as_str(), done.payment_status.as_str()), ("complete", "paid"));
    assert_eq!(done.metadata["kelviq_session"], "cs_ours");
    let intent = client.payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!((intent.status.as_str(), intent.amount), ("succeeded", 2500));
    let saved = client.payment_methods(&customer.id).await.unwrap().data;
    assert_eq!(saved.len(), 1, "the declined card was not kept; the paying one was");

    // The event, signed, at the endpoint; and readable from the API.
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (header, body) = received.lock().unwrap()[0].clone();
    let now = chrono::Utc::now().timestamp();
    let secrets = ["whsec_fake_endpoint_secret"];
    assert!(kelviq_core::stripe::verify_header(&header, &body, &secrets, now, 300).is_ok(), "{header}");
    assert!(kelviq_core::stripe::verify_header(&header, &body, &["whsec_other"], now, 300).is_err());
    let event: kelviq_server::providers::stripe::objects::Event = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (event.kind.as_str(), event.data.object["id"].as_str()),
        ("checkout.session.completed", Some(session.id.as_str()))
    );
    assert_eq!(client.event(&event.id).await.unwrap().kind, "checkout.session.completed");
    assert_eq!(fake.deliver(&fake.events()[0]).await, Some(200), "an event can be sent again");

    // 3-D Secure on the page: approve, then the payment goes through.
    let session = client
        .create_checkout_session(&customer.id, Some((900, "usd", "Pro")), success, None, meta.clone(), "cs-2")
        .await
        .unwrap();
    let page = session.url.clone().unwrap();
    let ask = fill(&page, "4000 0025 0000 3155").await;
    assert!(ask.text().await.unwrap().contains("Authenticate your payment"));
    let approved =
        no_redirects().post(format!("{page}/authenticate")).form(&[("result", "approve")]).send().await.unwrap();
    assert_eq!(approved.status(), 303);
    let done = client.checkout_session(&session.id).await.unwrap();
    assert_eq!(client.payment_intent(done.payment_intent.as_deref().unwrap()).await.unwrap().status, "succeeded");

    // Setup mode: only the card is saved.
    let session = client.create_checkout_session(&customer.id, None, success, None, meta, "cs-3").await.unwrap();
    assert_eq!(fill(session.url.as_deref().unwrap(), "4000 0000 0000 0341").await.status(), 303);
    let done = client.checkout_session(&session.id).await.unwrap();
    assert_eq!((done.mode.as_str(), done.payment_status.as_str()), ("setup", "no_payment_required"));
    let seti = client.setup_intent(done.setup_intent.as_deref().unwrap()).await.unwrap();
    assert_eq!(seti.status, "succeeded");
    let card = seti.payment_method.unwrap();
    let e = client.charge_off_session(&customer.id, &card, 100, "usd", json!({}), "later-1").await.unwrap_err();
    assert_eq!(e.card_code(), Some("card_declined"), "0341 attaches, then fails off session");
}
