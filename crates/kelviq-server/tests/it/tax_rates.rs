//! Tax rates through the real server, on SQLite and PostgreSQL: made,
//! listed, filtered, changed and deleted with the server key; one per
//! country and region; bad input named field by field, nothing written;
//! other environments and client keys see nothing; the Rust SDK, async
//! and blocking.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use kelviq_sdk::tax_rates::{TaxRateParams, TaxSettingsParams};
use serde_json::json;

async fn tax_rates_are_managed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    let de = api.ok("/api/v1/tax-rates/", json!({"name": "DE VAT", "country": "de", "percentage": 19})).await;
    assert_eq!(
        (de["country"].clone(), de["region"].clone(), de["percentage"].clone()),
        (json!("DE"), json!(null), json!(19.0))
    );
    let ca = api
        .ok("/api/v1/tax-rates/", json!({"name": "California", "country": "US", "region": "ca", "percentage": "7.25"}))
        .await;
    assert_eq!((ca["region"].clone(), ca["percentage"].clone()), (json!("CA"), json!(7.25)));
    let us = api.ok("/api/v1/tax-rates/", json!({"name": "US", "country": "US", "percentage": 0})).await;

    // One per country and region.
    let (status, e) = api.post("/api/v1/tax-rates/", json!({"name": "again", "country": "DE", "percentage": 7})).await;
    assert_eq!(
        (status, e.clone()),
        (400, json!({"country": ["A tax rate for this country and region already exists."]}))
    );
    // Every bad field named, nothing written.
    let (status, e) = api
        .post(
            "/api/v1/tax-rates/",
            json!({"name": "bad\u{7}", "country": "DEU", "region": "CA-ON", "percentage": 100.5}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    for field in ["name", "country", "region", "percentage"] {
        assert!(e[field].is_array(), "{field} in {e}");
    }
    let (status, e) = api.post("/api/v1/tax-rates/", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        e,
        json!({"name": ["This field is required."], "country": ["This field is required."], "percentage": ["This field is required."]})
    );
    let (_, all) = api.get("/api/v1/tax-rates/").await;
    assert_eq!(all["count"], 3, "{all}");
    assert_eq!(all["results"][0]["id"], de["id"], "oldest first");
    let (_, only_us) = api.get("/api/v1/tax-rates/?country=us&page_size=1").await;
    assert_eq!((only_us["count"].clone(), only_us["results"].as_array().unwrap().len()), (json!(2), 1));
    let (status, _) = api.get("/api/v1/tax-rates/?country=USA").await;
    assert_eq!(status, 400);

    let id = ca["id"].as_str().unwrap();
    let (status, changed) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/tax-rates/{id}/"),
            Some(json!({"percentage": 8.875, "name": "CA"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["percentage"].clone(), changed["name"].clone(), changed["region"].clone()),
        (json!(8.875), json!("CA"), json!("CA"))
    );
    // Moving it onto a taken place is refused; the rate stays as it was.
    let (status, e) =
        api.send(reqwest::Method::PATCH, &format!("/api/v1/tax-rates/{id}/"), Some(json!({"region": null}))).await;
    assert_eq!((status, e["country"].is_array()), (400, true), "{e}");
    let (_, kept) = api.get(&format!("/api/v1/tax-rates/{id}/")).await;
    assert_eq!((kept["region"].clone(), kept["percentage"].clone()), (json!("CA"), json!(8.875)));

    // Deleted: gone from the API, and its place is free again.
    let (status, _) =
        api.send(reqwest::Method::DELETE, &format!("/api/v1/tax-rates/{}/", us["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.get(&format!("/api/v1/tax-rates/{}/", us["id"].as_str().unwrap())).await;
    assert_eq!(status, 404);
    api.ok("/api/v1/tax-rates/", json!({"name": "US again", "country": "US", "percentage": 0})).await;
    let (status, _) = api.get("/api/v1/tax-rates/not-a-uuid/").await;
    assert_eq!(status, 404);

    // Scoped to the environment; client keys read nothing.
    let production = s.key_for(KeyKind::Server, Environment::Production).await;
    let (_, none) = Api::with_key(&s, &production).get("/api/v1/tax-rates/").await;
    assert_eq!(none["count"], 0, "{none}");
    let (status, _) = Api::with_key(&s, &production).get(&format!("/api/v1/tax-rates/{id}/")).await;
    assert_eq!(status, 404);
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;
    let (status, _) = Api::with_key(&s, &client).get("/api/v1/tax-rates/").await;
    assert!(status == 401 || status == 403, "{status}");
}

/// The Rust SDK's tax-rate module, async and blocking.
async fn the_sdk_manages_tax_rates(backend: Backend) {
    let s = TestServer::start(backend).await;
    let rates = s.sdk();
    let rates = rates.tax_rates();
    let ny = rates.create(TaxRateParams::new("New York", "us", "8.875").region("ny")).await.unwrap();
    assert_eq!((ny.country.as_str(), ny.region.as_deref(), ny.percentage), ("US", Some("NY"), 8.875));
    let changed =
        rates.update(&ny.id, TaxRateParams { percentage: Some("8.5".into()), ..Default::default() }).await.unwrap();
    assert_eq!(changed.percentage, 8.5);
    let e = rates.create(TaxRateParams::new("again", "US", "1").region("NY")).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    let (base, key) = (s.base_url.clone(), s.server_key.clone());
    let listed = tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(key).base_url(&base).build_blocking().unwrap();
        let fr = client.tax_rates().create(TaxRateParams::new("FR TVA", "FR", "20")).unwrap();
        assert_eq!(client.tax_rates().retrieve(&fr.id).unwrap().region, None);
        let listed = client.tax_rates().list(Some("FR"), None).unwrap();
        client.tax_rates().delete(&fr.id).unwrap();
        assert_eq!(client.tax_rates().retrieve(&fr.id).unwrap_err().status(), Some(404));
        let changes = TaxSettingsParams { origin_country: Some(Some("FR".into())), ..Default::default() };
        assert_eq!(client.tax_rates().update_settings(changes).unwrap().origin_country.as_deref(), Some("FR"));
        listed.count
    })
    .await
    .unwrap();
    assert_eq!(listed, 1);
    assert_eq!(rates.list(None, None).await.unwrap().count, 1);
    let changes = TaxSettingsParams {
        default_tax_behavior: Some(Some("INCLUSIVE".into())),
        reverse_charge: Some(true),
        ..Default::default()
    };
    let settings = rates.update_settings(changes).await.unwrap();
    assert_eq!((settings.default_tax_behavior.as_deref(), settings.reverse_charge), (Some("INCLUSIVE"), true));
    assert_eq!(rates.settings().await.unwrap().origin_country.as_deref(), Some("FR"), "kept");
    let bad = TaxSettingsParams { default_tax_behavior: Some(Some("NEVER".into())), ..Default::default() };
    assert_eq!(rates.update_settings(bad).await.unwrap_err().status(), Some(400));
}

/// An environment's tax settings: the default tax behaviour of prices that
/// leave it UNSPECIFIED, and the B2B reverse charge for buyers with a tax id
/// of their country's format outside the merchant's own country.
async fn tax_settings_and_the_reverse_charge(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    let (status, settings) = api.get("/api/v1/tax-settings/").await;
    assert_eq!(
        (status, settings),
        (200, json!({"defaultTaxBehavior": null, "reverseCharge": false, "originCountry": null}))
    );
    let (status, e) = api
        .send(
            reqwest::Method::PATCH,
            "/api/v1/tax-settings/",
            Some(json!({"defaultTaxBehavior": "SOMETIMES", "originCountry": "FRA"})),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["defaultTaxBehavior"].is_array() && e["originCountry"].is_array(), "{e}");
    assert_eq!(api.get("/api/v1/tax-settings/").await.1["reverseCharge"], false, "nothing written");
    // A tax id must have its country's format.
    let (status, e) = api
        .post("/api/v1/customers/", json!({"customerId": "bad", "billingAddress": {"country": "DE", "taxId": "DE12"}}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["billingAddress"][0].as_str().unwrap_or_else(|| panic!("{e}")).contains("DE12"), "{e}");
    assert_eq!(api.get("/api/v1/customers/bad/").await.0, 404);

    api.ok("/api/v1/catalog/products/", json!({"name": "Tools", "identifier": "tools", "taxCode": "saas"})).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Team", "identifier": "team", "product": "tools"})).await;
    api.ok(
        "/api/v1/catalog/plans/team/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/team/publish/", json!({})).await;
    api.ok("/api/v1/tax-rates/", json!({"name": "VAT", "country": "DE", "percentage": 19})).await;
    api.ok("/api/v1/tax-rates/", json!({"name": "TVA", "country": "FR", "percentage": 20})).await;
    let patch = json!({"reverseCharge": true, "originCountry": "fr", "defaultTaxBehavior": "INCLUSIVE"});
    let (status, settings) = api.send(reqwest::Method::PATCH, "/api/v1/tax-settings/", Some(patch)).await;
    assert_eq!(
        (status, settings),
        (200, json!({"defaultTaxBehavior": "INCLUSIVE", "reverseCharge": true, "originCountry": "FR"}))
    );
    for (customer, address) in [
        ("biz", json!({"country": "DE", "taxId": "de 123.456.789"})),
        ("con", json!({"country": "DE"})),
        ("home", json!({"country": "FR", "taxId": "FRAB123456789"})),
    ] {
        let c = api.ok("/api/v1/customers/", json!({"customerId": customer, "billingAddress": address})).await;
        if customer == "biz" {
            assert_eq!(c["billingAddress"]["taxId"], "DE123456789", "kept normalised: {c}");
        }
        api.buy("team", "MONTHLY", customer, "4242424242424242", json!({})).await;
    }
    let invoice = |customer: &'static str| {
        let api = &api;
        async move {
            let (_, page) = api.get(&format!("/api/v1/invoices/?customer_id={customer}")).await;
            page["results"][0].clone()
        }
    };
    let lines = |i: &serde_json::Value| -> Vec<(String, String)> {
        i["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["kind"].as_str().unwrap().into(), l["amount"].as_str().unwrap().into()))
            .collect()
    };
    let pair = |k: &str, a: &str| (k.to_string(), a.to_string());
    // A German business: reverse charged, no tax, the line says why.
    let biz = invoice("biz").await;
    assert_eq!(lines(&biz), [pair("BASE", "10.00"), pair("TAX", "0.00")]);
    assert_eq!(biz["total"], "10.00");
    let note = biz["lines"][1]["description"].as_str().unwrap();
    assert!(note.contains("Reverse charge") && note.contains("DE123456789"), "{note}");
    // A German consumer: the environment's default makes the price include its VAT.
    let con = invoice("con").await;
    assert_eq!(lines(&con), [pair("BASE", "8.40"), pair("TAX", "1.60")]);
    // A French business buys in the merchant's own country: taxed.
    let home = invoice("home").await;
    assert_eq!(lines(&home), [pair("BASE", "8.33"), pair("TAX", "1.67")]);
    // A tax id given at checkout: a wrong one is named and the session stays open; a right one is reverse charged.
    let session = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "team", "chargePeriod": "MONTHLY", "customerId": "viaco",
                   "successUrl": "https://x.example/", "defaultBillingCountry": "AT"}),
        )
        .await;
    let complete = format!("/api/v1/checkout/sessions/{}/complete/", session["checkoutSessionId"].as_str().unwrap());
    let (status, e) = api
        .post(&complete, json!({"card": "4242424242424242", "email": "v@example.com", "taxId": "DE999999999"}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["taxId"][0].as_str().unwrap_or_else(|| panic!("{e}")).contains("AT"), "{e}");
    api.ok(&complete, json!({"card": "4242424242424242", "email": "v@example.com", "taxId": "ATU12345678"})).await;
    let (_, viaco) = api.get("/api/v1/customers/viaco/").await;
    let address = &viaco["billingAddress"];
    assert_eq!((&address["country"], &address["taxId"]), (&json!("AT"), &json!("ATU12345678")), "{viaco}");
    assert_eq!(invoice("viaco").await["lines"][1]["amount"], "0.00");
    // The hosted page asks for it.
    let open = api
        .ok(
            "/api/v1/checkout/",
            json!({"planIdentifier": "team", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/"}),
        )
        .await;
    let url = s.url(&format!("/checkout/{}/", open["checkoutSessionId"].as_str().unwrap()));
    let page = crate::common::http().get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"tax_id\""), "{page}");
    // The document shows the buyer's tax id.
    let id = biz["id"].as_str().unwrap();
    let html = crate::common::http()
        .get(s.url(&format!("/api/v1/invoices/{id}/document/?format=html")))
        .bearer_auth(&s.server_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Tax id DE123456789") && html.contains("Reverse charge"), "{html}");

    // Back to the server's default (exclusive): the next renewal adds the tax.
    let (status, _) =
        api.send(reqwest::Method::PATCH, "/api/v1/tax-settings/", Some(json!({"defaultTaxBehavior": null}))).await;
    assert_eq!(status, 200);
    api.advance_to("2026-02-28T10:00:00Z").await;
    let (_, page) = api.get("/api/v1/invoices/?customer_id=con").await;
    assert_eq!(lines(&page["results"][0]), [pair("BASE", "10.00"), pair("TAX", "1.90")]);
    // Client keys see no settings.
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;
    let (status, _) = Api::with_key(&s, &client).get("/api/v1/tax-settings/").await;
    assert!(status == 401 || status == 403, "{status}");
}

on_both_backends!(tax_rates_are_managed, the_sdk_manages_tax_rates, tax_settings_and_the_reverse_charge);
