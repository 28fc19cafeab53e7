//! Plan and seat changes in the portal, and the merchant's storefront
//! settings that govern them, through the real server on SQLite and
//! PostgreSQL: the portal's preview shows the very amounts
//! `update/preview/` answers, the change charges them, quantities change
//! where the plan sells them, and the settings narrow the plans, turn
//! changes off, change how customers cancel and hide usage.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use crate::hardening::{upload, PNG};
use crate::portal::{fetch, form_token, page, post_form, sign_in};
use serde_json::{json, Value};

/// `$13.71 USD` from minor units, as the portal writes amounts.
fn dollars(units: &Value) -> String {
    let u = units.as_i64().unwrap();
    format!("${}.{:02} USD", u / 100, u % 100)
}

/// The text of the element with `id`.
fn text_of(html: &str, id: &str) -> String {
    let open = format!("id=\"{id}\">");
    let at = html.find(&open).unwrap_or_else(|| panic!("#{id} in {html}")) + open.len();
    html[at..at + html[at..].find('<').unwrap()].to_string()
}

async fn get(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let res = fetch(s, cookie, path).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn signed_in(s: &TestServer, api: &Api<'_>, customer: &str) -> String {
    let session = api.ok("/api/v1/portal/session/", json!({"customerId": customer})).await;
    sign_in(s, session["customerPortalUrl"].as_str().unwrap(), session["token"].as_str().unwrap()).await
}

async fn plan_and_seat_changes_match_the_preview(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    let sub = api.buy("basic", "MONTHLY", "ann", "4242424242424242", json!({})).await;
    api.advance_to("2026-02-14T10:00:00Z").await;
    let cookie = signed_in(&s, &api, "ann").await;
    let (_, home) = page(&s, Some(&cookie)).await;
    let change = format!("/portal/demo/subscriptions/{sub}/change");
    assert!(home.contains(&format!("href=\"{change}\"")), "a change link");

    // The choices: the product's recurring plans with a price in USD.
    let (status, html) = get(&s, &cookie, &change).await;
    assert_eq!(status, 200, "{html}");
    for offered in ["pro|MONTHLY", "basic|YEARLY", "trial|MONTHLY", "basic|MONTHLY"] {
        assert!(html.contains(&format!("value=\"{offered}\"")), "{offered} offered");
    }
    assert!(!html.contains("lifetime|") && !html.contains("free|"), "no one-time or free plans");

    // The preview shows what update/preview/ answers, to the cent.
    let (status, html) = get(&s, &cookie, &format!("{change}?choice=pro%7CMONTHLY")).await;
    assert_eq!(status, 200, "{html}");
    let body = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY"});
    let preview = api.ok(&format!("/api/v1/subscriptions/{sub}/update/preview/"), body).await;
    assert_eq!(text_of(&html, "charge-now"), dollars(&preview["amountChargedImmediatelyUnits"]));
    assert_eq!(text_of(&html, "recurring"), dollars(&preview["recurringAmountUnits"]));
    assert_eq!(
        text_of(&html, "next-invoice"),
        format!("{} on 2026-02-28", dollars(&preview["nextInvoice"]["amountDueUnits"]))
    );
    assert_eq!(api.orders("ann").await.len(), 1, "a preview changes nothing");

    // Confirming needs the form token, then charges the previewed amount.
    let form = form_token(&html);
    assert_eq!(post_form(&s, &cookie, &change, &[("choice", "pro|MONTHLY")]).await, 403);
    assert_eq!(post_form(&s, &cookie, &change, &[("form", &form), ("choice", "pro|MONTHLY")]).await, 303);
    let after = api.sub(&sub).await;
    assert_eq!(after["plan"]["identifier"], "pro");
    let orders = api.orders("ann").await;
    assert_eq!(orders.last().unwrap()["amountTotalUnits"], preview["amountChargedImmediatelyUnits"]);
    assert!(api.event_types().await.contains(&"subscription.plan_changed".to_string()));

    // Seats: pro sells them per unit; three seats cost what the API says.
    let (_, html) = get(&s, &cookie, &change).await;
    assert!(html.contains("name=\"qty:seats\" value=\"1\""), "one seat now: {html}");
    let (status, html) = get(&s, &cookie, &format!("{change}?qty%3Aseats=3")).await;
    assert_eq!(status, 200, "{html}");
    let body = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "features": [{"identifier": "seats", "quantity": 3}]});
    let preview = api.ok(&format!("/api/v1/subscriptions/{sub}/update/preview/"), body).await;
    assert_eq!(text_of(&html, "charge-now"), dollars(&preview["amountChargedImmediatelyUnits"]));
    assert_eq!(text_of(&html, "recurring"), dollars(&preview["recurringAmountUnits"]));
    assert_eq!(post_form(&s, &cookie, &change, &[("form", &form), ("qty:seats", "3")]).await, 303);
    assert_eq!(api.sub(&sub).await["amountUnits"], preview["recurringAmountUnits"]);
    assert_eq!(preview["recurringAmountUnits"], 4500, "$30 and 3 seats at $5");

    // Out of bounds: the plan's own limits, as a message on the page.
    let (status, html) = get(&s, &cookie, &format!("{change}?qty%3Aseats=51")).await;
    assert_eq!(status, 400);
    assert!(html.contains("The quantity of seats must be from 1 to 50."), "{html}");
    let (status, _) = get(&s, &cookie, &format!("{change}?qty%3Aseats=-1")).await;
    assert_eq!(status, 400);

    // Another customer's subscription is not there.
    api.buy("basic", "MONTHLY", "bob", "4242424242424242", json!({})).await;
    let bob = signed_in(&s, &api, "bob").await;
    assert_eq!(get(&s, &bob, &change).await.0, 404);
}

