//! `/healthz` (the process answers), `/readyz` (it can do its work) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::ApiState;

#[utoipa::path(get, path = "/healthz", summary = "Liveness", tag = "operations",
    responses((status = 200, description = "the process answers", body = super::openapi::types::Liveness)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", summary = "Readiness", tag = "operations",
    responses(
        (status = 200, description = "ready: the database and broker are reachable", body = super::openapi::types::Readiness),
        (status = 503, description = "not ready; `checks` says which part", body = super::openapi::types::Readiness),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let crate::readiness::Report { ready, checks } = state.readiness.check().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks})))
}

#[utoipa::path(get, path = "/metrics", summary = "Prometheus metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
