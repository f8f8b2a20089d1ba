//! `POST /v1/replay`: moves parked jobs back to their queues (as `authrelay replay`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};

use super::{ApiError, ApiJson, ApiState};
use crate::error_text::{Chain, chain};
use crate::queue::close_connection;
use crate::queue::connect::connect;
use crate::queue::replay::{self, ReplayError, ReplayRequest};

/// What `POST /v1/replay` needs to reach the broker.
#[derive(Clone)]
pub struct ReplayTarget {
    pub amqp_url: secrecy::SecretString,
    pub names: crate::queue::Names,
    pub settings: std::sync::Arc<crate::config::WorkerConfig>,
}

/// `POST /v1/replay`: the same operation and filters as `authrelay replay`.
#[utoipa::path(post, path = "/v1/replay", summary = "Move parked jobs back to their queues", tag = "replay",
    request_body = super::openapi::types::ReplayRequest,
    responses(
        (status = 200, description = "how many parked jobs moved (or would move)", body = super::openapi::types::ReplayReport),
        (status = 422, description = "invalid filter", body = super::openapi::types::Unprocessable),
        (status = 503, description = "`broker_unavailable`", body = super::openapi::types::Error),
    ))]
pub async fn replay(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Response, ApiError> {
    let unavailable = |e: &(dyn std::error::Error + 'static)| {
        tracing::warn!(error = %Chain(e), "replay failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", chain(e))
    };
    let connection = connect(&state.replay.amqp_url).await.map_err(|e| unavailable(&e))?;
    let report = replay::replay(&connection, &state.replay.names, &state.replay.settings, &request).await;
    close_connection(&connection, "replay done").await;
    match report {
        Ok(report) => {
            report.record(&state.metrics);
            Ok(Json(report).into_response())
        }
        Err(ReplayError::BadRate) => {
            Err(ApiError::invalid(crate::profile::FieldErrors::single("rate", "must be a positive number")))
        }
        Err(e) => Err(unavailable(&e)),
    }
}
