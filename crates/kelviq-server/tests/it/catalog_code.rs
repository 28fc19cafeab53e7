//! Catalog as code: export a tested sandbox catalog, apply it to production,
//! and prove apply is idempotent, honours --dry-run, and refuses bad files
//! before writing anything.

use crate::common;

use common::{Backend, TestServer};
use kelviq_core::{Environment, Tenant};
use kelviq_sdk::catalog::{CreateFeature, CreateProduct, UpdateProductSettings};
use kelviq_sdk::plans::CreatePlan;
use kelviq_server::catalog_file::{apply, export, ApplyMode};
use serde_json::json;

async fn build_sandbox_catalog(srv: &TestServer) {
    let sdk = srv.sdk();
    let c = sdk.catalog();
    let product = c
        .products()
        .create(CreateProduct { name: "Suite".into(), tax_code: "saas".into(), ..Default::default() })
        .await
        .unwrap();
    c.products()
        .update_settings("suite", UpdateProductSettings { vpn: Some(false), ..Default::default() })
        .await
        .unwrap();
    c.features()
        .create(CreateFeature {
            name: "API Calls".into(),
            feature_type: "METER".into(),
            feature_details: Some(
                json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "call", "plural": "calls"}}),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    c.features()
        .create(CreateFeature {
            name: "Tokens".into(),
            feature_type: "METER".into(),
            feature_details: Some(json!({"featureSubType": "RAW_EVENTS", "units": {"singular": "token", "plural": "tokens"}})),
            meter: Some(json!({"aggregation": {"function": "SUM", "field": "tokens"}, "filters": [[{"property": "event_name", "operator": "equals", "value": "llm.call"}]]})),
            metadata: Some(json!({"teamKey": "ai"}).as_object().unwrap().clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    c.features()
        .create(CreateFeature { name: "SSO".into(), feature_type: "BOOLEAN".into(), ..Default::default() })
        .await
        .unwrap();
    let plans = c.plans();
    plans
        .create(CreatePlan { name: "Starter".into(), product: product.id.clone(), ..Default::default() })
        .await
        .unwrap();
    plans
        .replace_prices(
            "starter",
            vec![json!({"priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 14, "chargeCatalogPrice": [
                {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 29.99}}, {"chargePeriod": "YEARLY", "priceData": {"amount": 299}}]},
                {"feature": "tokens", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "MONTHLY", "tiers": [
                    {"upTo": 1000, "unitAmount": 0}, {"upTo": "inf", "unitAmount": 0.001, "flatAmount": 5}]}]}]})],
        )
        .await
        .unwrap();
    plans
        .add_features("starter", vec![("api-calls".into(), json!({"value": 1000, "hardLimit": true, "rollover": {"enabled": true, "percentage": 50, "limit": 750}}))])
        .await
        .unwrap();
    plans.publish("starter", false, false).await.unwrap();
    plans
        .create(CreatePlan {
            name: "Pro".into(),
            product: product.id.clone(),
            parent: Some("starter".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    plans.replace_prices("pro", vec![json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 99}}]}]})]).await.unwrap();
    plans
        .add_features("pro", vec![("api-calls".into(), json!({"value": 100000})), ("sso".into(), json!({}))])
        .await
        .unwrap();
    plans.publish("pro", false, false).await.unwrap();
    plans.create(CreatePlan { name: "Lab".into(), product: product.id, ..Default::default() }).await.unwrap();
}

fn body(text: &str) -> String {
    text.lines().skip(1).collect::<Vec<_>>().join("\n")
}

