//! The admin web page (Manage → Auth Profiles), served at `/ui/` from assets
//! compiled into the binary.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;

use crate::api::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new().route("/ui", get(|| async { Redirect::permanent("/ui/") }))
}
