//! Answering a request before reading its body without breaking the client.
//!
//! When a response is sent while the request body is still (partly) unread —
//! a 401 from the token check, a 413 past the size limit, a 404 or 415 — the
//! server cannot reuse the connection and closes it. Said silently, a client
//! that writes headers and body separately (Python's `requests`, for one) gets
//! a broken pipe, and a pooled client fails its *next* request on the dead
//! connection. So:
//! - a rejection that can afford it reads the rest of a small body first
//!   ([`drain`]), and the connection stays usable;
//! - any other response sent with the body unread says `Connection: close`
//!   ([`close_unless_body_read`]), so the client knows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt as _;

/// How long [`drain`] waits for the rest of a body.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Marks the response `Connection: close` when it is sent before the request
/// body was read to its end.
pub async fn close_unless_body_read(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = Arc::new(AtomicBool::new(body.is_end_stream()));
    let body = if read.load(Ordering::Relaxed) {
        body
    } else {
        let at_end = Arc::clone(&read);
        let end = futures_util::stream::poll_fn(move |_| {
            at_end.store(true, Ordering::Relaxed);
            std::task::Poll::Ready(None)
        });
        Body::from_stream(body.into_data_stream().chain(end))
    };
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read.load(Ordering::Relaxed) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and discards the rest of `body` when it is at most `max` bytes and
/// arrives within a second; whether it did. A request about to be refused
/// then leaves its connection usable.
pub async fn drain(body: Body, max: usize) -> bool {
    let read_all = async {
        let mut seen = 0usize;
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            seen += chunk.map_err(|_| ())?.len();
            if seen > max {
                return Err(());
            }
        }
        Ok(())
    };
    matches!(tokio::time::timeout(DRAIN_WAIT, read_all).await, Ok(Ok(())))
}
