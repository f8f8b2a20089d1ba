//! Test harness: a fresh PostgreSQL database per test, dropped afterwards, and
//! the real app served on 127.0.0.1 port 0.
#![allow(dead_code)]

pub mod amqp;
pub mod proxy;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use authrelay::app::{App, Roles};
use authrelay::config::Config;
use authrelay::crypto::KeyRing;
use authrelay::profile::ProfileStore;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test; dropped (forcibly) when the guard goes.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new() -> Self {
        watchdog();
        // Created lazily by the app (create-database-if-missing is part of what we test).
        Self { name: format!("authrelay_test_{}", uuid::Uuid::new_v4().simple()) }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup_on_own_runtime(async move {
            // Retried: a busy server must not make a test leave its database behind.
            for _ in 0..5 {
                if let Ok((client, conn)) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    if client.batch_execute(&sql).await.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
    }
}

/// Runs a guard's cleanup to completion from `Drop`, which runs inside the
/// test's runtime: on a thread with a runtime of its own, and bounded, so a
/// server that stopped answering fails to clean up instead of hanging the test.
pub fn cleanup_on_own_runtime(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if rt.block_on(async { tokio::time::timeout(CLEANUP_WAIT, cleanup).await }).is_err() {
            eprintln!("test cleanup did not finish within {CLEANUP_WAIT:?}; something may be left behind");
        }
    })
    .join();
}

const CLEANUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A test binary that runs longer than this is hung: a hang must fail CI with
/// a message, not use up its whole time. libtest has already named the test
/// ("has been running for over 60 seconds") by the time this fires.
const BINARY_BUDGET: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Starts (once per test binary) a watchdog that aborts the binary after [`BINARY_BUDGET`].
pub fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // AUTHRELAY_TEST_LOG=debug shows the app's own log lines while tests run.
        if let Ok(filter) = std::env::var("AUTHRELAY_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        }
        std::thread::spawn(|| {
            std::thread::sleep(BINARY_BUDGET);
            eprintln!("test binary still running after {BINARY_BUDGET:?}: a test is hung; aborting");
            std::process::abort();
        });
    });
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("authrelay-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn new_key(id: &str) -> String {
    KeyRing::generate_key_spec(id).unwrap()
}

/// The environment a test app runs with; tweak before `spawn_app_with`.
pub struct TestEnv {
    pub vars: HashMap<String, String>,
    pub db: TestDb,
    pub state_dir: TempDir,
}

impl TestEnv {
    pub fn new() -> Self {
        let db = TestDb::new();
        let state_dir = TempDir::new();
        let mut vars = HashMap::new();
        vars.insert("AUTHRELAY_DATABASE_URL".into(), db.url());
        vars.insert("AUTHRELAY_MASTER_KEYS".into(), new_key("k1"));
        vars.insert("AUTHRELAY_ADMIN_TOKEN".into(), format!("test-token-{}", uuid::Uuid::new_v4().simple()));
        vars.insert("AUTHRELAY_ADMIN_TOKEN_LABEL".into(), "test-admin".into());
        vars.insert("AUTHRELAY_HTTP_ADDR".into(), "127.0.0.1:0".into());
        vars.insert("AUTHRELAY_STATE_DIR".into(), state_dir.0.display().to_string());
        vars.insert("AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS".into(), "127.0.0.1/32".into());
        vars.insert("AUTHRELAY_AMQP_PREFIX".into(), format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        Self { vars, db, state_dir }
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    pub fn config(&self) -> Config {
        Config::load(&self.vars).expect("test config loads")
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub token: String,
    pub http: reqwest::Client,
    pub store: ProfileStore,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub env: TestEnv,
    /// Deletes the app's exchanges and queues when the test ends.
    pub broker_guard: Option<amqp::TestBroker>,
    /// The worker's shared state (caches), when the app runs the worker role.
    pub worker: Option<std::sync::Arc<authrelay::worker::WorkerContext>>,
}

/// The admin API alone (no workers).
pub async fn spawn_app() -> TestApp {
    let env = TestEnv::new();
    let guard = amqp::TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let mut app = spawn_app_with(env, Roles { worker: false, api: true }).await;
    app.broker_guard = Some(guard);
    app
}

pub async fn spawn_app_with(env: TestEnv, roles: Roles) -> TestApp {
    let config = env.config();
    let token = env.vars["AUTHRELAY_ADMIN_TOKEN"].clone();
    let app = App::build(config, roles).await.expect("app builds");
    let addr = app.http_addr();
    let store = app.store().clone();
    let worker = app.worker().cloned();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap();
    TestApp { addr, token, http, store, shutdown, handle, env, broker_guard: None, worker }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn profiles_url(&self, ws: &str) -> String {
        self.url(&format!("/v1/workspaces/{ws}/auth-profiles"))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request reaches the app");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
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

    /// Stops the app; it must stop within its grace period plus a margin.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let limit = self.env.config().worker.shutdown_grace + Duration::from_secs(30);
        let _ = tokio::time::timeout(limit, self.handle).await.expect("the app stops within its grace period");
    }
}
