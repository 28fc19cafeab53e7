//! Purchasing-power-parity promotions through the real server, on SQLite
//! and PostgreSQL, with a tiny generated IP range file (Tor's format) and
//! network lists: the edge answer by the forwarded address and by the
//! trusted country header, the security checks, the files reloaded without
//! a restart; a country's coupon at checkout with strict country matching;
//! what may change; the country groups.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use reqwest::Method;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;

const BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// A /24 as a line of Tor's `geoip`: decimal numbers.
fn tor_line(net: [u8; 3], country: &str) -> String {
    let start = u32::from(Ipv4Addr::new(net[0], net[1], net[2], 0));
    format!("{start},{},{country}\n", start + 255)
}

fn write_ranges(dir: &Path, mexico_or: &str) {
    let text = format!(
        "# generated for the test\n{}{}{}",
        tor_line([198, 51, 100], "IN"),
        tor_line([203, 0, 113], mexico_or),
        tor_line([192, 0, 2], "??"),
    );
    std::fs::write(dir.join("geoip"), text).unwrap();
}

async fn start(backend: Backend, dir: &Path) -> TestServer {
    write_ranges(dir, "MX");
    std::fs::write(dir.join("geoip6"), "2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,IN\n").unwrap();
    std::fs::write(dir.join("vpn.txt"), "# exits\n198.51.100.128/25\n").unwrap();
    std::fs::write(dir.join("tor.txt"), "203.0.113.66\n").unwrap();
    let dir = dir.to_path_buf();
    TestServer::start_with(backend, move |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into(), "::1/128".into()];
        c.geo_country_header = Some("CF-IPCountry".into());
        c.geoip_file = Some(dir.join("geoip"));
        c.geoip6_file = Some(dir.join("geoip6"));
        c.vpn_networks_file = Some(dir.join("vpn.txt"));
        c.tor_networks_file = Some(dir.join("tor.txt"));
        c.geo_reload_interval_ms = 50;
    })
    .await
}