async fn export_apply_round_trip(backend: Backend) {
    let srv = TestServer::start(backend).await;
    build_sandbox_catalog(&srv).await;
    let sandbox = export(&srv.store, &srv.tenant).await.unwrap();
    for needle in [
        "[[products]]",
        "identifier = \"suite\"",
        "[[features]]",
        "function = \"SUM\"",
        "[[plans]]",
        "parent = \"starter\"",
        "amount = 29.99",
        "unit_amount = 0.001",
        "published = false",
        "teamKey = \"ai\"",
    ] {
        assert!(sandbox.contains(needle), "export lacks {needle}:\n{sandbox}");
    }
    let production = Tenant { env: Environment::Production, ..srv.tenant.clone() };
    let now = common::start_time();

    // Dry run first: it says what it would do and does nothing.
    let planned = apply(&srv.store, &production, &sandbox, ApplyMode::DryRun, now).await.unwrap();
    assert!(planned.contains(&"create product suite".to_string()), "{planned:?}");
    assert_eq!(srv.store.count_products(&production, None).await.unwrap(), 0);

    let done = apply(&srv.store, &production, &sandbox, ApplyMode::Write, now).await.unwrap();
    assert_eq!(done, planned, "the dry run told the truth");
    for change in [
        "create feature tokens",
        "create plan starter",
        "publish plan starter",
        "create plan pro",
        "publish plan pro",
        "create plan lab",
    ] {
        assert!(done.contains(&change.to_string()), "{change} missing from {done:?}");
    }
    assert!(!done.contains(&"publish plan lab".to_string()));
    let copied = export(&srv.store, &production).await.unwrap();
    assert_eq!(body(&copied), body(&sandbox), "production now matches the file");
    assert!(copied.starts_with("# kelviq catalog (production environment)"));

    // Applying the same file again changes nothing.
    assert_eq!(apply(&srv.store, &production, &sandbox, ApplyMode::Write, now).await.unwrap(), Vec::<String>::new());
    let pro = srv.store.find_plan(&production, "pro", None).await.unwrap().unwrap();
    assert_eq!((pro.version, pro.fields.parent.as_deref()), (1, Some("starter")));

    // An edited file: a new price, a renamed feature, a plan removed.
    let edited = sandbox.replace("amount = 99", "amount = 89").replace("name = \"SSO\"", "name = \"Single sign-on\"");
    let lab_start = edited.find("[[plans]]\nidentifier = \"lab\"").expect("lab is exported");
    let edited = format!(
        "{}{}",
        &edited[..lab_start],
        edited[lab_start..].split_once("\n[[").map(|(_, rest)| format!("[[{rest}")).unwrap_or_default()
    );
    let before = export(&srv.store, &production).await.unwrap();
    let planned = apply(&srv.store, &production, &edited, ApplyMode::DryRun, now).await.unwrap();
    assert_eq!(export(&srv.store, &production).await.unwrap(), before, "a dry run writes nothing");
    let done = apply(&srv.store, &production, &edited, ApplyMode::Write, now).await.unwrap();
    assert_eq!(done, planned);
    assert!(
        done.contains(&"update plan pro".to_string()) && done.contains(&"publish plan pro".to_string()),
        "{done:?}"
    );
    assert!(
        done.contains(&"update feature sso".to_string()) && done.contains(&"archive plan lab".to_string()),
        "{done:?}"
    );
    let pro = srv.store.find_plan(&production, "pro", None).await.unwrap().unwrap();
    assert_eq!((pro.version, pro.status), (2, kelviq_core::plans::PlanStatus::Published));
    assert_eq!(body(&export(&srv.store, &production).await.unwrap()), body(&edited));
    assert_eq!(apply(&srv.store, &production, &edited, ApplyMode::Write, now).await.unwrap(), Vec::<String>::new());
    srv.stop().await;
}

async fn bad_files_write_nothing(backend: Backend) {
    let srv = TestServer::start(backend).await;
    build_sandbox_catalog(&srv).await;
    let sandbox = export(&srv.store, &srv.tenant).await.unwrap();
    let production = Tenant { env: Environment::Production, ..srv.tenant.clone() };
    let now = common::start_time();
    let bad = [
        ("not toml", "[[products]\nidentifier ="),
        ("bad tax code", &*sandbox.replace("tax_code = \"saas\"", "tax_code = \"food\"")),
        ("unknown feature", &*sandbox.replace("feature = \"api-calls\"", "feature = \"nope\"")),
        ("bad amount", &*sandbox.replace("amount = 29.99", "amount = 29.999")),
        ("missing parent", &*sandbox.replace("parent = \"starter\"", "parent = \"ghost\"")),
    ];
    for (what, text) in bad {
        let e = apply(&srv.store, &production, text, ApplyMode::Write, now).await;
        assert!(e.is_err(), "{what} was accepted");
        assert_eq!(srv.store.count_products(&production, None).await.unwrap(), 0, "{what} wrote something");
        assert_eq!(srv.store.count_features(&production, None).await.unwrap(), 0, "{what} wrote something");
    }
    // A feature's type cannot change under an existing identifier.
    let changed = sandbox.replace(
        "name = \"SSO\"\ndescription = \"\"\ntype = \"BOOLEAN\"",
        "name = \"SSO\"\ndescription = \"\"\ntype = \"CUSTOMIZABLE\"",
    );
    assert_ne!(changed, sandbox);
    let e = apply(&srv.store, &srv.tenant, &changed, ApplyMode::Write, now).await.unwrap_err();
    assert!(e.to_string().contains("cannot change"), "{e}");
    srv.stop().await;
}

