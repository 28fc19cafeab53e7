//! The Rust SDK's transport behaviour: network failures and timeouts carry no
//! status (the Python SDK's `APIError`), bad configuration is refused early.

use crate::common;

use common::{Backend, TestServer};
use kelviq_sdk::customers::ListCustomers;
use kelviq_sdk::{ErrorKind, Kelviq};
use std::time::Duration;

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client =
        Kelviq::builder().access_token("sk_test_x").base_url(format!("http://127.0.0.1:{port}")).build().unwrap();
    let e = client.customers().list(ListCustomers::default()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::Api, None));
    assert!(e.is_network());
    assert!(e.message().starts_with("Could not connect to"), "{}", e.message());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and never answers.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let client = Kelviq::builder()
        .access_token("sk_test_x")
        .base_url(format!("http://{addr}"))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = client.customers().retrieve("u1").await.unwrap_err();
    assert!(e.is_network(), "{e:?}");
    assert!(e.message().contains("timed out"), "{}", e.message());
    holder.abort();
}

#[tokio::test]
async fn configuration_is_checked() {
    let e = Kelviq::builder().base_url("http://127.0.0.1:1").build().unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::InvalidRequest, None));
    let e = Kelviq::builder().access_token("sk").base_url("not a url").build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn trailing_slashes_in_urls_are_stripped() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let client = Kelviq::builder()
        .access_token(&srv.server_key)
        .environment("sandbox")
        .base_url(format!("{}/", srv.base_url))
        .edge_api_url(format!("{}/", srv.base_url))
        .build()
        .unwrap();
    assert_eq!(client.customers().list(ListCustomers::default()).await.unwrap().count, 0);
    srv.stop().await;
}
