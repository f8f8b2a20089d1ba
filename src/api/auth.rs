//! The admin token check for every `/v1` route.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::ApiState;
use super::error::ApiError;
use crate::profile::Actor;

/// Lets the request through when it carries the admin token, and records the
/// token's label as the [`Actor`] for the audit log.
pub async fn require_admin_token(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(token) if token_matches(token, state.admin_token.token.expose_secret()) => {
            request.extensions_mut().insert(Actor(state.admin_token.label.clone()));
            next.run(request).await
        }
        _ => {
            // Read a small body first, so the refusal leaves the connection usable.
            super::early_rejection::drain(request.into_body(), super::MAX_BODY_BYTES).await;
            let mut response = ApiError::unauthorized().into_response();
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares digests in constant time, so neither the content nor the length
/// of the expected token leaks through timing.
fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_exact_token_matches() {
        assert!(super::token_matches("abc", "abc"));
        assert!(!super::token_matches("abd", "abc"));
        assert!(!super::token_matches("", "abc"));
        assert!(!super::token_matches("abcd", "abc"));
    }
}
