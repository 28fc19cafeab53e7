//! A real HTTP receiver for webhook tests: records every request it gets
//! (path, headers, raw body) and answers as the test scripts it.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }
}

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with one header, e.g. (429, "retry-after", "3600").
    WithHeader(u16, &'static str, String),
    /// Waits, then answers 200 (or never, when the test ends first).
    Hang(Duration),
}

type Script = dyn Fn(usize, &str) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Arc<Script>>>,
    arrived: Arc<tokio::sync::Notify>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let n = {
        let mut got = s.got.lock().unwrap();
        got.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.to_vec(),
            at: std::time::Instant::now(),
        });
        got.iter().filter(|r| r.path == path).count()
    };
    s.arrived.notify_waiters();
    let script = s.script.lock().unwrap().clone();
    match script(n, &path) {
        Reply::Status(code) => (StatusCode::from_u16(code).unwrap(), "ok").into_response(),
        Reply::WithHeader(code, name, value) => {
            (StatusCode::from_u16(code).unwrap(), [(name, value)], "later").into_response()
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}

impl Receiver {
    /// Starts a receiver answering 200 to everything.
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Receiver {
        let shared = Shared {
            got: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(|_, _| Reply::Status(200)))),
            arrived: Arc::default(),
        };
        let app = axum::Router::new().fallback(take).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, task }
    }

    /// Answers the n-th request (1-based) to each path as `script` says.
    pub fn script(&self, script: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Arc::new(script);
    }

    pub fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    pub fn got_on(&self, path: &str) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits until `path` has received at least `n` requests (panics after `within`).
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.got_on(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got = self.got_on(path);
                assert!(got.len() >= n, "{path}: {} of {n} requests arrived within {within:?}", got.len());
                return got;
            }
        }
    }
}
