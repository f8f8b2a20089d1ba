//! The real app in process: [`TestApp::start`] is the one way a test runs it.
//! Both the in-process app and a child [`Process`](crate::Process) are
//! reached over HTTP through an [`Admin`] client.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use authrelay::app::{App, Roles};
use authrelay::profile::ProfileStore;
use authrelay::worker::WorkerContext;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::contracts::{self, EventTap};
use crate::{ResultTap, TestBroker, TestEnv, eventually, lazy, metric};

/// The admin API of a running app, as the test's client.
pub struct Admin {
    pub addr: SocketAddr,
    pub token: String,
    pub http: reqwest::Client,
}

impl Admin {
    /// A client for the app at `addr`; each request gives up after `timeout`.
    pub fn new(addr: SocketAddr, token: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().no_proxy().timeout(timeout).build().unwrap();
        Self { addr, token: token.to_owned(), http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn profiles_url(&self, ws: &str) -> String {
        self.url(&format!("/v1/workspaces/{ws}/auth-profiles"))
    }

    /// A request with the admin token; the status and the body (JSON, or text
    /// as a JSON string, or null when empty).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method.clone(), self.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request reaches the app");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        // Every answer a test reads must be what docs/openapi.json says.
        let errors = contracts::response_errors(method.as_str(), path, status, &value);
        assert!(
            errors.is_empty(),
            "{method} {path} → {status} {value}\nbreaks docs/openapi.json:\n{}",
            errors.join("\n")
        );
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a profile and returns its id; panics unless 201.
    pub async fn create_profile(&self, ws: &str, body: Value) -> String {
        let (status, created) = self.post(&format!("/v1/workspaces/{ws}/auth-profiles"), body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body.as_str().expect("metrics are text").to_owned()
    }

    /// The value of one Prometheus series on `/metrics` (0 when it has not been created yet).
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics().await, series)
    }

    /// Waits until `series` is at least `n`.
    pub async fn metric_reaches(&self, series: &str, n: f64, within: Duration) {
        eventually(within, format!("{series} reaches {n}"), async || (self.metric(series).await >= n).then_some(()))
            .await;
    }

    /// The status `/readyz` answers; None when the app cannot be reached.
    pub async fn ready(&self) -> Option<u16> {
        self.http.get(self.url("/readyz")).send().await.ok().map(|r| r.status().as_u16())
    }

    /// Waits until `/readyz` answers `status`; returns how long that took.
    pub async fn ready_within(&self, status: u16, within: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        let what = lazy(|| format!("/readyz answers {status}"));
        eventually(within, what, async || (self.ready().await == Some(status)).then_some(())).await;
        started.elapsed()
    }
}

/// The real app, built from a [`TestEnv`] and run in this process, on
/// 127.0.0.1 with a port of its own. Its AMQP topology is declared and a
/// [`ResultTap`] opened before it starts, so no result is missed.
pub struct TestApp {
    admin: Admin,
    pub store: ProfileStore,
    /// The worker's shared state (caches), when the app runs the worker role.
    pub worker: Option<Arc<WorkerContext>>,
    /// The test's own connection to the broker (not through any proxy the app uses).
    pub broker: TestBroker,
    /// Every result the app publishes.
    pub results: ResultTap,
    /// Every profile event published in the app's prefix, validated as it arrives.
    pub events: EventTap,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub env: TestEnv,
}

/// The admin API alone (no worker) in a fresh environment.
pub async fn spawn_api() -> TestApp {
    TestApp::start(TestEnv::new(), Roles { worker: false, api: true }).await
}

/// Every role (the worker and the admin API) in a fresh environment.
pub async fn spawn_worker() -> TestApp {
    TestApp::start(TestEnv::new(), Roles::ALL).await
}

impl TestApp {
    pub async fn start(env: TestEnv, roles: Roles) -> TestApp {
        let broker = TestBroker::new(env.names()).await;
        let results = broker.tap().await;
        let events = EventTap::open(&broker).await;
        let config = env.config();
        let app = App::build(config, roles).await.expect("app builds");
        let admin = Admin::new(app.http_addr(), env.admin_token(), Duration::from_secs(60));
        let store = app.store().clone();
        let worker = app.worker().cloned();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestApp { admin, store, worker, broker, results, events, shutdown, handle, env }
    }

    /// The worker's shared state; panics when the app runs no worker.
    pub fn worker(&self) -> Arc<WorkerContext> {
        self.worker.clone().expect("the app runs the worker role")
    }

    /// Stops the app; it must stop within its grace period plus a margin.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let limit = self.env.config().worker.shutdown_grace + Duration::from_secs(30);
        let _ = tokio::time::timeout(limit, self.handle).await.expect("the app stops within its grace period");
        self.events.assert_all_valid();
    }
}

impl Deref for TestApp {
    type Target = Admin;

    fn deref(&self) -> &Admin {
        &self.admin
    }
}
