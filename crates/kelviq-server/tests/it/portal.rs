//! The customer portal through the real server, on SQLite and PostgreSQL:
//! a session asked for by the merchant's server, the signed link moved into
//! a path-scoped HttpOnly cookie, the page listing subscriptions, licence
//! keys and invoices; cancel at period end and undo, deactivating a
//! device, downloading an invoice, each seen through the API; forms without
//! their token, another customer's records and an expired link refused.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "Studio", "identifier": "studio", "taxCode": "software"})).await;
    api.ok(
        "/api/v1/catalog/plans/",
        json!({"name": "Studio Pro", "identifier": "studio-pro", "product": "studio",
            "license": {"enabled": true, "activationLimitEnabled": true, "activationLimit": 2},
            "links": [{"name": "Download the app", "url": "https://studio.example/download"}]}),
    )
    .await;
    let units = json!({"singular": "render", "plural": "renders"});
    api.ok(
        "/api/v1/catalog/features/",
        json!({"name": "Renders", "identifier": "renders", "featureType": "METER",
            "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}}),
    )
    .await;
    api.ok(
        "/api/v1/catalog/plans/studio-pro/features/",
        json!({"planEntitlements": [{"feature": "renders", "details": {"value": 100, "reset": "EVERY_MONTH",
            "resetTime": "SUBSCRIPTION_START", "hardLimit": true}}]}),
    )
    .await;
    api.ok(
        "/api/v1/catalog/plans/studio-pro/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 25}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/studio-pro/publish/", json!({})).await;
}

/// Opens the signed link: the cookie it sets.
pub(crate) async fn sign_in(s: &TestServer, url: &str, token: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = http.get(format!("{url}?token={token}")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/portal/demo/");
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/portal/demo/") && cookie.contains("SameSite=Lax"));
    let _ = s;
    cookie.split(';').next().unwrap().to_string()
}

pub(crate) async fn page(s: &TestServer, cookie: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(s.url("/portal/demo/"));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A portal address with a session's cookie.
pub(crate) async fn fetch(s: &TestServer, cookie: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new().get(s.url(path)).header(COOKIE, cookie).send().await.unwrap()
}

pub(crate) fn form_token(html: &str) -> String {
    let at = html.find("name=\"form\" value=\"").expect("a form") + "name=\"form\" value=\"".len();
    html[at..at + 32].to_string()
}

pub(crate) async fn post_form(s: &TestServer, cookie: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    http.post(s.url(path)).header(COOKIE, cookie).form(form).send().await.unwrap().status().as_u16()
}

async fn portal_sessions_and_actions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let sub = api.buy("studio-pro", "MONTHLY", "cus_portal", "4242424242424242", json!({})).await;
    let key = api.sub(&sub).await["license"][0]["licenseKey"].as_str().unwrap().to_string();
    let (_, a) = api.post("/api/v1/license/activate/", json!({"licenseKey": key, "instanceName": "Workstation"})).await;

    // The session, as the official SDKs read it.
    let session = api.ok("/api/v1/portal/session/", json!({"customerId": "cus_portal"})).await;
    let token = session["token"].as_str().unwrap().to_string();
    let (uuid1, uuid2) = token.strip_prefix("cpt-").unwrap().split_once(':').unwrap();
    assert!(uuid::Uuid::parse_str(uuid1).is_ok() && uuid::Uuid::parse_str(uuid2).is_ok(), "{token}");
    assert_eq!(session["email"], "cus_portal@example.com");
    let url = session["customerPortalUrl"].as_str().unwrap().to_string();
    assert_eq!(url, s.url("/portal/demo/"));
    let (status, body) = api.post("/api/v1/portal/session/", json!({"customerId": "nobody"})).await;
    assert_eq!((status, body), (400, json!({"customerId": ["Invalid customer id"]})));
    api.ok("/api/v1/customers/", json!({"customerId": "no_mail"})).await;
    let (status, body) = api.post("/api/v1/portal/session/", json!({"customer_id": "no_mail"})).await;
    assert_eq!((status, body), (400, json!({"customerId": ["Customer does not have an email"]})));

    api.usage("cus_portal", "renders", 7, "DELTA").await;

    // The signed link, then the page by the cookie alone.
    assert_eq!(page(&s, None).await.0, 401);
    let cookie = sign_in(&s, &url, &token).await;
    let (status, html) = page(&s, Some(&cookie)).await;
    assert_eq!(status, 200, "{html}");
    let usage_row = "<tr><td>renders</td><td>7</td><td>100</td><td>2026-02-28</td></tr>";
    let link = "<a href=\"https://studio.example/download\" rel=\"noopener noreferrer\">Download the app</a>";
    for shown in ["Studio Pro", key.as_str(), "Workstation", "INV-000001", "Test mode", "Next renewal", usage_row, link]
    {
        assert!(html.contains(shown), "{shown} on the page");
    }
    assert!(!html.contains("<script"), "no scripts");
    let form = form_token(&html);

    // Cancel at period end with a reason, then undo; each visible through the API.
    assert_eq!(
        post_form(&s, &cookie, &format!("/portal/demo/subscriptions/{sub}/cancel"), &[("reason", "TOO_EXPENSIVE")])
            .await,
        403,
        "no form token"
    );
    let status = post_form(
        &s,
        &cookie,
        &format!("/portal/demo/subscriptions/{sub}/cancel"),
        &[("form", &form), ("reason", "TOO_EXPENSIVE"), ("comment", "cheaper elsewhere")],
    )
    .await;
    assert_eq!(status, 303);
    let after = api.sub(&sub).await;
    assert_eq!(
        (after["endDate"].clone(), after["cancellationFeedback"].clone()),
        (json!("2026-02-28"), json!("TOO_EXPENSIVE"))
    );
    assert_eq!(after["cancellationReason"], "CANCELLED_BY_CUSTOMER");
    assert!(page(&s, Some(&cookie)).await.1.contains("Keep my subscription"));
    assert_eq!(
        post_form(&s, &cookie, &format!("/portal/demo/subscriptions/{sub}/resume"), &[("form", &form)]).await,
        303
    );
    let after = api.sub(&sub).await;
    assert_eq!((after["endDate"].clone(), after["status"].clone()), (json!(null), json!("active")));

    // Deactivate a device.
    let license =
        api.get("/api/v1/licenses/?customer_id=cus_portal").await.1["results"][0]["id"].as_str().unwrap().to_string();
    let instance = a["instanceId"].as_str().unwrap();
    let path = format!("/portal/demo/licenses/{license}/instances/{instance}/deactivate");
    assert_eq!(post_form(&s, &cookie, &path, &[("form", &form)]).await, 303);
    let (status, v) = api.post("/api/v1/license/validate/", json!({"licenseKey": key, "instanceId": instance})).await;
    assert_eq!((status, v["code"].clone()), (404, json!("INSTANCE_NOT_FOUND")));

    // The plan's downloadable files, for a customer who has the plan now.
    let manual = crate::hardening::upload(&api, "manual.pdf", "application/pdf", b"%PDF-manual").await;
    let (status, plan) = api
        .send(reqwest::Method::PATCH, "/api/v1/catalog/plans/studio-pro/", Some(json!({"fileKeys": [manual]})))
        .await;
    assert_eq!(status, 200, "{plan}");
    let file_id = plan["files"][0]["id"].as_str().unwrap().to_string();
    let (_, html) = page(&s, Some(&cookie)).await;
    assert!(html.contains(&format!("<a href=\"/portal/demo/files/{file_id}\" download>manual.pdf</a>")), "{html}");
    let res = fetch(&s, &cookie, &format!("/portal/demo/files/{file_id}")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF-manual");
    // The API lists them on the subscription, with a signed download link.
    let files = api.sub(&sub).await["files"].clone();
    assert_eq!((files[0]["id"].as_str(), files[0]["name"].as_str()), (Some(file_id.as_str()), Some("manual.pdf")));
    let signed = files[0]["downloadUrl"].as_str().unwrap();
    assert!(signed.starts_with(&s.url("/api/v1/media/files/")) && signed.contains("signature="), "{signed}");
    assert_eq!(reqwest::get(signed).await.unwrap().bytes().await.unwrap().as_ref(), b"%PDF-manual");

    // The invoice, as PDF.
    let invoice =
        api.get("/api/v1/invoices/?customer_id=cus_portal").await.1["results"][0]["id"].as_str().unwrap().to_string();
    let res = fetch(&s, &cookie, &format!("/portal/demo/invoices/{invoice}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(res.bytes().await.unwrap().starts_with(b"%PDF"));

    // Another customer's session cannot touch this customer's records.
    api.buy("studio-pro", "MONTHLY", "cus_other", "4242424242424242", json!({})).await;
    let other = api.ok("/api/v1/portal/session/", json!({"customerId": "cus_other"})).await;
    let other_cookie = sign_in(&s, &url, other["token"].as_str().unwrap()).await;
    let other_form = form_token(&page(&s, Some(&other_cookie)).await.1);
    let status = post_form(
        &s,
        &other_cookie,
        &format!("/portal/demo/subscriptions/{sub}/cancel"),
        &[("form", &other_form), ("reason", "UNUSED")],
    )
    .await;
    assert_eq!(status, 404);
    let res = fetch(&s, &other_cookie, &format!("/portal/demo/invoices/{invoice}")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(api.sub(&sub).await["endDate"], json!(null));
    // A customer without the plan cannot download its files.
    api.ok("/api/v1/customers/", json!({"customerId": "cus_none", "email": "none@example.com"})).await;
    let none = api.ok("/api/v1/portal/session/", json!({"customerId": "cus_none"})).await;
    let none_cookie = sign_in(&s, &url, none["token"].as_str().unwrap()).await;
    let res = fetch(&s, &none_cookie, &format!("/portal/demo/files/{file_id}")).await;
    assert_eq!(res.status(), 404);

    // After an hour the link and its cookie stop working, with a clear page.
    api.advance_to("2026-01-31T11:00:01Z").await;
    let (status, html) = page(&s, Some(&cookie)).await;
    assert_eq!(status, 401);
    assert!(html.contains("This link has expired"));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(http.get(format!("{url}?token={token}")).send().await.unwrap().status(), 401);
}

on_both_backends!(portal_sessions_and_actions);
