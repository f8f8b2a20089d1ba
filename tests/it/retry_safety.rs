//! Never-sent vs maybe-sent (contract §9): with `request.idempotent: false`,
//! a failure after the request may have reached the target is final
//! (`maybe_sent: true`, not retried), while a failure that proves nothing was
//! sent is retried as before; without the field, retries are as in §3.
//! Targets are servers of the test's own on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{closed_addr, hang_up_server, serve};
use authrelay_testkit::{JobExt as _, TestApp, job};
use axum::extract::State;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::WAIT;

/// Counts the requests it receives, and answers each one only after a second.
async fn slow_target() -> (Arc<AtomicUsize>, String) {
    let received = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new()
        .fallback(async |State(received): State<Arc<AtomicUsize>>| {
            received.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            "booked"
        })
        .with_state(received.clone());
    (received, format!("http://{}/book-a-slot", serve(router).await))
}

/// A POST of `url` with a 300 ms attempt timeout and up to 3 attempts, with `idempotent` if given.
fn booking(id: &str, url: &str, idempotent: Option<Value>) -> Value {
    let mut request = json!({"method": "POST", "url": url, "body": {"slot": "10:30"}, "timeout_ms": 300});
    if let Some(idempotent) = idempotent {
        request["idempotent"] = idempotent;
    }
    job(id, Phase::PreCall).request(request).max_attempts(3)
}

async fn result_of(h: &TestApp, job: &Value) -> Value {
    let published = Instant::now();
    h.broker.publish_job(job).await;
    h.results.of(job["job_id"].as_str().unwrap(), published, WAIT).await.0
}

#[tokio::test]
async fn a_non_idempotent_request_that_timed_out_after_reaching_the_target_is_not_retried() {
    let h = spawn_worker().await;
    let (received, url) = slow_target().await;

    let result = result_of(&h, &booking("book-once", &url, Some(json!(false)))).await;

    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["error"]["maybe_sent"], true, "{result}");
    assert_eq!(result["error"]["retryable"], false, "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    // A retry would have gone within the retry delay (200 ms): give it twice that.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(received.load(Ordering::SeqCst), 1, "the target received the booking exactly once");
    h.stop().await;
}

#[tokio::test]
async fn a_non_idempotent_request_cut_off_by_a_hang_up_is_maybe_sent_and_not_retried() {
    let h = spawn_worker().await;
    let hangs_up = hang_up_server().await;

    let result = result_of(&h, &booking("hung-up", &format!("http://{hangs_up}/book"), Some(json!(false)))).await;

    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["maybe_sent"], true, "{result}");
    assert_eq!(result["error"]["retryable"], false, "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_although_the_request_is_not_idempotent() {
    let h = spawn_worker().await;
    let refusing = format!("http://{}/book", closed_addr());

    let result = result_of(&h, &booking("never-sent", &refusing, Some(json!(false)))).await;

    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "connect", "{result}");
    assert_eq!(result["attempts"], 3, "nothing was sent, so every attempt was made: {result}");
    assert!(result["error"].get("maybe_sent").is_none(), "{result}");
    h.stop().await;
}

#[tokio::test]
async fn without_the_field_a_request_that_timed_out_is_retried_as_before() {
    let h = spawn_worker().await;
    let (received, url) = slow_target().await;

    let result = result_of(&h, &booking("idempotent-by-default", &url, None)).await;

    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["attempts"], 3, "{result}");
    assert!(result["error"].get("maybe_sent").is_none(), "{result}");
    assert_eq!(received.load(Ordering::SeqCst), 3);
    h.stop().await;
}

#[tokio::test]
async fn an_idempotent_field_that_is_not_a_boolean_rejects_the_job_naming_the_field() {
    let h = spawn_worker().await;

    let result = result_of(&h, &booking("bad-flag", "http://127.0.0.1:9/x", Some(json!("no")))).await;

    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], "invalid_job", "{result}");
    assert!(result["error"]["message"].as_str().unwrap().contains("request.idempotent"), "{result}");
    h.stop().await;
}