/// The edge answer for a visitor behind our (trusted) proxy.
async fn edge(s: &TestServer, key: &str, id: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = crate::common::http().get(s.url(&format!("/api/v1/promotions?promotion_id={id}"))).bearer_auth(key);
    if !headers.iter().any(|(k, _)| *k == "user-agent") {
        req = req.header("user-agent", BROWSER);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Pro", "identifier": "pro", "product": "app"})).await;
    api.ok(
        "/api/v1/catalog/plans/pro/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/pro/publish/", json!({})).await;
}

async fn promotions_answer_by_location(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(backend, dir.path()).await;
    let api = Api::new(&s);
    seed(&api).await;
    let promo = api
        .ok(
            "/api/v1/promotions/",
            json!({"name": "PPP", "plans": ["pro"],
                "groupPercentages": [{"group": "TIER_4", "percentage": 40}, {"group": "TIER_3", "percentage": 20}],
                "countryOverrides": [{"countryCode": "br", "percentage": 35}, {"countryCode": "MX", "percentage": 25}],
                "widgets": [{"type": "BANNER", "backgroundColor": "#000000", "placement": "bottom"}]}),
        )
        .await;
    let id = promo["id"].as_str().unwrap();
    let coupons = promo["couponCodes"].as_array().unwrap();
    let coupon = |cc: &str| -> String {
        coupons.iter().find(|c| c["countryCode"] == cc).unwrap_or_else(|| panic!("{cc}"))["code"]
            .as_str()
            .unwrap()
            .into()
    };
    assert!(coupons.iter().all(|c| c["code"].as_str().unwrap().len() == 11));
    assert!(coupons.iter().all(|c| c["countryCode"] != "US"), "TIER_1 has no discount");
    assert_eq!(promo["widgets"][0]["placement"], "bottom");
    assert_eq!(
        (promo["vpn"].clone(), promo["crawler"].clone(), promo["strictCountry"].clone()),
        (json!(true), json!(true), json!(true))
    );
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;

    // The forwarded address through the range file (IPv4 and IPv6).
    let (status, india) = edge(&s, &client, id, &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(status, 200, "{india}");
    assert_eq!(
        india,
        json!({"country": "India", "countryCode": "IN", "percentage": 40.0, "code": coupon("IN"), "message": "",
            "widgets": [promo["widgets"][0].clone()],
            "security": {"vpn": false, "tor": false, "proxy": false, "relay": false, "crawler": false}})
    );
    let (_, v6) = edge(&s, &client, id, &[("x-forwarded-for", "2001:db8:1::9")]).await;
    assert_eq!(v6["countryCode"], "IN");
    let (_, mexico) = edge(&s, &client, id, &[("x-forwarded-for", "203.0.113.5")]).await;
    assert_eq!(
        (mexico["percentage"].clone(), mexico["code"].clone()),
        (json!(25.0), json!(coupon("MX"))),
        "the override wins"
    );
    // The trusted header wins over the database.
    let (_, header) = edge(&s, &client, id, &[("x-forwarded-for", "203.0.113.5"), ("cf-ipcountry", "BR")]).await;
    assert_eq!((header["country"].clone(), header["percentage"].clone()), (json!("Brazil"), json!(35.0)));
    // Unknown and undiscounted countries get 0.
    let (_, unknown) = edge(&s, &client, id, &[("x-forwarded-for", "192.0.2.1")]).await;
    assert_eq!(
        (unknown["countryCode"].clone(), unknown["percentage"].clone(), unknown["code"].clone()),
        (json!(""), json!(0.0), json!(""))
    );
    let (_, us) = edge(&s, &client, id, &[("cf-ipcountry", "US")]).await;
    assert_eq!((us["country"].clone(), us["percentage"].clone()), (json!("United States"), json!(0.0)));

    // Security: a listed VPN or Tor exit, a crawler: nothing, and why.
    let (_, vpn) = edge(&s, &client, id, &[("x-forwarded-for", "198.51.100.200")]).await;
    assert_eq!(
        (vpn["countryCode"].clone(), vpn["percentage"].clone(), vpn["code"].clone()),
        (json!("IN"), json!(0.0), json!(""))
    );
    assert_eq!(vpn["security"], json!({"vpn": true, "tor": false, "proxy": false, "relay": false, "crawler": false}));
    let (_, tor) = edge(&s, &client, id, &[("x-forwarded-for", "203.0.113.66")]).await;
    assert_eq!((tor["percentage"].clone(), tor["security"]["tor"].clone()), (json!(0.0), json!(true)));
    let (_, bot) = edge(
        &s,
        &client,
        id,
        &[("x-forwarded-for", "198.51.100.7"), ("user-agent", "Googlebot/2.1 (+http://www.google.com/bot.html)")],
    )
    .await;
    assert_eq!((bot["percentage"].clone(), bot["security"]["crawler"].clone()), (json!(0.0), json!(true)));

    // The range file changes: reloaded without a restart.
    write_ranges(dir.path(), "BR");
    let mut now_brazil = Value::Null;
    for _ in 0..100 {
        (_, now_brazil) = edge(&s, &client, id, &[("x-forwarded-for", "203.0.113.5")]).await;
        if now_brazil["countryCode"] == "BR" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((now_brazil["countryCode"].clone(), now_brazil["percentage"].clone()), (json!("BR"), json!(35.0)));

    // 404 for an unknown id; a client key cannot list or make promotions.
    let (status, _) = edge(&s, &client, &uuid::Uuid::new_v4().to_string(), &[]).await;
    assert_eq!(status, 404);
    let (status, _) = Api::with_key(&s, &client).get("/api/v1/promotions/").await;
    assert_eq!(status, 403);
    let (_, list) = api.get("/api/v1/promotions/").await;
    assert_eq!(list["count"], 1);
    let (_, codes) = api.get("/api/v1/discounts/").await;
    assert_eq!(codes["count"], 0, "coupons belong to their promotion, not the code list");

    // Only the name and banner change; deleting removes the answer and the coupons.
    let path = format!("/api/v1/promotions/{id}/");
    let (status, e) = api.send(Method::PATCH, &path, Some(json!({"name": "Renamed", "countryOverrides": []}))).await;
    assert_eq!((status, e["countryOverrides"].is_array()), (400, true), "{e}");
    let (status, renamed) = api.send(Method::PATCH, &path, Some(json!({"name": "Renamed"}))).await;
    assert_eq!((status, renamed["name"].clone()), (200, json!("Renamed")));
    let (status, _) = api.send(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = edge(&s, &client, id, &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(status, 404);
    let (status, e) = api
        .post("/api/v1/checkout/", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "discountCode": coupon("IN")}))
        .await;
    assert_eq!((status, e["discountCode"].is_array()), (400, true));
}

async fn a_coupon_sells_at_its_country(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(backend, dir.path()).await;
    let api = Api::new(&s);
    seed(&api).await;
    let promo = api
        .ok("/api/v1/promotions/", json!({"name": "PPP", "groupPercentages": [{"group": "TIER_4", "percentage": 40}]}))
        .await;
    let code = promo["couponCodes"].as_array().unwrap().iter().find(|c| c["countryCode"] == "IN").unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let open = |customer: &'static str, country: Option<&'static str>| {
        let mut body = json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "customerId": customer,
            "successUrl": "https://x.example/", "discountCode": code});
        if let Some(c) = country {
            body["defaultBillingCountry"] = json!(c);
        }
        api.ok("/api/v1/checkout/", body)
    };
    // Billed elsewhere: refused at completion (strict country), and nothing is sold.
    let session = open("abroad", None).await;
    let sid = session["checkoutSessionId"].as_str().unwrap();
    let (status, e) = api
        .post(
            &format!("/api/v1/checkout/sessions/{sid}/complete/"),
            json!({"card": "4242424242424242", "email": "a@example.com", "billingCountry": "US"}),
        )
        .await;
    assert_eq!((status, e), (400, json!({"discountCode": ["This discount code is for buyers billed in India."]})));
    let (_, page) = api.get("/api/v1/orders/").await;
    assert_eq!(page["count"], 0);
    // A known billing country elsewhere is refused when the session opens.
    let (status, _) = api
        .post(
            "/api/v1/checkout/",
            json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/",
            "discountCode": code, "defaultBillingCountry": "DE"}),
        )
        .await;
    assert_eq!(status, 400);
    // Billed in India: 40 % off, every renewal.
    let session = open("local", Some("IN")).await;
    let sid = session["checkoutSessionId"].as_str().unwrap();
    let done = api
        .ok(
            &format!("/api/v1/checkout/sessions/{sid}/complete/"),
            json!({"card": "4242424242424242", "email": "l@example.com"}),
        )
        .await;
    assert_eq!(
        (done["order"]["amountDiscount"].clone(), done["order"]["amountTotal"].clone()),
        (json!("8.00"), json!("12.00"))
    );
    api.advance_to("2026-02-28T10:00:00Z").await;
    let orders = api.orders("local").await;
    assert_eq!(orders[1]["amountTotal"], "12.00", "a promotion's coupon lasts");

    // Country groups: listed, and editable (a country moved leaves its old group).
    let (_, groups) = api.get("/api/v1/promotions/country-groups/").await;
    let names: Vec<&str> = groups["results"].as_array().unwrap().iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert_eq!(names, ["TIER_1", "TIER_2", "TIER_3", "TIER_4", "TIER_5"]);
    let (status, moved) = api
        .send(Method::PATCH, "/api/v1/promotions/country-groups/TIER_4/", Some(json!({"countries": ["in", "BR"]})))
        .await;
    assert_eq!((status, moved), (200, json!({"group": "TIER_4", "countries": ["BR", "IN"]})));
    let (_, groups) = api.get("/api/v1/promotions/country-groups/").await;
    assert!(!groups["results"][2]["countries"].as_array().unwrap().contains(&json!("BR")), "BR left TIER_3");
    let (status, e) =
        api.send(Method::PATCH, "/api/v1/promotions/country-groups/TIER_4/", Some(json!({"countries": ["XX"]}))).await;
    assert_eq!((status, e["countries"].is_array()), (400, true));
    let (status, _) =
        api.send(Method::PATCH, "/api/v1/promotions/country-groups/TIER_9/", Some(json!({"countries": []}))).await;
    assert_eq!(status, 404);
    // Bad input, named field by field.
    let (status, e) = api
        .post(
            "/api/v1/promotions/",
            json!({"groupPercentages": [{"group": "TIER_9", "percentage": 10}], "countryOverrides": [{"countryCode": "QQ", "percentage": 101}],
                "plans": ["ghost"], "widgets": [{"backgroundColor": "red", "placement": "left"}]}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    for field in ["name", "groupPercentages", "countryOverrides", "plans", "widgets"] {
        assert!(e[field].is_array(), "{field} in {e}");
    }
    let (status, e) = api
        .post(
            "/api/v1/promotions/",
            json!({"name": "Nothing", "groupPercentages": [{"group": "TIER_4", "percentage": 0}]}),
        )
        .await;
    assert_eq!((status, e["groupPercentages"].is_array()), (400, true), "{e}");
}

on_both_backends!(promotions_answer_by_location, a_coupon_sells_at_its_country);
