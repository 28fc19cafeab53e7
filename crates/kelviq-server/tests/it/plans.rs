//! Plans end to end: the version lifecycle (draft, publish, draft-on-edit,
//! discard, supersede, archive), prices in minor units, plan entitlements,
//! validation, tenant isolation and concurrent edits, on both backends.

use crate::common;

use common::{http, Backend, TestServer};
use kelviq_core::Environment;
use kelviq_sdk::catalog::{CreateFeature, CreateProduct, ListCatalog};
use kelviq_sdk::plans::{CreatePlan, UpdatePlan};
use kelviq_sdk::Kelviq;
use serde_json::{json, Value};

async fn seed(sdk: &Kelviq) -> String {
    let product = sdk
        .catalog()
        .products()
        .create(CreateProduct { name: "Suite".into(), tax_code: "saas".into(), ..Default::default() })
        .await
        .unwrap();
    let features = sdk.catalog().features();
    features
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
    features
        .create(CreateFeature { name: "SSO".into(), feature_type: "BOOLEAN".into(), ..Default::default() })
        .await
        .unwrap();
    features
        .create(CreateFeature { name: "Seats".into(), feature_type: "CUSTOMIZABLE".into(), ..Default::default() })
        .await
        .unwrap();
    product.id
}

fn usd_price() -> Value {
    json!({
        "priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 14, "taxBehavior": "EXCLUSIVE",
        "chargeCatalogPrice": [
            {"feature": null, "priceModel": "FLAT", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": 29.99}},
                {"chargePeriod": "YEARLY", "priceData": {"amount": 299}}]},
            {"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"}, "tiers": [
                    {"flatAmount": 0, "unitAmount": 0, "upTo": 10000},
                    {"flatAmount": 0, "unitAmount": 0.001, "upTo": "inf"}]}]}
        ]
    })
}

fn eur_price() -> Value {
    json!({"priceType": "PAID", "currency": "EUR", "chargeCatalogPrice": [
        {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 27.5}}]}]})
}

