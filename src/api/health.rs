//! `/healthz` (the process answers), `/readyz` (it can do its work) and `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use deadpool_postgres::Pool;
use serde_json::json;

use super::ApiState;

/// What `/readyz` checks: the database (queried on each probe) and named
/// components (broker connection, consumers) that report their own state.
#[derive(Clone)]
pub struct Readiness {
    pool: Pool,
    components: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    pub fn new(pool: Pool) -> Self {
        Self { pool, components: Arc::default() }
    }

    /// Registers or updates a component; an unready component makes `/readyz` 503.
    pub fn set(&self, component: &str, ready: bool) {
        self.components.lock().expect("readiness lock").insert(component.to_owned(), ready);
    }

    pub async fn check(&self) -> (bool, BTreeMap<String, &'static str>) {
        let mut checks = BTreeMap::new();
        let db_ok = tokio::time::timeout(Duration::from_secs(2), async {
            let client = self.pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        })
        .await
        .ok()
        .flatten()
        .is_some();
        checks.insert("database".to_owned(), if db_ok { "ok" } else { "unavailable" });
        let mut ready = db_ok;
        for (name, ok) in self.components.lock().expect("readiness lock").iter() {
            checks.insert(name.clone(), if *ok { "ok" } else { "unavailable" });
            ready &= *ok;
        }
        (ready, checks)
    }
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let (ready, checks) = state.readiness.check().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks})))
}

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
