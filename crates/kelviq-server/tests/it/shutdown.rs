//! Graceful shutdown lets a request already in flight finish and commit.

use crate::common;

use common::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn in_flight_request_finishes(backend: Backend) {
    let mut srv = TestServer::start(backend).await;
    let addr = srv.base_url.trim_start_matches("http://").to_string();
    let body = r#"{"customerId": "late", "email": "late@example.com"}"#;
    let (head, tail) = body.split_at(10);
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/v1/customers/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        srv.server_key,
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // Let the server accept the connection and start reading the request (it
    // shows no sign of that a test could poll), then begin shutting down while
    // the rest of the body is still on its way.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    srv.begin_shutdown();
    // Shutdown has begun once the listener refuses new connections.
    let begun = std::time::Instant::now();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(begun.elapsed() < std::time::Duration::from_secs(5), "the listener never closed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    conn.write_all(tail.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    // New connections are refused once shutdown has begun.
    let refused = reqwest::get(srv.url("/healthz")).await;
    assert!(refused.is_err(), "{refused:?}");
    srv.wait_stopped().await;
    // The server closed its store on the way out; what it acknowledged is on disk.
    let reopened = kelviq_store::Store::connect(&srv.db.url, 2).await.unwrap();
    let saved = reopened.find_customer(&srv.tenant, "late").await.unwrap();
    assert_eq!(saved.map(|c| c.email), Some(Some("late@example.com".to_string())));
    reopened.close().await;
}

on_both_backends!(in_flight_request_finishes);