async fn version_lifecycle(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let product_id = seed(&sdk).await;
    let plans = sdk.catalog().plans();

    let v1 = plans
        .create(CreatePlan { name: "Pro".into(), product: product_id.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(
        (v1.identifier.as_str(), v1.version, v1.is_latest, v1.status.as_deref()),
        ("pro", 1, false, Some("draft"))
    );
    assert_eq!(sdk.catalog().products().retrieve(&product_id).await.unwrap().plans, Some(vec![]));

    // Publishing needs a price.
    let e = plans.publish("pro", false, false).await.unwrap_err();
    assert_eq!(e.details(), Some(&json!({"nonFieldErrors": ["Add a price before publishing the plan."]})));

    let prices = plans.replace_prices("pro", vec![usd_price()]).await.unwrap();
    assert_eq!(prices.len(), 1);
    let flat = &prices[0].charge_catalog_price[0]["charges"];
    assert_eq!(flat[0]["priceData"]["amount"], json!(29.99));
    assert_eq!(flat[1]["priceData"]["amount"], json!(299.0));
    let tiers = &prices[0].charge_catalog_price[1]["charges"][0]["tiers"];
    assert_eq!((tiers[1]["unitAmount"].clone(), tiers[1]["upTo"].clone()), (json!(0.001), json!("inf")));
    assert_eq!((prices[0].free_trial, prices[0].trial_period), (true, 14));

    let with_features = plans
        .add_features(
            "pro",
            vec![
                ("api-calls".into(), json!({"value": 10000, "reset": "EVERY_MONTH", "hardLimit": true})),
                ("sso".into(), json!({"value": true})),
                ("seats".into(), json!({"value": 5})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(with_features.version, 1, "edits to a draft stay in the draft");

    assert_eq!(plans.publish("pro", false, false).await.unwrap(), 1);
    let published = plans.retrieve("pro", None).await.unwrap();
    assert_eq!((published.version, published.is_latest, published.status.as_deref()), (1, true, Some("published")));
    assert_eq!(sdk.catalog().products().retrieve(&product_id).await.unwrap().plans, Some(vec!["pro".to_string()]));
    let again = plans.publish("pro", false, false).await.unwrap_err();
    assert_eq!(again.details(), Some(&json!({"detail": "Plan is already published."})));
    let discard = plans.discard("pro").await.unwrap_err();
    assert_eq!(discard.details(), Some(&json!({"detail": "Plan is already published; cannot be discarded."})));

    // Editing a published plan makes a draft v2; v1 stays on offer untouched.
    srv.clock.advance(chrono::Duration::minutes(1));
    let v2 = plans.update("pro", UpdatePlan { name: Some("Pro 2".into()), ..Default::default() }).await.unwrap();
    assert_eq!((v2.version, v2.is_latest, v2.name.as_str()), (2, false, "Pro 2"));
    let still = plans.retrieve("pro", Some(1)).await.unwrap();
    assert_eq!((still.name.as_str(), still.is_latest), ("Pro", true));
    assert_eq!(
        plans.list(ListCatalog::default()).await.unwrap().results.iter().map(|p| p.version).collect::<Vec<_>>(),
        [2]
    );
    // The draft carries the published version's prices and features, and further edits stay in it.
    assert_eq!(plans.prices("pro", Some(2)).await.unwrap().count, 1);
    let row = plans.update_feature("pro", "api-calls", json!({"value": 20000, "hardLimit": true})).await.unwrap();
    assert_eq!(row.details["value"], 20000);
    assert_eq!(row.details["isInherited"], false);
    assert_eq!(plans.retrieve("pro", None).await.unwrap().version, 2);
    let v1_features = plans.features("pro", Some(1)).await.unwrap();
    let limit = |page: &kelviq_sdk::models::Page<kelviq_sdk::models::PlanFeature>| {
        page.results.iter().find(|r| r.feature.identifier == "api-calls").unwrap().details["value"].clone()
    };
    assert_eq!(limit(&v1_features), 10000);
    assert_eq!(limit(&plans.features("pro", None).await.unwrap()), 20000);
    assert_eq!(v1_features.count, 3);

    // Discard drops the draft; the published version is what remains.
    plans.discard("pro").await.unwrap();
    let back = plans.retrieve("pro", None).await.unwrap();
    assert_eq!((back.version, back.name.as_str(), back.is_latest), (1, "Pro", true));
    assert_eq!(plans.retrieve("pro", Some(2)).await.unwrap_err().status(), Some(404));

    // A new version must keep every currency the published one sells in.
    plans.replace_prices("pro", vec![eur_price()]).await.unwrap();
    let e = plans.publish("pro", true, true).await.unwrap_err();
    assert!(e.details().unwrap()["nonFieldErrors"][0].as_str().unwrap().contains("USD"), "{:?}", e.details());
    plans.replace_prices("pro", vec![usd_price(), eur_price()]).await.unwrap();
    assert_eq!(plans.publish("pro", true, true).await.unwrap(), 2);
    let old = plans.retrieve("pro", Some(1)).await.unwrap();
    assert_eq!((old.is_latest, old.status.as_deref()), (false, Some("superseded")));
    assert!(plans.retrieve("pro", Some(2)).await.unwrap().is_latest);

    // Removing a feature from the published plan drafts v3 without it.
    plans.remove_feature("pro", "sso").await.unwrap();
    let v3 = plans.retrieve("pro", None).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(plans.features("pro", None).await.unwrap().count, 2);
    assert_eq!(plans.features("pro", Some(2)).await.unwrap().count, 3);
    assert_eq!(plans.remove_feature("pro", "sso").await.unwrap_err().status(), Some(404));

    // Two PAID prices in one currency are refused, and nothing changes.
    let dup = plans.replace_prices("pro", vec![usd_price(), usd_price()]).await.unwrap_err();
    assert!(dup.details().unwrap()["prices"][0].as_str().unwrap().contains("USD"));
    assert_eq!(plans.prices("pro", None).await.unwrap().count, 2);

    plans.archive("pro").await.unwrap();
    assert_eq!(plans.retrieve("pro", None).await.unwrap_err().status(), Some(404));
    assert_eq!(plans.archive("pro").await.unwrap_err().details(), Some(&json!({"detail": "Already archived."})));
    assert_eq!(plans.list(ListCatalog::default()).await.unwrap().count, 0);
    assert_eq!(sdk.catalog().products().retrieve(&product_id).await.unwrap().plans, Some(vec![]));
    let reuse = plans.create(CreatePlan {
        name: "Pro".into(),
        identifier: Some("pro".into()),
        product: product_id,
        ..Default::default()
    });
    assert_eq!(
        reuse.await.unwrap_err().details(),
        Some(&json!({"identifier": ["plan with this identifier already exists."]}))
    );
    srv.stop().await;
}

async fn plan_validation(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let product_id = seed(&sdk).await;
    let post = |path: &str, body: Value| {
        let req = http().post(srv.url(path)).bearer_auth(&srv.server_key).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "X"}), "product"),
        (json!({"name": "X", "product": "no-such-product"}), "product"),
        (json!({"name": "X", "product": product_id, "identifier": "Bad Slug"}), "identifier"),
        (json!({"name": "X", "product": product_id, "license": {"enabled": true, "hasExpiry": true}}), "license"),
        (json!({"name": "X", "product": product_id, "links": [{"name": "docs"}]}), "links"),
        (json!({"name": "X", "product": product_id, "fileKeys": ["tmp/x/terms.pdf"]}), "fileKeys"),
    ] {
        let (status, errors) = post("/api/v1/catalog/plans/", body.clone()).await;
        assert_eq!(status, 400, "{body} → {errors}");
        assert!(errors.get(field).is_some(), "{body} → {errors}: expected {field}");
    }
    assert_eq!(srv.store.count_plans(&srv.tenant).await.unwrap(), 0);

    let (s, plan) = post("/api/v1/catalog/plans/", json!({"name": "Team", "product": "suite", "license": {"enabled": true, "activationLimitEnabled": true, "activationLimit": 3}, "links": [{"name": "Docs", "url": "https://example.com/docs"}]})).await;
    assert_eq!(s, 201, "{plan}");
    assert_eq!(plan["license"]["activationLimit"], 3);
    assert_eq!(plan["product"], json!(product_id), "the product may be named by identifier");

    for (body, field) in [
        (json!({}), "planEntitlements"),
        (json!({"planEntitlements": [{"feature": "nope", "details": {}}]}), "planEntitlements"),
        (json!({"planEntitlements": [{"feature": "api-calls", "details": {}}]}), "details"),
        (
            json!({"planEntitlements": [{"feature": "api-calls", "details": {"value": 5, "usageAlerts": {"enabled": true, "thresholds": [150]}}}]}),
            "details",
        ),
        (json!({"planEntitlements": [{"feature": "sso", "details": {"value": "yes"}}]}), "details"),
        (json!({"planEntitlements": [{"feature": "sso"}, {"feature": "sso"}]}), "planEntitlements"),
    ] {
        let (status, errors) = post("/api/v1/catalog/plans/team/features/", body.clone()).await;
        assert_eq!(status, 400, "{body} → {errors}");
        assert!(errors.get(field).is_some(), "{body} → {errors}: expected {field}");
    }
    let (s, _) = post("/api/v1/catalog/plans/team/features/", json!({"planEntitlements": [{"feature": "sso"}]})).await;
    assert_eq!(s, 201);
    let (s, errors) =
        post("/api/v1/catalog/plans/team/features/", json!({"planEntitlements": [{"feature": "sso"}]})).await;
    assert_eq!(s, 400, "a feature already on the plan: {errors}");

    let (s, errors) = post("/api/v1/catalog/plans/team/prices/bulk/", json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 9.999}}]}]}]})).await;
    assert_eq!(s, 400);
    assert!(errors["prices"][0].as_str().unwrap().contains("decimal places"), "{errors}");
    let (s, _) = post("/api/v1/catalog/plans/team/prices/bulk/", json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(sdk.catalog().plans().prices("team", None).await.unwrap().count, 0);

    let r = http()
        .patch(srv.url("/api/v1/catalog/plans/team/"))
        .bearer_auth(&srv.server_key)
        .json(&json!({"product": "x", "identifier": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let errors: Value = r.json().await.unwrap();
    assert!(errors.get("product").is_some() && errors.get("identifier").is_some(), "{errors}");
    let r = http()
        .get(srv.url("/api/v1/catalog/plans/team/?version=zero"))
        .bearer_auth(&srv.server_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sdk.catalog().plans().retrieve("team", Some(9)).await.unwrap_err().status(), Some(404));
    srv.stop().await;
}

async fn plans_are_tenant_scoped(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let product_id = seed(&sdk).await;
    sdk.catalog()
        .plans()
        .create(CreatePlan { name: "Pro".into(), product: product_id.clone(), ..Default::default() })
        .await
        .unwrap();
    let (_, other_key) = srv.other_tenant("acme", Environment::Sandbox).await;
    let theirs = srv.sdk_with(&other_key);
    let plans = theirs.catalog().plans();
    assert_eq!(plans.retrieve("pro", None).await.unwrap_err().status(), Some(404));
    assert_eq!(
        plans.update("pro", UpdatePlan { name: Some("x".into()), ..Default::default() }).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(plans.replace_prices("pro", vec![usd_price()]).await.unwrap_err().status(), Some(404));
    assert_eq!(plans.publish("pro", false, false).await.unwrap_err().status(), Some(404));
    assert_eq!(plans.discard("pro").await.unwrap_err().status(), Some(404));
    assert_eq!(plans.archive("pro").await.unwrap_err().status(), Some(404));
    assert_eq!(plans.list(ListCatalog::default()).await.unwrap().count, 0);
    // Another tenant cannot hang a plan on my product either.
    let e =
        plans.create(CreatePlan { name: "Pro".into(), product: product_id, ..Default::default() }).await.unwrap_err();
    assert!(e.details().unwrap().get("product").is_some());
    let mine = sdk.catalog().plans().retrieve("pro", None).await.unwrap();
    assert_eq!((mine.name.as_str(), mine.version), ("Pro", 1));
    srv.stop().await;
}

async fn concurrent_edits_make_one_draft(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let product_id = seed(&sdk).await;
    let plans = sdk.catalog().plans();
    plans.create(CreatePlan { name: "Pro".into(), product: product_id, ..Default::default() }).await.unwrap();
    plans.replace_prices("pro", vec![usd_price()]).await.unwrap();
    plans.publish("pro", false, false).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = srv.sdk();
        tasks.push(tokio::spawn(async move {
            client
                .catalog()
                .plans()
                .update("pro", UpdatePlan { description: Some(format!("edit {i}")), ..Default::default() })
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => {
                assert_eq!(p.version, 2);
                ok += 1;
            }
            Err(e) => assert_eq!(e.status(), Some(409), "only a clear conflict may refuse a concurrent edit: {e:?}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(plans.retrieve("pro", None).await.unwrap().version, 2, "one draft, however many editors");
    assert_eq!(plans.retrieve("pro", Some(3)).await.unwrap_err().status(), Some(404));
    srv.stop().await;
}

/// Seed 004's tiers: Starter → Pro (overrides API calls, adds analytics) →
/// Enterprise (unlimited API calls, adds SSO).
async fn inheritance(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let product_id = seed(&sdk).await;
    sdk.catalog()
        .features()
        .create(CreateFeature { name: "Analytics".into(), feature_type: "BOOLEAN".into(), ..Default::default() })
        .await
        .unwrap();
    let plans = sdk.catalog().plans();
    let create = |name: &str, parent: Option<&str>| CreatePlan {
        name: name.into(),
        product: product_id.clone(),
        parent: parent.map(str::to_string),
        ..Default::default()
    };
    plans.create(create("Starter", None)).await.unwrap();
    plans
        .add_features(
            "starter",
            vec![("api-calls".into(), json!({"value": 1000})), ("seats".into(), json!({"value": 3}))],
        )
        .await
        .unwrap();
    plans.replace_prices("starter", vec![usd_price()]).await.unwrap();
    plans.publish("starter", false, false).await.unwrap();

    let pro = plans.create(create("Pro", Some("starter"))).await.unwrap();
    assert_eq!(pro.parent.as_deref(), Some("starter"));
    plans
        .add_features("pro", vec![("api-calls".into(), json!({"value": 100000})), ("analytics".into(), json!({}))])
        .await
        .unwrap();
    plans.create(create("Enterprise", Some("pro"))).await.unwrap();
    plans.update_feature("enterprise", "api-calls", json!({"hasUnlimitedUsage": true})).await.unwrap();
    plans.add_features("enterprise", vec![("sso".into(), json!({"value": true}))]).await.unwrap();

    type Row = (String, Value, bool, bool);
    let rows = |page: kelviq_sdk::models::Page<kelviq_sdk::models::PlanFeature>| -> Vec<Row> {
        page.results
            .into_iter()
            .map(|r| {
                let d = r.details;
                (
                    r.feature.identifier,
                    d["value"].clone(),
                    d["isInherited"].as_bool().unwrap(),
                    d["isValueOverridden"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let row = |id: &str, v: Value, inherited: bool, overridden: bool| (id.to_string(), v, inherited, overridden);
    assert_eq!(
        rows(plans.features("pro", None).await.unwrap()),
        [
            row("api-calls", json!(100000), false, true),
            row("seats", json!(3), true, false),
            row("analytics", json!(true), false, false)
        ]
    );
    assert_eq!(
        rows(plans.features("enterprise", None).await.unwrap()),
        [
            row("api-calls", Value::Null, false, true),
            row("seats", json!(3), true, false),
            row("analytics", json!(true), true, false),
            row("sso", json!(true), false, false),
        ]
    );

    // A change to the parent flows to the children, except where they override it.
    plans.update_feature("starter", "seats", json!({"value": 5})).await.unwrap();
    plans.update_feature("starter", "api-calls", json!({"value": 2000})).await.unwrap();
    plans.publish("starter", false, false).await.unwrap();
    let enterprise = rows(plans.features("enterprise", None).await.unwrap());
    assert_eq!(enterprise[1], row("seats", json!(5), true, false));
    assert_eq!(enterprise[0], row("api-calls", Value::Null, false, true));
    assert_eq!(rows(plans.features("pro", None).await.unwrap())[0], row("api-calls", json!(100000), false, true));

    // Removing an override brings the inherited value back; inherited rows cannot be removed.
    plans.remove_feature("pro", "api-calls").await.unwrap();
    assert_eq!(rows(plans.features("pro", None).await.unwrap())[0], row("api-calls", json!(2000), true, false));
    let e = plans.remove_feature("pro", "seats").await.unwrap_err();
    assert_eq!(e.status(), Some(400));

    // No cycles, no self-parenting, no unknown parents.
    for (plan, parent) in [("starter", "enterprise"), ("pro", "pro"), ("pro", "nope")] {
        let e = plans
            .update(plan, UpdatePlan { parent: Some(Some(parent.into())), ..Default::default() })
            .await
            .unwrap_err();
        assert!(e.details().unwrap().get("parent").is_some(), "{plan} ← {parent}: {:?}", e.details());
    }
    // Detaching keeps only the plan's own rows.
    plans.update("enterprise", UpdatePlan { parent: Some(None), ..Default::default() }).await.unwrap();
    assert_eq!(
        rows(plans.features("enterprise", None).await.unwrap()),
        [row("api-calls", Value::Null, false, false), row("sso", json!(true), false, false)]
    );
    srv.stop().await;
}

on_both_backends!(
    version_lifecycle,
    plan_validation,
    plans_are_tenant_scoped,
    concurrent_edits_make_one_draft,
    inheritance
);