async fn settings_govern_the_portal(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    let sub = api.buy("basic", "MONTHLY", "cy", "4242424242424242", json!({})).await;
    let cookie = signed_in(&s, &api, "cy").await;
    let form = form_token(&page(&s, Some(&cookie)).await.1);
    let change = format!("/portal/demo/subscriptions/{sub}/change");

    let defaults = api.get("/api/v1/storefront-settings/").await.1;
    assert_eq!(
        defaults,
        json!({"allowPlanChanges": true, "allowedPlans": null, "allowQuantityChanges": true,
            "cancellationMode": "AT_PERIOD_END", "showUsage": true, "displayName": null, "logoUrl": null,
            "brandColor": null, "supportEmail": null, "termsUrl": null, "privacyUrl": null})
    );

    // Bad input names its field and changes nothing.
    for (body, field) in [
        (json!({"brandColor": "blue"}), "brandColor"),
        (json!({"termsUrl": "javascript:alert(1)"}), "termsUrl"),
        (json!({"supportEmail": "not mail"}), "supportEmail"),
        (json!({"allowedPlans": ["nope"]}), "allowedPlans"),
        (json!({"cancellationMode": "SOMETIMES"}), "cancellationMode"),
        (json!({"displayName": "a\u{7}b"}), "displayName"),
        (json!({"displayName": "Ok", "logo": "unknown-key"}), "logo"),
    ] {
        let (status, e) = api.send(reqwest::Method::PATCH, "/api/v1/storefront-settings/", Some(body)).await;
        assert_eq!((status, e[field].is_array()), (400, true), "{field}: {e}");
    }
    assert_eq!(api.get("/api/v1/storefront-settings/").await.1, defaults);

    // Only basic's yearly price; cancelling through support; no usage.
    let (status, set) = api
        .send(
            reqwest::Method::PATCH,
            "/api/v1/storefront-settings/",
            Some(
                json!({"allowedPlans": ["basic"], "cancellationMode": "DISABLED", "supportEmail": "help@suite.example",
                "showUsage": false, "brandColor": "#14D", "displayName": "Suite Inc.",
                "termsUrl": "https://suite.example/terms"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!((set["brandColor"].clone(), set["allowedPlans"].clone()), (json!("#1144dd"), json!(["basic"])));
    let (_, html) = get(&s, &cookie, &change).await;
    assert!(html.contains("value=\"basic|YEARLY\"") && !html.contains("value=\"pro|MONTHLY\""), "{html}");
    let (status, html) = get(&s, &cookie, &format!("{change}?choice=pro%7CMONTHLY")).await;
    assert_eq!(status, 400);
    assert!(html.contains("This plan is not offered here."));
    assert_eq!(post_form(&s, &cookie, &change, &[("form", &form), ("choice", "pro|MONTHLY")]).await, 400);
    assert_eq!(api.sub(&sub).await["plan"]["identifier"], "basic", "nothing changed");
    let (_, home) = page(&s, Some(&cookie)).await;
    assert!(home.contains("To cancel, write to") && home.contains("help@suite.example"), "{home}");
    assert!(!home.contains("Why are you cancelling?"));
    let cancel = format!("/portal/demo/subscriptions/{sub}/cancel");
    assert_eq!(post_form(&s, &cookie, &cancel, &[("form", &form), ("reason", "OTHER")]).await, 403);
    assert_eq!(api.sub(&sub).await["endDate"], json!(null));

    // Changes off: no link, and the page refuses a change.
    api.send(
        reqwest::Method::PATCH,
        "/api/v1/storefront-settings/",
        Some(json!({"allowPlanChanges": false, "allowedPlans": null, "cancellationMode": "IMMEDIATELY"})),
    )
    .await;
    let (_, home) = page(&s, Some(&cookie)).await;
    assert!(!home.contains(&format!("href=\"{change}\"")));
    assert_eq!(post_form(&s, &cookie, &change, &[("form", &form), ("choice", "basic|YEARLY")]).await, 400);
    // Cancelling at once ends it now.
    assert_eq!(post_form(&s, &cookie, &cancel, &[("form", &form), ("reason", "UNUSED")]).await, 303);
    assert_eq!(api.sub(&sub).await["status"], "canceled", "{}", api.sub(&sub).await);

    // The logo: an image uploaded through /media/, served publicly; a page is refused.
    let html_file = upload(&api, "logo.png", "image/png", b"<html><script>x</script></html>").await;
    let (status, e) =
        api.send(reqwest::Method::PATCH, "/api/v1/storefront-settings/", Some(json!({"logo": html_file}))).await;
    assert_eq!((status, e["logo"].is_array()), (400, true), "{e}");
    let png = upload(&api, "logo.png", "image/png", PNG).await;
    let set = api.send(reqwest::Method::PATCH, "/api/v1/storefront-settings/", Some(json!({"logo": png}))).await.1;
    let logo = set["logoUrl"].as_str().expect("a logo").to_string();
    let res = reqwest::get(&logo).await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    // Replacing it removes the old file.
    let png2 = upload(&api, "logo2.png", "image/png", PNG).await;
    let set = api.send(reqwest::Method::PATCH, "/api/v1/storefront-settings/", Some(json!({"logo": png2}))).await.1;
    assert_ne!(set["logoUrl"].as_str().unwrap(), logo);
    assert_eq!(reqwest::get(&logo).await.unwrap().status(), 404);
    let set = api.send(reqwest::Method::PATCH, "/api/v1/storefront-settings/", Some(json!({"logo": null}))).await.1;
    assert_eq!(set["logoUrl"], json!(null));

    // Settings are per environment: production keeps the defaults.
    let prod_key = s.key_for(kelviq_core::keys::KeyKind::Server, kelviq_core::Environment::Production).await;
    let prod = Api::with_key(&s, &prod_key);
    assert_eq!(prod.get("/api/v1/storefront-settings/").await.1["cancellationMode"], "AT_PERIOD_END");
}

on_both_backends!(plan_and_seat_changes_match_the_preview, settings_govern_the_portal);
