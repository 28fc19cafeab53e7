//! An unpaid invoice's payment link in the sandbox, through the real
//! server on SQLite and PostgreSQL: the link of `invoice.payment_failed`
//! and the portal's "Pay now" open the same page; a card typed there is
//! saved as the default and pays the invoice; the subscription is active
//! again; a link with another token, or for another invoice, opens nothing.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use crate::portal::{page, sign_in};
use crate::stripe_selling::payment_link;
use serde_json::json;

async fn sandbox_payment_links(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    let sub = api.buy("basic", "MONTHLY", "dee", "4000000000000341", json!({})).await;
    api.advance_to(api.sub(&sub).await["billingPeriodEndTime"].as_str().unwrap()).await;
    assert_eq!(api.sub(&sub).await["status"], "past_due");
    let (_, invoices) = api.get("/api/v1/invoices/?customer_id=dee&status=PAYMENT_FAILED").await;
    let invoice = invoices["results"][0]["id"].as_str().unwrap().to_string();
    let link = payment_link(&s, &invoice).await;

    // The portal links the same page.
    let session = api.ok("/api/v1/portal/session/", json!({"customerId": "dee"})).await;
    let url = session["customerPortalUrl"].as_str().unwrap().to_string();
    let cookie = sign_in(&s, &url, session["token"].as_str().unwrap()).await;
    let (_, portal) = page(&s, Some(&cookie)).await;
    assert!(portal.contains(&link.replace('&', "&amp;")), "the portal's Pay now is the link: {portal}");

    let http = reqwest::Client::new();
    let (_, others) = api.get("/api/v1/invoices/?customer_id=dee&status=PAID").await;
    let paid_one = others["results"][0]["id"].as_str().unwrap();
    for bad in [
        link.replace("token=", "token=f"),
        link.replace(&invoice, paid_one),
        link.split("&token").next().unwrap().to_string(),
    ] {
        assert_eq!(http.get(s.url(&bad)).send().await.unwrap().status(), 404, "{bad}");
    }
    let html = http.get(s.url(&link)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("10.00") && html.contains("card_number"), "{html}");
    let declined =
        http.post(s.url(&link)).form(&[("card_number", "4000000000000002"), ("expiry", "12/30")]).send().await.unwrap();
    assert_eq!(declined.status(), 400);
    let res =
        http.post(s.url(&link)).form(&[("card_number", "4242424242424242"), ("expiry", "12/30")]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("This invoice is paid"));
    assert_eq!(api.sub(&sub).await["status"], "active");
    let (_, paid) = api.get(&format!("/api/v1/invoices/{invoice}/")).await;
    assert_eq!(paid["status"], "PAID");
    let again =
        http.post(s.url(&link)).form(&[("card_number", "4242424242424242"), ("expiry", "12/30")]).send().await.unwrap();
    assert_eq!(again.status(), 400, "a paid invoice is not paid twice");
}

on_both_backends!(sandbox_payment_links);
