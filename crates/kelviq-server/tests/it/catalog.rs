//! Catalog, part one, end to end: products (with settings) and features,
//! through the Rust SDK and raw HTTP, on both backends.

use crate::common;

use common::{http, Backend, TestServer};
use kelviq_core::Environment;
use kelviq_sdk::catalog::{
    CreateFeature, CreateProduct, ListCatalog, UpdateFeature, UpdateProduct, UpdateProductSettings,
};
use serde_json::{json, Value};

fn product(name: &str) -> CreateProduct {
    CreateProduct { name: name.into(), tax_code: "saas".into(), ..Default::default() }
}

async fn products_lifecycle(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let products = sdk.catalog().products();
    let p = products.create(product("Pro Suite")).await.unwrap();
    assert_eq!((p.identifier.as_str(), p.name.as_str(), p.tax_code.as_str()), ("pro-suite", "Pro Suite", "saas"));
    assert!(p.images.is_empty());
    // A generated identifier that is taken gets a suffix; an explicit one is refused.
    assert_eq!(products.create(product("Pro Suite")).await.unwrap().identifier, "pro-suite-2");
    let taken =
        products.create(CreateProduct { identifier: Some("pro-suite".into()), ..product("Other") }).await.unwrap_err();
    assert_eq!(taken.details(), Some(&json!({"identifier": ["product with this identifier already exists."]})));

    // Retrieve by UUID or identifier; the detail lists published plans (none yet).
    let by_id = products.retrieve(&p.id).await.unwrap();
    let by_slug = products.retrieve("pro-suite").await.unwrap();
    assert_eq!(by_id, by_slug);
    assert_eq!(by_id.plans, Some(vec![]));

    srv.clock.advance(chrono::Duration::seconds(30));
    let renamed = products
        .update("pro-suite", UpdateProduct { name: Some("Pro Suite v2".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.identifier.as_str()), ("Pro Suite v2", "pro-suite"));
    assert!(renamed.modified_on > p.modified_on);
    let bad = products.update("pro-suite", UpdateProduct { tax_code: Some("food".into()), ..Default::default() }).await;
    assert_eq!(bad.unwrap_err().details(), Some(&json!({"taxCode": ["\"food\" is not a valid choice."]})));

    // Settings are created with defaults and patched field by field.
    let s = products.settings("pro-suite").await.unwrap();
    assert_eq!((s.vpn, s.tor, s.proxy, s.currency.as_str(), s.product_url.clone()), (true, true, true, "USD", None));
    let s = products
        .update_settings(
            &p.id,
            UpdateProductSettings {
                vpn: Some(false),
                currency: Some("eur".into()),
                product_url: Some("https://app.example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((s.vpn, s.tor, s.currency.as_str()), (false, true, "EUR"));
    assert_eq!(products.settings("pro-suite").await.unwrap(), s);
    let e = products
        .update_settings("pro-suite", UpdateProductSettings { currency: Some("EURO".into()), ..Default::default() });
    assert!(e.await.unwrap_err().details().unwrap().get("currency").is_some());

    let page = products.list(ListCatalog::default()).await.unwrap();
    assert_eq!(page.count, 2);
    assert_eq!(page.results[0].identifier, "pro-suite-2", "newest first");
    let found = products.list(ListCatalog { search: Some("V2".into()), ..Default::default() }).await.unwrap();
    assert_eq!(found.results.iter().map(|p| p.identifier.as_str()).collect::<Vec<_>>(), ["pro-suite"]);

    products.archive("pro-suite").await.unwrap();
    assert_eq!(products.retrieve("pro-suite").await.unwrap_err().status(), Some(404));
    let again = products.archive(&p.id).await.unwrap_err();
    assert_eq!((again.status(), again.details().cloned()), (Some(400), Some(json!({"detail": "Already archived."}))));
    assert_eq!(products.list(ListCatalog::default()).await.unwrap().count, 1, "archived products are not listed");
    // An archived product's identifier stays taken.
    let reuse = products.create(CreateProduct { identifier: Some("pro-suite".into()), ..product("X") }).await;
    assert_eq!(reuse.unwrap_err().status(), Some(400));
    srv.stop().await;
}

async fn product_validation(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let post = |body: Value| {
        let srv = &srv;
        async move {
            let r = http()
                .post(srv.url("/api/v1/catalog/products/"))
                .bearer_auth(&srv.server_key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cases = [
        (json!({}), vec!["name", "taxCode"]),
        (json!({"name": "", "taxCode": "saas"}), vec!["name"]),
        (json!({"name": "A", "taxCode": "saas", "identifier": "Not A Slug"}), vec!["identifier"]),
        (json!({"name": "A", "tax_code": "nope"}), vec!["taxCode"]),
        (json!({"name": "A", "taxCode": "saas", "imageKeys": ["tmp/x/y.png"]}), vec!["imageKeys"]),
        (json!({"name": 5, "taxCode": "saas"}), vec!["name"]),
    ];
    for (body, fields) in cases {
        let (status, errors) = post(body.clone()).await;
        assert_eq!(status, 400, "{body} → {errors}");
        for f in &fields {
            assert!(errors.get(*f).is_some(), "{body} → {errors}: expected {f}");
        }
    }
    let (status, created) =
        post(json!({"name": "ParityDeals", "description": "", "identifier": "parity-deals", "taxCode": "saas"})).await;
    assert_eq!(status, 201, "{created}");
    for key in ["id", "identifier", "name", "description", "taxCode", "createdBy", "modifiedOn", "images"] {
        assert!(created.get(key).is_some(), "{key} missing from {created}");
    }
    assert_eq!(srv.store.count_products(&srv.tenant, None).await.unwrap(), 1, "refused bodies wrote nothing");
    srv.stop().await;
}

fn units() -> Value {
    json!({"singular": "call", "plural": "calls"})
}

async fn features_lifecycle(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let features = sdk.catalog().features();
    let flag = features
        .create(CreateFeature { name: "SSO".into(), feature_type: "BOOLEAN".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((flag.identifier.as_str(), flag.feature_type.as_str(), flag.is_archived), ("sso", "BOOLEAN", false));
    assert_eq!(flag.meter, json!({}));

    let calls = features
        .create(CreateFeature {
            name: "API Calls".into(),
            feature_type: "METER".into(),
            feature_details: Some(json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": units()})),
            metadata: Some(json!({"category_Key": "core"}).as_object().unwrap().clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(calls.identifier, "api-calls");
    assert_eq!(calls.feature_details, json!({"featureSubType": "PRE_AGGREGATED_USAGE", "units": units()}));
    assert_eq!(calls.metadata, json!({"category_Key": "core"}));

    let meter = json!({
        "aggregation": {"function": "SUM", "field": "tokens"},
        "filters": [[{"property": "event_name", "operator": "equals", "value": "llm.call"},
                     {"property": "model", "operator": "in", "value": ["a", "b"]}]]
    });
    let tokens = features
        .create(CreateFeature {
            name: "Tokens".into(),
            identifier: Some("llm_tokens".into()),
            feature_type: "METER".into(),
            feature_details: Some(
                json!({"featureSubType": "RAW_EVENTS", "units": {"singular": "token", "plural": "tokens"}}),
            ),
            meter: Some(meter.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tokens.meter, meter, "the meter comes back as given");
    assert_eq!(features.retrieve(&tokens.id).await.unwrap(), features.retrieve("llm_tokens").await.unwrap());

    // Name, description and metadata change; identifier and type do not.
    let renamed = features
        .update("api-calls", UpdateFeature { name: Some("Requests".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.identifier.as_str()), ("Requests", "api-calls"));
    let r = http()
        .patch(srv.url("/api/v1/catalog/features/api-calls/"))
        .bearer_auth(&srv.server_key)
        .json(&json!({"featureType": "BOOLEAN", "identifier": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let errors: Value = r.json().await.unwrap();
    assert!(errors.get("featureType").is_some() && errors.get("identifier").is_some(), "{errors}");
    assert_eq!(features.retrieve("api-calls").await.unwrap().feature_type, "METER");

    let page = features.list(ListCatalog::default()).await.unwrap();
    assert_eq!(page.count, 3);
    assert_eq!(page.results[0].identifier, "llm_tokens");
    let two = features.list(ListCatalog { page_size: Some(2), page: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!(two.results.iter().map(|f| f.identifier.as_str()).collect::<Vec<_>>(), ["sso"]);

    features.archive("sso").await.unwrap();
    let archived = features.retrieve("sso").await.unwrap();
    assert!(archived.is_archived, "archived features stay readable and say so");
    assert_eq!(features.archive("sso").await.unwrap_err().details(), Some(&json!({"detail": "Already archived."})));
    assert_eq!(features.list(ListCatalog::default()).await.unwrap().count, 2);
    let reuse = features.create(CreateFeature {
        name: "SSO".into(),
        identifier: Some("sso".into()),
        feature_type: "BOOLEAN".into(),
        ..Default::default()
    });
    assert_eq!(
        reuse.await.unwrap_err().details(),
        Some(&json!({"identifier": ["feature with this identifier already exists."]}))
    );
    srv.stop().await;
}

async fn feature_validation(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let raw = json!({"featureSubType": "RAW_EVENTS", "units": units()});
    let cases = [
        (json!({"name": "x"}), "featureType"),
        (json!({"name": "x", "featureType": "FLAG"}), "featureType"),
        (json!({"name": "x", "featureType": "METER"}), "featureDetails"),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE"}}),
            "featureDetails",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": {"featureSubType": "OTHER", "units": units()}}),
            "featureDetails",
        ),
        (json!({"name": "x", "featureType": "METER", "featureDetails": raw}), "meter"),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "AVG", "field": "t"}}}),
            "meter",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "MAX"}}}),
            "meter",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "COUNT", "field": "t"}}}),
            "meter",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "COUNT"}, "filters": [[{"property": "p", "operator": "regex", "value": "x"}]]}}),
            "meter",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "COUNT"}, "filters": [[{"property": "p", "operator": "lt", "value": "5"}]]}}),
            "meter",
        ),
        (
            json!({"name": "x", "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": {"function": "COUNT"}, "filters": [{"property": "p", "operator": "exists"}]}}),
            "meter",
        ),
        (json!({"name": "x", "featureType": "BOOLEAN", "meter": {"aggregation": {"function": "COUNT"}}}), "meter"),
        (json!({"name": "x", "featureType": "BOOLEAN", "metadata": [1]}), "metadata"),
    ];
    for (body, field) in cases {
        let r = http()
            .post(srv.url("/api/v1/catalog/features/"))
            .bearer_auth(&srv.server_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let errors: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body} → {errors}");
        assert!(errors[field].as_array().is_some_and(|m| !m.is_empty()), "{body} → {errors}: expected {field}");
    }
    assert_eq!(srv.store.count_features(&srv.tenant, None).await.unwrap(), 0);
    // Every aggregation function is accepted with what it needs.
    for (i, agg) in [
        json!({"function": "COUNT"}),
        json!({"function": "SUM", "field": "n"}),
        json!({"function": "MAX", "field": "n"}),
        json!({"function": "UNIQUE_COUNT", "field": "user"}),
        json!({"function": "LATEST", "field": "n"}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"name": format!("m{i}"), "featureType": "METER", "featureDetails": raw, "meter": {"aggregation": agg}});
        let r = http()
            .post(srv.url("/api/v1/catalog/features/"))
            .bearer_auth(&srv.server_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{body}");
    }
    srv.stop().await;
}

