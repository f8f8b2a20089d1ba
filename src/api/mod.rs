//! The admin HTTP API.
//!
//! | route | handler |
//! |---|---|
//! | `POST /v1/workspaces/{ws}/auth-profiles` | [`profiles::create`] |
//! | `GET /v1/workspaces/{ws}/auth-profiles` | [`profiles::list`] (`q`, `type`, `state`, `limit`, `cursor`) |
//! | `GET·PATCH·DELETE /v1/workspaces/{ws}/auth-profiles/{id}` | [`profiles::show`], [`profiles::update`], [`profiles::delete`] |
//! | `GET /v1/workspaces/{ws}/auth-profiles/{id}/usage` | [`profiles::usage`] |
//! | `POST /v1/workspaces/{ws}/auth-profiles/{id}/test` | [`profiles::test`] (optional `{"url"}`) |
//! | `PUT·DELETE /v1/workspaces/{ws}/references/{kind}/{ref_id}` | [`profiles::put_reference`], [`profiles::delete_reference`] |
//! | `GET /v1/workspaces/{ws}/audit` | [`profiles::audit`] (`profile_id`, `limit`, `cursor`) |
//! | `POST /v1/replay` | [`replay::replay`] (filters as `authrelay replay`) |
//! | `GET /v1/openapi.json` | [`openapi::serve`]: the OpenAPI 3.1 document of this API (no token) |
//! | `GET /healthz`, `/readyz`, `/metrics` | [`health`] |
//! | `GET /ui/…` | [`ui`]: the admin page |
//!
//! Every `/v1` route but the OpenAPI document needs `Authorization: Bearer <admin token>`; errors are
//! `{"error", "message"}` JSON; another workspace's profile is a 404.

pub mod auth;
mod early_rejection;
pub mod error;
pub mod health;
pub mod openapi;
pub mod profiles;
pub mod replay;
pub mod schemas;
pub mod ui;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Router, extract::FromRequest};

use crate::config::AdminToken;
use crate::metrics::{HttpMethod, Metrics};
use crate::profile::ProfileStore;
use crate::readiness::Readiness;
pub use error::ApiError;

/// Request bodies larger than this are refused with 413.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub store: ProfileStore,
    pub metrics: Metrics,
    pub admin_token: AdminToken,
    pub readiness: Readiness,
    pub prober: crate::credentials::probe::Prober,
    pub replay: replay::ReplayTarget,
}

pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/workspaces/{ws}/auth-profiles", get(profiles::list).post(profiles::create))
        .route(
            "/v1/workspaces/{ws}/auth-profiles/{id}",
            get(profiles::show).patch(profiles::update).delete(profiles::delete),
        )
        .route("/v1/workspaces/{ws}/auth-profiles/{id}/usage", get(profiles::usage))
        .route("/v1/workspaces/{ws}/auth-profiles/{id}/test", post(profiles::test))
        .route("/v1/workspaces/{ws}/audit", get(profiles::audit))
        .route("/v1/replay", post(replay::replay))
        .route(
            "/v1/workspaces/{ws}/references/{kind}/{ref_id}",
            put(profiles::put_reference).delete(profiles::delete_reference),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_admin_token));
    // The document describes the API to anyone who may reach it; it holds no secret.
    let open = Router::new().route(openapi::OPENAPI_PATH, get(openapi::serve));
    with_common_layers(Router::new().merge(v1).merge(open).merge(ui::router()), state)
}

/// Only health, readiness and metrics: what a worker-only process serves.
pub fn ops_router(state: ApiState) -> Router {
    with_common_layers(Router::new(), state)
}

fn with_common_layers(routes: Router<ApiState>, state: ApiState) -> Router {
    routes
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(early_rejection::close_unless_body_read))
        .with_state(state)
}

/// Counts requests by route template (never the concrete path: ids would make
/// the label set unbounded) and status class.
async fn record_metrics(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = HttpMethod::of(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.http_request(&route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `Json` whose rejections use our error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
