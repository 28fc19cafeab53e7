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
