//! Wire compatibility with Kelviq's published OpenAPI (`compat/kelviq-openapi.json`):
//! every catalog and media request is built from the examples the document
//! publishes (with real ids and upload keys swapped in), must be accepted,
//! and must be answered with every property the documented response has.

use crate::common;

use common::{http, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../compat/kelviq-openapi.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn schema(name: &str) -> &'static Value {
    &spec()["components"]["schemas"][name]
}

/// A schema's properties, following `allOf` and `$ref`.
fn properties(s: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return properties(schema(r.rsplit('/').next().unwrap()));
    }
    for part in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(properties(part));
    }
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        out.extend(p.clone());
    }
    out
}

/// A request body from the schema's own example, else from its properties' examples.
fn example(name: &str) -> Value {
    if let Some(e) = schema(name).get("example") {
        return e.clone();
    }
    let body: Map<String, Value> = properties(schema(name))
        .into_iter()
        .filter(|(_, p)| p.get("readOnly") != Some(&json!(true)))
        .filter_map(|(k, p)| p.get("example").map(|e| (k, e.clone())))
        .collect();
    Value::Object(body)
}

/// Fails unless `body` carries every property of the documented response schema.
fn assert_shape(name: &str, body: &Value) {
    let missing: Vec<String> =
        properties(schema(name)).keys().filter(|k| body.get(k.as_str()).is_none()).cloned().collect();
    assert!(missing.is_empty(), "{name} response lacks {missing:?}: {body}");
}

async fn send(srv: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let r =
        http().request(method.clone(), srv.url(path)).bearer_auth(&srv.server_key).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path} {body} → {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn upload_from_example(srv: &TestServer, name: &str) -> String {
    let mut req = example("PresignedUploadRequest");
    if req.as_object().is_none_or(|m| m.is_empty()) {
        req = json!({"fileName": "web-app-manifest-512x512.png", "fileType": "image/png"});
    }
    req["fileName"] = json!(name);
    let form = send(srv, Method::POST, "/api/v1/media/", req).await;
    assert!(form.get("url").is_some() && form.get("fields").is_some() && form.get("fileKey").is_some(), "{form}");
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(k.clone(), v.as_str().unwrap().to_string());
    }
    // Images must be images by their bytes: a PNG's or a JPEG's signature.
    let bytes: &[u8] = match name.rsplit('.').next() {
        Some("png") => b"\x89PNG\r\n\x1a\nbytes",
        Some("jpg") => b"\xFF\xD8\xFF\xE0bytes",
        _ => b"bytes",
    };
    multipart = multipart.part("file", reqwest::multipart::Part::bytes(bytes.to_vec()));
    let r = http().post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap();
    assert!(r.status().is_success());
    form["fileKey"].as_str().unwrap().to_string()
}