async fn catalog_is_tenant_scoped(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (_, other_key) = srv.other_tenant("acme", Environment::Sandbox).await;
    let prod_key = srv.key_for(kelviq_core::keys::KeyKind::Server, Environment::Production).await;
    let mine = srv.sdk();
    let p = mine.catalog().products().create(product("Mine")).await.unwrap();
    let f = mine
        .catalog()
        .features()
        .create(CreateFeature { name: "Mine".into(), feature_type: "BOOLEAN".into(), ..Default::default() })
        .await
        .unwrap();
    for key in [&other_key, &prod_key] {
        let theirs = srv.sdk_with(key);
        // The same identifiers are free elsewhere …
        theirs.catalog().products().create(product("Mine")).await.unwrap();
        // … and nothing of mine is visible or changeable, by UUID or by identifier.
        for k in [p.id.as_str(), "mine"] {
            let mut by_theirs = theirs.catalog().products().retrieve(k).await;
            if k == "mine" {
                assert_ne!(by_theirs.unwrap().id, p.id);
                continue;
            }
            assert_eq!(by_theirs.as_ref().unwrap_err().status(), Some(404));
            by_theirs = theirs
                .catalog()
                .products()
                .update(k, UpdateProduct { name: Some("x".into()), ..Default::default() })
                .await;
            assert_eq!(by_theirs.unwrap_err().status(), Some(404));
            assert_eq!(theirs.catalog().products().archive(k).await.unwrap_err().status(), Some(404));
        }
        assert_eq!(theirs.catalog().features().retrieve(&f.id).await.unwrap_err().status(), Some(404));
        assert_eq!(theirs.catalog().features().archive(&f.id).await.unwrap_err().status(), Some(404));
        assert_eq!(theirs.catalog().features().list(ListCatalog::default()).await.unwrap().count, 0);
    }
    assert_eq!(mine.catalog().products().retrieve(&p.id).await.unwrap().name, "Mine");
    assert!(!mine.catalog().features().retrieve(&f.id).await.unwrap().is_archived);
    // Client keys cannot touch the catalog.
    let public = srv.sdk_with(&srv.client_key);
    assert_eq!(public.catalog().products().list(ListCatalog::default()).await.unwrap_err().status(), Some(403));
    srv.stop().await;
}

async fn blocking_catalog(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (base, key) = (srv.base_url.clone(), srv.server_key.clone());
    tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(key).base_url(&base).build_blocking().unwrap();
        let p = client.catalog().products().create(product("Blocking")).unwrap();
        assert_eq!(client.catalog().products().retrieve(&p.identifier).unwrap().id, p.id);
        let f = client
            .catalog()
            .features()
            .create(CreateFeature { name: "Seats".into(), feature_type: "CUSTOMIZABLE".into(), ..Default::default() })
            .unwrap();
        assert_eq!(client.catalog().features().list(ListCatalog::default()).unwrap().results[0].id, f.id);
        client.catalog().features().archive(&f.id).unwrap();
        client.catalog().products().archive(&p.id).unwrap();
    })
    .await
    .unwrap();
    srv.stop().await;
}

on_both_backends!(
    products_lifecycle,
    product_validation,
    features_lifecycle,
    feature_validation,
    catalog_is_tenant_scoped,
    blocking_catalog
);
