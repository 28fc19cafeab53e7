//! The Rust SDK's `licenses` and `portal` modules against the real server, async and
//! blocking, on SQLite and PostgreSQL: activate, validate (an unknown key is
//! a verdict), heartbeat, an offline file verified with no network and
//! refused once changed by one byte or expired, and the merchant's calls.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_sdk::licenses::{verify_file, FileError, LicenseChanges};
use serde_json::json;

async fn sdk_licenses(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    api.ok("/api/v1/catalog/products/", json!({"name": "Tool", "identifier": "tool", "taxCode": "software"})).await;
    api.ok("/api/v1/catalog/features/", json!({"name": "Exports", "identifier": "exports", "featureType": "BOOLEAN"}))
        .await;
    api.ok(
        "/api/v1/catalog/plans/",
        json!({"name": "Solo", "identifier": "solo", "product": "tool",
            "license": {"enabled": true, "activationLimitEnabled": true, "activationLimit": 3, "heartbeatTtlSeconds": 3600}}),
    )
    .await;
    api.ok(
        "/api/v1/catalog/plans/solo/prices/bulk/",
        json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
            {"chargePeriod": "MONTHLY", "priceData": {"amount": 9}}]}]}]}),
    )
    .await;
    let (_, feature) = api.get("/api/v1/catalog/features/exports/").await;
    api.ok(
        "/api/v1/catalog/plans/solo/features/",
        json!({"planEntitlements": [{"feature": feature["id"], "details": {"value": true}}]}),
    )
    .await;
    api.ok("/api/v1/catalog/plans/solo/publish/", json!({})).await;
    let sub = api.buy("solo", "MONTHLY", "cus_sdk_lic", "4242424242424242", json!({})).await;
    let key = api.sub(&sub).await["license"][0]["licenseKey"].as_str().unwrap().to_string();

    let client = s.sdk();
    let licenses = client.licenses();
    let a =
        licenses.activate(&key, Some("cus_sdk_lic"), Some("studio"), Some(json!({"fingerprint": "f1"}))).await.unwrap();
    assert_eq!((a.license.activation_usage, a.license.activation_limit), (1, 3));
    assert_eq!(a.license.plan.as_ref().unwrap().product.as_ref().unwrap().identifier, "tool");
    let v = licenses.validate(&key, Some(&a.instance_id)).await.unwrap();
    assert_eq!((v.valid, v.code.as_str()), (true, "VALID"));
    let unknown = licenses.validate("LIC-NOT-A-KEY", None).await.unwrap();
    assert_eq!((unknown.valid, unknown.code.as_str(), unknown.license.is_none()), (false, "INVALID_KEY", true));
    let beat = licenses.heartbeat(&key, &a.instance_id).await.unwrap();
    assert_eq!(beat.heartbeat_ttl_seconds, Some(3600));

    // An offline file: verified with the public key alone; one changed byte,
    // another environment's key or its expiry refuse it.
    let file = licenses.checkout(&key, &a.instance_id, Some(7200)).await.unwrap();
    assert_eq!((file.ttl, file.alg.as_str()), (7200, "ed25519"));
    let public = licenses.public_key().await.unwrap().public_key;
    let now = chrono::DateTime::parse_from_rfc3339(&file.issued_at).unwrap().to_utc();
    let payload = verify_file(&public, &file.certificate, now).unwrap();
    assert_eq!(payload["license"]["licenseKey"], key.as_str());
    assert_eq!(payload["instance"]["id"], a.instance_id.as_str());
    assert_eq!(payload["meta"]["expiry"], file.expires_at.as_str());
    assert_eq!(payload["entitlements"][0]["featureId"], "exports", "{payload}");
    let lines: Vec<&str> = file.certificate.lines().collect();
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let middle = &mut changed[lines.len() / 2];
    let c = middle.remove(10);
    middle.insert(10, if c == 'A' { 'B' } else { 'A' });
    assert!(verify_file(&public, &changed.join("\n"), now).is_err(), "a changed byte is refused");
    let later = now + chrono::Duration::seconds(7200);
    assert_eq!(verify_file(&public, &file.certificate, later), Err(FileError::Expired(file.expires_at.clone())));
    let production = s.key_for(kelviq_core::keys::KeyKind::Server, kelviq_core::Environment::Production).await;
    let other = s.sdk_with(&production).licenses().public_key().await.unwrap().public_key;
    assert_ne!(other, public, "each environment signs with its own key");
    assert_eq!(verify_file(&other, &file.certificate, now), Err(FileError::BadSignature));
    let refused = licenses.checkout(&key, &a.instance_id, Some(60)).await.unwrap_err();
    assert_eq!(refused.status(), Some(400));
    let session = client.portal().create_session("cus_sdk_lic").await.unwrap();
    assert!(session.link().starts_with(&s.url("/portal/demo/?token=cpt-")), "{}", session.link());
    assert_eq!(client.portal().create_session("nobody").await.unwrap_err().status(), Some(400));

    // The merchant's calls, blocking.
    let (base, token, key2) = (s.base_url.clone(), s.server_key.clone(), key.clone());
    tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(&token).base_url(&base).build_blocking().unwrap();
        let licenses = client.licenses();
        assert_eq!(client.portal().create_session("cus_sdk_lic").unwrap().email, "cus_sdk_lic@example.com");
        let page = licenses.list(Some("cus_sdk_lic"), None).unwrap();
        assert_eq!(page.count, 1);
        let id = page.results[0].details.id.clone();
        let instance = page.results[0].instances[0].id.clone();
        let changed =
            licenses.update(&id, LicenseChanges { activation_limit: Some(None), ..Default::default() }).unwrap();
        assert_eq!(changed.details.activation_limit, 0, "unlimited");
        let b = licenses.activate(&key2, None, None, None).unwrap();
        assert_eq!(b.license.activation_usage, 2);
        let after = licenses.revoke_instance(&id, &instance).unwrap();
        assert_eq!(after.details.activation_usage, 1);
        let reset = licenses.reset(&id).unwrap();
        assert_eq!(reset.details.activation_usage, 0);
        assert!(reset.instances.iter().all(|i| i.deactivated_by.as_deref() == Some("MERCHANT")));
        let fresh = licenses.regenerate(&id).unwrap();
        assert_eq!(licenses.validate(&key2, None).unwrap().code, "INVALID_KEY");
        assert_eq!(licenses.validate(&fresh.details.license_key, None).unwrap().code, "VALID");
        assert_eq!(licenses.deactivate(&fresh.details.license_key, &b.instance_id).unwrap_err().status(), Some(404));
    })
    .await
    .unwrap();
}

on_both_backends!(sdk_licenses);