async fn catalog_requests_from_published_examples(backend: Backend) {
    let srv = TestServer::start(backend).await;

    // Products: create (the document's own example), update, settings.
    let mut product_in = example("ProductCreateRequest");
    product_in["imageKeys"] = json!([upload_from_example(&srv, "web-app-manifest-512x512.png").await]);
    let product = send(&srv, Method::POST, "/api/v1/catalog/products/", product_in).await;
    assert_shape("Product", &product);
    assert_eq!(product["identifier"], "parity-deals");
    assert_eq!(product["images"][0]["thumbnail"], true);
    assert_shape("ProductImage", &product["images"][0]);
    let pid = product["id"].as_str().unwrap().to_string();
    let mut product_patch = example("ProductUpdateRequest");
    product_patch["imageKeys"] = json!([upload_from_example(&srv, "new-hero.jpg").await]);
    product_patch["fileKeys"] = json!([upload_from_example(&srv, "changelog.pdf").await]);
    let updated = send(&srv, Method::PATCH, &format!("/api/v1/catalog/products/{pid}/"), product_patch).await;
    assert_shape("Product", &updated);
    assert_eq!((updated["images"].as_array().unwrap().len(), updated["files"].as_array().unwrap().len()), (2, 1));
    assert_shape("ProductFile", &updated["files"][0]);
    let retrieved = send(&srv, Method::GET, &format!("/api/v1/catalog/products/{pid}/"), Value::Null).await;
    assert_shape("ProductRetrieve", &retrieved);
    let settings = send(
        &srv,
        Method::PATCH,
        &format!("/api/v1/catalog/products/{pid}/settings/"),
        example("ProductSettingsUpdateRequest"),
    )
    .await;
    assert_shape("ProductSettings", &settings);
    assert_eq!((settings["currency"].clone(), settings["vpn"].clone()), (json!("EUR"), json!(false)));
    let image_id = updated["images"][1]["id"].as_str().unwrap();
    let image = send(
        &srv,
        Method::PATCH,
        &format!("/api/v1/catalog/products/{pid}/image/{image_id}/"),
        example("ProductImageUpdateRequest"),
    )
    .await;
    assert_shape("ProductImage", &image);

    // Features.
    let feature = send(&srv, Method::POST, "/api/v1/catalog/features/", example("FeatureCreateRequest")).await;
    assert_shape("CatalogFeature", &feature);
    let fid = feature["id"].as_str().unwrap().to_string();
    let feature = send(&srv, Method::GET, &format!("/api/v1/catalog/features/{fid}/"), Value::Null).await;
    assert_shape("CatalogFeature", &feature);

    // Plans: create (the document's own example), update, prices, entitlements, publish.
    let mut plan_in = example("PlanCreateRequest");
    plan_in["product"] = json!(pid);
    plan_in["fileKeys"] = json!([upload_from_example(&srv, "plan-terms.pdf").await]);
    let plan = send(&srv, Method::POST, "/api/v1/catalog/plans/", plan_in).await;
    assert_shape("CatalogPlan", &plan);
    assert_eq!((plan["identifier"].clone(), plan["isLatest"].clone()), (json!("pro-monthly"), json!(false)));
    assert_shape("PlanFile", &plan["files"][0]);
    let mut plan_patch = example("PlanUpdateRequest");
    plan_patch["fileKeys"] = json!([upload_from_example(&srv, "plan-terms-2.pdf").await]);
    let plan = send(&srv, Method::PATCH, "/api/v1/catalog/plans/pro-monthly/", plan_patch).await;
    assert_shape("CatalogPlan", &plan);

    let mut charge_group = example("PlanChargeCatalogPrice");
    charge_group["feature"] = json!(fid);
    charge_group["charges"] = json!([example("PlanCharge")]);
    let mut price = example("PlanPriceCreateRequest");
    price["chargeCatalogPrice"] = json!([charge_group]);
    let bulk =
        send(&srv, Method::POST, "/api/v1/catalog/plans/pro-monthly/prices/bulk/", json!({"prices": [price]})).await;
    assert_shape("PlanPriceBulkResponse", &bulk);
    assert_shape("PlanPrice", &bulk["prices"][0]);
    assert_shape("PlanChargeCatalogPrice", &bulk["prices"][0]["chargeCatalogPrice"][0]);
    assert_shape("PlanCharge", &bulk["prices"][0]["chargeCatalogPrice"][0]["charges"][0]);
    assert_eq!(bulk["prices"][0]["chargeCatalogPrice"][0]["charges"][0]["priceData"]["amount"], json!(29.99));
    let prices = send(&srv, Method::GET, "/api/v1/catalog/plans/pro-monthly/prices/", Value::Null).await;
    assert_eq!(prices["count"], 1);

    let details = example("PlanEntitlementDetails");
    let plan = send(
        &srv,
        Method::POST,
        "/api/v1/catalog/plans/pro-monthly/features/",
        json!({"planEntitlements": [{"feature": fid, "details": details}]}),
    )
    .await;
    assert_shape("CatalogPlan", &plan);
    let rows = send(&srv, Method::GET, "/api/v1/catalog/plans/pro-monthly/features/", Value::Null).await;
    assert_shape("PlanEntitlementDetails", &rows["results"][0]["details"]);
    assert_shape("CatalogFeature", &rows["results"][0]["feature"]);
    let identifier = feature["identifier"].as_str().unwrap();
    send(
        &srv,
        Method::PATCH,
        &format!("/api/v1/catalog/plans/pro-monthly/features/{identifier}/"),
        json!({"details": details}),
    )
    .await;
    let file_id = plan["files"][0]["id"].as_str().unwrap();
    let file = send(
        &srv,
        Method::PATCH,
        &format!("/api/v1/catalog/plans/pro-monthly/file/{file_id}/"),
        example("PlanFileUpdateRequest"),
    )
    .await;
    assert_shape("PlanFile", &file);

    let published =
        send(&srv, Method::POST, "/api/v1/catalog/plans/pro-monthly/publish/", example("PlanPublishRequest")).await;
    assert_eq!(published["status"], "published");
    let listed = send(&srv, Method::GET, "/api/v1/catalog/plans/", Value::Null).await;
    assert_shape("CatalogPlan", &listed["results"][0]);
    assert_eq!(listed["results"][0]["isLatest"], true);
    srv.stop().await;
}

on_both_backends!(catalog_requests_from_published_examples);
