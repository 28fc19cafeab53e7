//! The Rust SDK's storefront settings and payment-method calls, async and
//! blocking, against the real server on both backends.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_sdk::portal::StorefrontSettingsParams;
use serde_json::json;

async fn sdk_storefront_and_payment_methods(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    crate::selling::seed(&api).await;
    api.buy("basic", "MONTHLY", "sid", "4242424242424242", json!({})).await;
    let client = s.sdk();

    let portal = client.portal();
    assert_eq!(portal.settings().await.unwrap().cancellation_mode, "AT_PERIOD_END");
    let changed = portal
        .update_settings(StorefrontSettingsParams {
            display_name: Some(Some("Suite Inc.".into())),
            allowed_plans: Some(Some(vec!["pro".into()])),
            cancellation_mode: Some("DISABLED".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (changed.display_name.as_deref(), changed.allowed_plans.clone(), changed.cancellation_mode.as_str()),
        (Some("Suite Inc."), Some(vec!["pro".to_string()]), "DISABLED")
    );
    let refused = portal
        .update_settings(StorefrontSettingsParams { brand_color: Some(Some("teal".into())), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400));
    let cleared = portal
        .update_settings(StorefrontSettingsParams { display_name: Some(None), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(cleared.display_name, None);

    // A second card through the sandbox checkout of another purchase.
    api.buy("trial", "MONTHLY", "sid", "4000000000000341", json!({})).await;
    let methods = client.payment_methods();
    let page = methods.list(Some("sid"), None, None, None).await.unwrap();
    assert_eq!(page.count, 2);
    let old = page.results.iter().find(|m| !m.is_default).unwrap().id;
    let default = page.results.iter().find(|m| m.is_default).unwrap().id;
    assert_eq!(methods.remove(default).await.unwrap_err().status(), Some(400), "the default stays");
    methods.set_default(old).await.unwrap();

    let (base, token) = (s.base_url.clone(), s.server_key.clone());
    tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(&token).base_url(&base).build_blocking().unwrap();
        assert_eq!(client.portal().settings().unwrap().allowed_plans, Some(vec!["pro".to_string()]));
        let reset = client
            .portal()
            .update_settings(StorefrontSettingsParams { allowed_plans: Some(None), ..Default::default() })
            .unwrap();
        assert_eq!(reset.allowed_plans, None);
        let methods = client.payment_methods();
        methods.remove(default).unwrap();
        let page = methods.list(Some("sid"), None, None, None).unwrap();
        assert_eq!((page.count, page.results[0].id, page.results[0].is_default), (1, old, true));
        assert_eq!(methods.set_default(default).unwrap_err().status(), Some(404), "a removed method is gone");
    })
    .await
    .unwrap();
}

on_both_backends!(sdk_storefront_and_payment_methods);
