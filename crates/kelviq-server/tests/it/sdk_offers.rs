//! The Rust SDK's discount, promotion and offering modules against the real
//! server, async and blocking, on SQLite and PostgreSQL.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use kelviq_sdk::discounts::{CurrencyAmount, DiscountParams};
use kelviq_sdk::offering::OfferingParams;
use kelviq_sdk::promotions::{GroupPercentage, PromotionParams};
use serde_json::json;

async fn the_sdk_sells_with_codes_and_promotions(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("geoip"), "3325256704,3325256959,IN\n").unwrap();
    let file = dir.path().join("geoip");
    let s = TestServer::start_with(backend, move |c| c.geoip_file = Some(file)).await;
    let api = Api::new(&s);
    let product =
        api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Pro", "identifier": "pro", "product": "app"})).await;
    api.ok(
        "/api/v1/catalog/plans/pro/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/pro/publish/", json!({})).await;

    let sdk = s.sdk();
    let code = sdk.discounts().create(DiscountParams::percentage("spring", "12.5").repeating(3)).await.unwrap();
    assert_eq!((code.code.as_str(), code.percentage, code.duration_in_cycles), ("SPRING", Some(12.5), Some(3)));
    let fixed = sdk
        .discounts()
        .create(DiscountParams::fixed("FIVE", vec![CurrencyAmount::new("USD", "5.25")]).forever())
        .await
        .unwrap();
    assert_eq!(fixed.amounts, vec![CurrencyAmount::new("USD", "5.25")]);
    let e = sdk.discounts().create(DiscountParams::percentage("SPRING", "1")).await.unwrap_err();
    assert_eq!(e.status(), Some(400));

    let promo = sdk
        .promotions()
        .create(PromotionParams {
            name: Some("PPP".into()),
            group_percentages: Some(vec![GroupPercentage { group: "TIER_4".into(), percentage: 40.0 }]),
            ..Default::default()
        })
        .await
        .unwrap();
    let india = promo.coupon_codes.iter().find(|c| c.country_code == "IN").unwrap().code.clone();
    assert_eq!(sdk.promotions().country_groups().await.unwrap().count, 5);
    let pid = product["id"].as_str().unwrap().to_string();
    let offering = sdk
        .offering()
        .get(&pid, OfferingParams { ip_address: Some("198.51.100.4".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((offering.country_code.as_deref(), offering.plans[0].original_price["MONTHLY"]), (Some("IN"), 20.0));

    let (base, server, client) =
        (s.base_url.clone(), s.server_key.clone(), s.key_for(KeyKind::Client, Environment::Sandbox).await);
    let (promo_id, code_id) = (promo.id.clone(), code.id.clone());
    tokio::task::spawn_blocking(move || {
        let build = |key: &str| {
            kelviq_sdk::Kelviq::builder()
                .access_token(key)
                .base_url(&base)
                .edge_api_url(&base)
                .build_blocking()
                .unwrap()
        };
        let (server, client) = (build(&server), build(&client));
        // The edge answer with a client key: this test's address is not in the range file.
        let answer = client.promotions().get(&promo_id).unwrap();
        assert_eq!((answer.percentage, answer.code.as_str(), answer.widgets.len()), (0.0, "", 1));
        assert_eq!(client.promotions().list(None).unwrap_err().status(), Some(403));
        let renamed = server
            .promotions()
            .update(&promo_id, PromotionParams { name: Some("Parity".into()), ..Default::default() })
            .unwrap();
        assert_eq!(renamed.name, "Parity");
        assert_eq!(server.discounts().list(None).unwrap().count, 2);
        let changed = server
            .discounts()
            .update(&code_id, DiscountParams { max_redemptions: Some(Some(7)), ..Default::default() })
            .unwrap();
        assert_eq!(changed.max_redemptions, Some(7));
        server.discounts().delete(&code_id).unwrap();
        assert_eq!(server.discounts().retrieve(&code_id).unwrap_err().status(), Some(404));
        let offering = client.offering().get(&pid, OfferingParams::default()).unwrap();
        assert_eq!(offering.plans.len(), 1);
        server.promotions().delete(&promo_id).unwrap();
    })
    .await
    .unwrap();
    // The coupon went with its promotion.
    let (status, e) = api
        .post("/api/v1/checkout/", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "discountCode": india}))
        .await;
    assert_eq!((status, e["discountCode"].is_array()), (400, true));
}

on_both_backends!(the_sdk_sells_with_codes_and_promotions);
