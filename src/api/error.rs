//! One JSON error shape for every failure: `{"error": code, "message": …}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::db;
use crate::error_text::Chain;
use crate::profile::{FieldErrors, StoreError, Usage};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: None }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <admin token>`")
    }

    pub fn invalid(errors: FieldErrors) -> Self {
        let details = serde_json::to_value(&errors.0).unwrap_or(Value::Null);
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: errors.to_string(),
            extra: Some(("details", details)),
        }
    }

    pub fn in_use(usage: Usage) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code: "profile_in_use",
            message: format!(
                "the profile is used by {} action(s) or flow node(s); remove those references first",
                usage.total()
            ),
            extra: Some(("usage", serde_json::to_value(usage).unwrap_or(Value::Null))),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("profile"),
            StoreError::NameTaken(_) => Self::new(StatusCode::CONFLICT, "name_taken", e.to_string()),
            StoreError::InUse(usage) => Self::in_use(usage),
            StoreError::Invalid(errors) => Self::invalid(errors),
            StoreError::Unusable { .. } | StoreError::KeysMissing(_) => {
                tracing::error!(error = %Chain(&e), "stored profile cannot be opened");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "profile_unusable", e.to_string())
            }
            // PostgreSQL refuses NUL bytes in text: a path or query that carries one is bad input.
            StoreError::Db(db::DbError::Postgres(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE) =>
            {
                Self::new(StatusCode::BAD_REQUEST, "bad_request", "text must not contain NUL bytes")
            }
            StoreError::Db(db) if db::is_unavailable(&db) => {
                tracing::warn!(error = %Chain(&db), "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is not reachable; try again",
                )
            }
            StoreError::Db(db) => {
                tracing::error!(error = %Chain(&db), "database error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "bad_request",
        };
        Self::new(status, code, rejection.body_text())
    }
}
