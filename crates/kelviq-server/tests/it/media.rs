//! Media end to end: presigned uploads through our own upload endpoint,
//! product images, plan files with signed short-lived downloads, and every
//! way an upload can be refused.

use crate::common;

use common::{http, Backend, TestServer};
use kelviq_core::Environment;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The bytes of a PNG file (its signature, which is what makes an image an
/// image to the server) followed by `tail`.
fn png(tail: &[u8]) -> Vec<u8> {
    [b"\x89PNG\r\n\x1a\n".as_slice(), tail].concat()
}

async fn presign(srv: &TestServer, key: &str, name: &str, mime: &str) -> Value {
    let r = http()
        .post(srv.url("/api/v1/media/"))
        .bearer_auth(key)
        .json(&json!({"fileName": name, "fileType": mime}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Posts the presigned form with `bytes` as the file, as a browser would.
async fn upload(form: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let mut multipart = Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(k.clone(), v.as_str().unwrap().to_string());
    }
    multipart = multipart.part("file", Part::bytes(bytes).file_name("upload.bin"));
    http().post(form["url"].as_str().unwrap()).multipart(multipart).send().await.unwrap()
}

async fn uploaded(srv: &TestServer, name: &str, mime: &str, bytes: &[u8]) -> String {
    let form = presign(srv, &srv.server_key, name, mime).await;
    let r = upload(&form, bytes.to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
    form["fileKey"].as_str().unwrap().to_string()
}

async fn call(srv: &TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = http().request(method, srv.url(path)).bearer_auth(&srv.server_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn product_images(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let form = presign(&srv, &srv.server_key, "hero banner.png", "image/png").await;
    let key = form["fileKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("tmp/") && key.ends_with("/hero_banner.png"), "{key}");
    assert_eq!(form["url"], format!("{}/api/v1/media/upload/", srv.base_url));
    // Not uploaded yet: cannot be attached.
    let (s, e) = call(
        &srv,
        reqwest::Method::POST,
        "/api/v1/catalog/products/",
        Some(json!({"name": "P", "taxCode": "saas", "imageKeys": [key]})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(upload(&form, png(b"1")).await.status(), StatusCode::NO_CONTENT);
    let second = uploaded(&srv, "second.png", "image/png", &png(b"2")).await;

    let (s, p) = call(
        &srv,
        reqwest::Method::POST,
        "/api/v1/catalog/products/",
        Some(json!({"name": "P", "taxCode": "saas", "imageKeys": [key]})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let images = p["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(
        (images[0]["name"].clone(), images[0]["thumbnail"].clone(), images[0]["enabled"].clone()),
        (json!("hero_banner.png"), json!(true), json!(true))
    );
    let image_url = images[0]["image"].as_str().unwrap().to_string();
    let got = http().get(&image_url).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().as_ref(), png(b"1"));

    // A key is used once.
    let (s, _) = call(
        &srv,
        reqwest::Method::POST,
        "/api/v1/catalog/products/",
        Some(json!({"name": "Q", "taxCode": "saas", "imageKeys": [key]})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(srv.store.count_products(&srv.tenant, None).await.unwrap(), 1, "the refused product was not created");

    let (s, p) =
        call(&srv, reqwest::Method::PATCH, "/api/v1/catalog/products/p/", Some(json!({"imageKeys": [second]}))).await;
    assert_eq!(s, 200, "{p}");
    let images = p["images"].as_array().unwrap().clone();
    assert_eq!(images.iter().map(|i| i["thumbnail"].as_bool().unwrap()).collect::<Vec<_>>(), [true, false]);
    let second_id = images[1]["id"].as_str().unwrap();
    let (s, img) = call(
        &srv,
        reqwest::Method::PATCH,
        &format!("/api/v1/catalog/products/p/image/{second_id}/"),
        Some(json!({"thumbnail": true, "name": "Cover"})),
    )
    .await;
    assert_eq!((s, img["thumbnail"].clone(), img["name"].clone()), (StatusCode::OK, json!(true), json!("Cover")));
    let (_, p) = call(&srv, reqwest::Method::GET, "/api/v1/catalog/products/p/", None).await;
    assert_eq!(p["images"].as_array().unwrap().iter().filter(|i| i["thumbnail"] == true).count(), 1, "one thumbnail");

    let first_id = images[0]["id"].as_str().unwrap();
    call(
        &srv,
        reqwest::Method::PATCH,
        &format!("/api/v1/catalog/products/p/image/{first_id}/"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        http().get(&image_url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "disabled images are not served"
    );
    let (s, _) =
        call(&srv, reqwest::Method::DELETE, &format!("/api/v1/catalog/products/p/image/{first_id}/"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, p) = call(&srv, reqwest::Method::GET, "/api/v1/catalog/products/p/", None).await;
    assert_eq!(p["images"].as_array().unwrap().len(), 1);
    let (s, _) =
        call(&srv, reqwest::Method::DELETE, &format!("/api/v1/catalog/products/p/image/{first_id}/"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Another tenant can neither use my uploads nor touch my images.
    let (_, other_key) = srv.other_tenant("acme", Environment::Sandbox).await;
    let mine = uploaded(&srv, "mine.png", "image/png", &png(b"x")).await;
    let r = http()
        .post(srv.url("/api/v1/catalog/products/"))
        .bearer_auth(&other_key)
        .json(&json!({"name": "P", "taxCode": "saas", "imageKeys": [mine]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http()
        .delete(srv.url(&format!("/api/v1/catalog/products/p/image/{second_id}/")))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    srv.stop().await;
}

async fn plan_files_and_signed_downloads(backend: Backend) {
    let srv = TestServer::start(backend).await;
    call(&srv, reqwest::Method::POST, "/api/v1/catalog/products/", Some(json!({"name": "Suite", "taxCode": "saas"})))
        .await;
    let terms = uploaded(&srv, "terms.pdf", "application/pdf", b"%PDF-terms").await;
    let (s, plan) = call(
        &srv,
        reqwest::Method::POST,
        "/api/v1/catalog/plans/",
        Some(json!({"name": "Pro", "product": "suite", "fileKeys": [terms]})),
    )
    .await;
    assert_eq!(s, 201, "{plan}");
    let file = plan["files"][0].clone();
    assert_eq!(file["name"], "terms.pdf");
    let download = file["downloadUrl"].as_str().unwrap().to_string();
    assert!(download.ends_with("/download/"), "{download}");

    // No key needed; a redirect to a signed link that works for five minutes.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirect.get(&download).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let signed = r.headers()["location"].to_str().unwrap().to_string();
    assert!(signed.contains("signature="), "{signed}");
    let got = http().get(&signed).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-disposition"], "attachment; filename=\"terms.pdf\"; filename*=UTF-8''terms.pdf");
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"%PDF-terms");
    let tampered = signed.replace("signature=", "signature=0");
    assert_eq!(http().get(&tampered).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    srv.clock.advance(chrono::Duration::minutes(6));
    assert_eq!(http().get(&signed).send().await.unwrap().status(), StatusCode::FORBIDDEN, "links expire");

    // Files belong to the plan, not to a version: a new draft keeps them.
    let extra = uploaded(&srv, "changelog.txt", "text/plain", b"v2").await;
    let (s, plan) = call(
        &srv,
        reqwest::Method::PATCH,
        "/api/v1/catalog/plans/pro/",
        Some(json!({"fileKeys": [extra], "description": "d"})),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["files"].as_array().unwrap().len(), 2);
    let file_id = file["id"].as_str().unwrap();
    let (s, f) = call(
        &srv,
        reqwest::Method::PATCH,
        &format!("/api/v1/catalog/plans/pro/file/{file_id}/"),
        Some(json!({"enabled": false, "ordering": 5})),
    )
    .await;
    assert_eq!((s, f["enabled"].clone(), f["ordering"].clone()), (StatusCode::OK, json!(false), json!(5)));
    assert_eq!(
        no_redirect.get(&download).send().await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "disabled files are not downloadable"
    );
    let (s, _) = call(
        &srv,
        reqwest::Method::PATCH,
        &format!("/api/v1/catalog/plans/pro/file/{file_id}/"),
        Some(json!({"thumbnail": true})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let wrong_plan = download.replace("/plans/pro/", "/plans/other/");
    assert_eq!(no_redirect.get(&wrong_plan).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let (s, _) = call(&srv, reqwest::Method::DELETE, &format!("/api/v1/catalog/plans/pro/file/{file_id}/"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, plan) = call(&srv, reqwest::Method::GET, "/api/v1/catalog/plans/pro/", None).await;
    assert_eq!(plan["files"].as_array().unwrap().len(), 1);
    srv.stop().await;
}

async fn uploads_are_checked(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.media_max_bytes = 1024).await;
    let (s, e) = call(&srv, reqwest::Method::POST, "/api/v1/media/", Some(json!({"fileName": "x.png"}))).await;
    assert_eq!((s, e.get("fileType").is_some()), (StatusCode::BAD_REQUEST, true));
    let (s, e) =
        call(&srv, reqwest::Method::POST, "/api/v1/media/", Some(json!({"fileName": "../", "fileType": "image/png"})))
            .await;
    assert_eq!((s, e.get("fileName").is_some()), (StatusCode::BAD_REQUEST, true));
    let r = http()
        .post(srv.url("/api/v1/media/"))
        .bearer_auth(&srv.client_key)
        .json(&json!({"fileName": "a", "fileType": "a/b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let form = presign(&srv, &srv.server_key, "big.bin", "application/octet-stream").await;
    let r = upload(&form, vec![7u8; 2048]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let mut forged = form.clone();
    forged["fields"]["signature"] = json!("00".repeat(32));
    assert_eq!(upload(&forged, b"x".to_vec()).await.status(), StatusCode::BAD_REQUEST);
    let mut other_key = form.clone();
    other_key["fields"]["key"] = json!("tmp/other/x.bin");
    assert_eq!(upload(&other_key, b"x".to_vec()).await.status(), StatusCode::BAD_REQUEST);
    // After a refused upload the key still has no file behind it.
    let (s, _) = call(
        &srv,
        reqwest::Method::POST,
        "/api/v1/catalog/products/",
        Some(json!({"name": "P", "taxCode": "saas", "imageKeys": [form["fileKey"]]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(upload(&form, vec![1u8; 1024]).await.status(), StatusCode::NO_CONTENT, "exactly the limit is fine");

    let late = presign(&srv, &srv.server_key, "late.bin", "application/octet-stream").await;
    srv.clock.advance(chrono::Duration::minutes(61));
    let r = upload(&late, b"x".to_vec()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("expired"));
    let r = http()
        .post(srv.url("/api/v1/media/upload/"))
        .multipart(Form::new().part("file", Part::bytes(b"x".to_vec())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    srv.stop().await;
}

on_both_backends!(product_images, plan_files_and_signed_downloads, uploads_are_checked);