/// Discount codes and promotions travel with the catalog: the same codes
/// (a promotion's coupons too) in production, idempotent, edits applied.
async fn codes_and_promotions_round_trip(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = crate::common::api::Api::new(&srv);
    api.ok("/api/v1/catalog/products/", json!({"name": "Suite", "identifier": "suite", "taxCode": "saas"})).await;
    api.ok("/api/v1/catalog/plans/", json!({"name": "Pro", "identifier": "pro", "product": "suite"})).await;
    api.ok(
        "/api/v1/catalog/plans/pro/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]}],
            "localPrices": [{"countries": ["IN"], "currency": "INR", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 499}}]}]}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/pro/publish/", json!({})).await;
    let (_, product) = api.get("/api/v1/catalog/products/suite/").await;
    api.ok(
        "/api/v1/discounts/",
        json!({"code": "LAUNCH", "percentage": 12.5, "duration": "REPEATING", "durationInCycles": 3, "maxRedemptions": 50,
            "products": [product["id"]], "expiresAt": "2027-01-01T00:00:00Z", "minimumAmount": {"currency": "USD", "amount": 10}}),
    )
    .await;
    api.ok("/api/v1/discounts/", json!({"code": "FIVE", "discountType": "FIXED", "amounts": [{"currency": "USD", "amount": 5}], "plans": ["pro"]})).await;
    let promo = api
        .ok(
            "/api/v1/promotions/",
            json!({"name": "PPP", "plans": ["pro"], "groupPercentages": [{"group": "TIER_4", "percentage": 40}],
                "countryOverrides": [{"countryCode": "BR", "percentage": 30}], "widgets": [{"backgroundColor": "#112233"}], "tor": false}),
        )
        .await;
    let india = promo["couponCodes"].as_array().unwrap().iter().find(|c| c["countryCode"] == "IN").unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let sandbox = export(&srv.store, &srv.tenant).await.unwrap();
    for needle in [
        "[[discounts]]",
        "code = \"LAUNCH\"",
        "products = [\"suite\"]",
        "[[promotions]]",
        &india,
        "background_color = \"#112233\"",
        "[[plans.prices.local_prices]]",
    ] {
        assert!(sandbox.contains(needle), "export lacks {needle}:\n{sandbox}");
    }
    let production = Tenant { env: Environment::Production, ..srv.tenant.clone() };
    let now = common::start_time();
    let planned = apply(&srv.store, &production, &sandbox, ApplyMode::DryRun, now).await.unwrap();
    let done = apply(&srv.store, &production, &sandbox, ApplyMode::Write, now).await.unwrap();
    assert_eq!(done, planned, "the dry run told the truth");
    for change in ["create discount FIVE", "create discount LAUNCH", "create promotion \"PPP\""] {
        assert!(done.contains(&change.to_string()), "{change} missing from {done:?}");
    }
    assert_eq!(body(&export(&srv.store, &production).await.unwrap()), body(&sandbox), "production matches the file");
    let coupon = srv.store.find_discount_by_code(&production, &india).await.unwrap().expect("the same coupon code");
    assert_eq!((coupon.countries.clone(), coupon.plans.clone()), (vec!["IN".to_string()], vec!["pro".to_string()]));
    assert_eq!(apply(&srv.store, &production, &sandbox, ApplyMode::Write, now).await.unwrap(), Vec::<String>::new());

    // Edits: a code's terms, a code dropped, a banner changed, then what a promotion targets.
    let five = sandbox.find("[[discounts]]\ncode = \"FIVE\"").expect("FIVE is exported");
    let next =
        |from: usize| ["\n[[discounts]]\n", "\n[[promotions]]\n"].iter().filter_map(|h| sandbox[from..].find(h)).min();
    let five_end = next(five + 1).map(|i| five + 1 + i + 1).unwrap();
    let edited = format!("{}{}", &sandbox[..five], &sandbox[five_end..])
        .replace("percentage = 12.5", "percentage = 15.0")
        .replace("#112233", "#445566");
    let done = apply(&srv.store, &production, &edited, ApplyMode::Write, now).await.unwrap();
    assert_eq!(
        done,
        ["update discount LAUNCH", "delete discount FIVE", "update promotion \"PPP\""].map(String::from).to_vec()
    );
    assert_eq!(body(&export(&srv.store, &production).await.unwrap()), body(&edited));
    let retargeted = edited.replace("tor = false", "tor = true");
    let done = apply(&srv.store, &production, &retargeted, ApplyMode::Write, now).await.unwrap();
    assert_eq!(done, ["replace promotion \"PPP\" (what it targets changed)".to_string()]);
    let after = srv.store.find_discount_by_code(&production, &india).await.unwrap().expect("the coupon kept its code");
    assert_ne!(after.id, coupon.id, "a new coupon");
    assert_eq!(apply(&srv.store, &production, &retargeted, ApplyMode::Write, now).await.unwrap(), Vec::<String>::new());
    // A bad code, or one naming a product the file lacks, is refused before anything is written.
    let before = export(&srv.store, &production).await.unwrap();
    for bad in [
        "\n[[discounts]]\ncode = \"BAD\"\npercentage = 500.0\n",
        "\n[[discounts]]\ncode = \"ELSEWHERE\"\npercentage = 5.0\nproducts = [\"nope\"]\n",
    ] {
        let file = format!("{}{bad}", retargeted.replace("name = \"Pro\"", "name = \"Pro Max\""));
        let e = apply(&srv.store, &production, &file, ApplyMode::Write, now).await.unwrap_err();
        assert!(e.to_string().starts_with("discount "), "{e}");
        assert_eq!(export(&srv.store, &production).await.unwrap(), before, "nothing written");
    }
    srv.stop().await;
}

on_both_backends!(export_apply_round_trip, bad_files_write_nothing, codes_and_promotions_round_trip);
