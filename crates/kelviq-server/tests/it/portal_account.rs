//! The portal's account sections through the real server, on SQLite and
//! PostgreSQL: a card added through the sandbox provider, made the default
//! (the next renewal charges it), the old one removed and the default kept;
//! the same rules through the API; the billing address edited through the
//! customer service; orders listed with their invoices.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use crate::portal::{form_token, page, post_form, sign_in};
use serde_json::{json, Value};

async fn methods(api: &Api<'_>, customer: &str) -> Vec<Value> {
    let (_, page) = api.get(&format!("/api/v1/payment-methods/?customer_id={customer}")).await;
    page["results"].as_array().unwrap().clone()
}

fn default_last4(methods: &[Value]) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = methods
        .iter()
        .map(|m| (m["methodData"]["last4"].as_str().unwrap().to_string(), m["isDefault"].as_bool().unwrap()))
        .collect();
    v.sort();
    v
}

async fn cards_addresses_and_orders(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    // A card that pays once, then fails: the renewal would fail on it.
    let sub = api.buy("basic", "MONTHLY", "dee", "4000000000000341", json!({})).await;
    let session = api.ok("/api/v1/portal/session/", json!({"customerId": "dee"})).await;
    let url = session["customerPortalUrl"].as_str().unwrap().to_string();
    let cookie = sign_in(&s, &url, session["token"].as_str().unwrap()).await;
    let (_, html) = page(&s, Some(&cookie)).await;
    assert!(html.contains("visa ending in 0341") && html.contains("Default"), "{html}");
    let form = form_token(&html);

    // Add a card without making it the default.
    let add = "/portal/demo/payment-methods";
    assert_eq!(post_form(&s, &cookie, add, &[("card_number", "4242 4242 4242 4242"), ("expiry", "12/30")]).await, 403);
    let status =
        post_form(&s, &cookie, add, &[("form", &form), ("card_number", "4242 4242 4242 4242"), ("expiry", "12/30")])
            .await;
    assert_eq!(status, 303);
    let now = methods(&api, "dee").await;
    assert_eq!(default_last4(&now), vec![("0341".into(), true), ("4242".into(), false)]);
    assert_eq!(
        post_form(&s, &cookie, add, &[("form", &form), ("card_number", "1234"), ("expiry", "12/30")]).await,
        400
    );
    assert_eq!(methods(&api, "dee").await.len(), 2, "a bad card saves nothing");

    // Make it the default; the default cannot be removed, the other can.
    let new_id = now.iter().find(|m| m["methodData"]["last4"] == "4242").unwrap()["id"].as_i64().unwrap();
    let old_id = now.iter().find(|m| m["methodData"]["last4"] == "0341").unwrap()["id"].as_i64().unwrap();
    let base = "/portal/demo/payment-methods";
    assert_eq!(post_form(&s, &cookie, &format!("{base}/{new_id}/default"), &[("form", &form)]).await, 303);
    assert_eq!(default_last4(&methods(&api, "dee").await), vec![("0341".into(), false), ("4242".into(), true)]);
    assert_eq!(post_form(&s, &cookie, &format!("{base}/{new_id}/remove"), &[("form", &form)]).await, 400);
    let (status, e) = api.send(reqwest::Method::DELETE, &format!("/api/v1/payment-methods/{new_id}/"), None).await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("cannot be removed"), "{e}");
    assert_eq!(post_form(&s, &cookie, &format!("{base}/{old_id}/remove"), &[("form", &form)]).await, 303);
    assert_eq!(default_last4(&methods(&api, "dee").await), vec![("4242".into(), true)]);
    let types = api.event_types().await;
    for t in ["payment_method.created", "payment_method.updated", "payment_method.deleted"] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }

    // The next renewal charges the new default (the old card would fail).
    api.advance_to("2026-02-28T10:00:00Z").await;
    let after = api.sub(&sub).await;
    assert_eq!(after["status"], "active", "{after}");
    let orders = api.orders("dee").await;
    assert_eq!((orders.len(), orders[1]["status"].clone()), (2, json!("COMPLETE")));

    // Another customer cannot touch these methods; the API checks the tenant only.
    api.buy("basic", "MONTHLY", "eve", "4242424242424242", json!({})).await;
    let other = api.ok("/api/v1/portal/session/", json!({"customerId": "eve"})).await;
    let eve = sign_in(&s, &url, other["token"].as_str().unwrap()).await;
    let eve_form = form_token(&page(&s, Some(&eve)).await.1);
    assert_eq!(post_form(&s, &eve, &format!("{base}/{new_id}/default"), &[("form", &eve_form)]).await, 404);
    let (status, _) = api.send(reqwest::Method::POST, "/api/v1/payment-methods/999999/default/", None).await;
    assert_eq!(status, 404);
    let (status, _) =
        api.send(reqwest::Method::POST, &format!("/api/v1/payment-methods/{new_id}/default/"), None).await;
    assert_eq!(status, 204);

    // The billing address, through the customer service (a new session: a month went by).
    let again = api.ok("/api/v1/portal/session/", json!({"customerId": "dee"})).await;
    let cookie = sign_in(&s, &url, again["token"].as_str().unwrap()).await;
    let form = form_token(&page(&s, Some(&cookie)).await.1);
    let address = [
        ("form", form.as_str()),
        ("line1", "Hauptstraße 1"),
        ("postal_code", "10115"),
        ("city", "Berlin"),
        ("country", "de"),
    ];
    assert_eq!(post_form(&s, &cookie, "/portal/demo/billing-address", &address).await, 303);
    let (_, customer) = api.get("/api/v1/customers/dee/").await;
    assert_eq!(customer["billingAddress"]["country"], "DE", "{customer}");
    assert_eq!(customer["billingAddress"]["city"], "Berlin");
    let bad = [("form", form.as_str()), ("city", "Berlin"), ("country", "Germany")];
    assert_eq!(post_form(&s, &cookie, "/portal/demo/billing-address", &bad).await, 400);
    assert_eq!(api.get("/api/v1/customers/dee/").await.1["billingAddress"]["country"], "DE", "unchanged");
    assert!(api.event_types().await.contains(&"customer.updated".to_string()));

    // Orders with their invoices, the renewal among them.
    let (_, html) = page(&s, Some(&cookie)).await;
    assert!(html.contains("Orders and invoices") && html.contains("renewal"), "{html}");
    assert!(html.contains("INV-000002") && html.contains("value=\"Hauptstraße 1\""), "{html}");
}

on_both_backends!(cards_addresses_and_orders);
