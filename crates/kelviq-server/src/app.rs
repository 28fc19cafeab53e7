//! The application: router assembly, serving with graceful shutdown, and the
//! demo bootstrap.

use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::metrics;
use crate::routes;
use crate::state::AppState;
use axum::extract::{ConnectInfo, DefaultBodyLimit, OriginalUri, Request};
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::Router;
use kelviq_core::keys::{generate, KeyKind};
use kelviq_core::{Clock, Environment, SystemClock};
use kelviq_store::{Organization, Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Connects to the configured database and runs the migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.effective_database_url();
    let store = Store::connect(&url, config.db_max_connections)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", kelviq_store::redact_url(&url)))?;
    store.migrate().await?;
    Ok(store)
}

/// The router, without the trailing-slash handling of [`serve`].
pub fn router(state: AppState) -> Router {
    metrics::handle();
    let body_limit = state.config.body_limit_bytes;
    Router::new()
        .merge(routes::health::router())
        .merge(routes::hosted::router())
        .merge(routes::portal::router())
        .merge(routes::stripe::router())
        // The hot routes (the entitlement check, license validation) outside
        // the nest: a nested route's URI is rebuilt without its prefix on
        // every request.
        .merge(routes::entitlements::router())
        .merge(routes::licenses::edge_router())
        .nest("/api/v1", routes::api_router().merge(crate::openapi::router()))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|req: Request| async move { ApiError::MethodNotAllowed(req.method().to_string()) })
        .layer(axum::middleware::from_fn(crate::http::reqlog::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(crate::http::cors::layer())
        .with_state(state)
}

/// Every route answers with or without its trailing slash: the path is
/// trimmed before routing, and the original URI kept for absolute links.
fn trim_trailing_slash(mut req: Request) -> Request {
    let uri = req.uri().clone();
    req.extensions_mut().insert(OriginalUri(uri.clone()));
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match uri.query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        let mut parts = uri.into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(new) = Uri::from_parts(parts) {
                *req.uri_mut() = new;
            }
        }
    }
    req
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (up to the configured grace period).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    let app = router(state.clone());
    let service = tower::service_fn(move |req: Request| {
        let app = app.clone();
        async move {
            // What no route may see (see `urlcheck`), before routing.
            if let Err(refused) = crate::http::urlcheck::check_uri(req.uri()) {
                return Ok(refused.into_response());
            }
            let response = app.oneshot(trim_trailing_slash(req)).await.into_response();
            Ok::<_, std::convert::Infallible>(crate::http::urlcheck::json_errors(response).await)
        }
    });
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(());
    };
    let follower = tokio::spawn(crate::change_feed::follow(state.clone()));
    let writer = crate::usage::start(state.clone()).await?;
    let (stop_scheduler, scheduler_stop) = tokio::sync::watch::channel(false);
    let scheduler = crate::selling::spawn_scheduler(state.clone(), scheduler_stop.clone());
    let dispatcher = crate::webhooks::dispatcher::spawn(state.clone(), scheduler_stop.clone());
    let seen_writer = crate::licenses::spawn_seen_writer(state.clone(), scheduler_stop.clone());
    crate::geo::spawn_reloader(state.geo.clone(), state.config.geo_reload_interval_ms, scheduler_stop.clone());
    // Each connection's requests carry its peer's address (see `geo`).
    let make = tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, TcpListener>| {
        let peer = ConnectInfo(*incoming.remote_addr());
        let service = service.clone();
        async move {
            Ok::<_, std::convert::Infallible>(tower::service_fn(move |mut req: Request| {
                req.extensions_mut().insert(peer);
                service.clone().oneshot(req)
            }))
        }
    });
    let server = axum::serve(listener, make).with_graceful_shutdown(signal);
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => done??,
        _ = async { let _ = stopping_rx.await; tokio::time::sleep(grace).await } => {
            tracing::warn!(seconds = grace.as_secs(), "grace period over; dropping remaining connections");
        }
    }
    follower.abort();
    // Every answered request's batch has committed; nothing is lost here.
    writer.stop().await;
    let _ = stop_scheduler.send(true);
    let _ = scheduler.await;
    let _ = dispatcher.await;
    let _ = seen_writer.await;
    state.store.close().await;
    Ok(())
}

/// Opens the store and serves the API: what `kelviq serve` runs.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    serve(AppState::new(store, Arc::new(SystemClock), config), listener, shutdown).await
}

/// The demo organisation and the sandbox keys made for it on first start.
pub struct Bootstrap {
    pub org: Organization,
    pub server_key: String,
    pub client_key: String,
}

/// On an empty database, creates the demo organisation with a sandbox server
/// key and client key. Several processes may race here: exactly one wins.
pub async fn bootstrap_demo(store: &Store, clock: &dyn Clock) -> anyhow::Result<Option<Bootstrap>> {
    if store.count_organizations().await? > 0 {
        return Ok(None);
    }
    let now = clock.now();
    let org = match store.create_organization("Demo organisation", "demo", now).await {
        Ok(org) => org,
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let server = generate(KeyKind::Server, Environment::Sandbox);
    let client = generate(KeyKind::Client, Environment::Sandbox);
    store.insert_api_key(org.id, Environment::Sandbox, KeyKind::Server, Some("demo server key"), &server, now).await?;
    store.insert_api_key(org.id, Environment::Sandbox, KeyKind::Client, Some("demo client key"), &client, now).await?;
    Ok(Some(Bootstrap { org, server_key: server.secret, client_key: client.secret }))
}
