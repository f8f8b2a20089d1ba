//! Execution rules end to end (contract sections 2-4): which failures are
//! retried and when, deadlines and timeouts, response limits, the egress
//! guard and a lane's concurrency. Jobs go through the real RabbitMQ; targets
//! are servers on 127.0.0.1.

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{Sequence, Target};
use authrelay_testkit::{JobExt as _, TestApp, TestEnv, job};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

// ---------------------------------------------------------------------------
// Statuses, retries and Retry-After
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_404_is_not_retried_and_the_job_is_parked() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/missing")).respond_with(ResponseTemplate::new(404)).expect(1).mount(&target).await;
    let j = job("job-404", Phase::DuringCall).to(&format!("{}/missing", target.uri())).max_attempts(5);

    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["error"]["retryable"], false, "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    assert_eq!(result["response"]["status"], 404, "{result}");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].json(), j, "parked unchanged");
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("http_status"));
    assert_eq!(parked[0].header("x-authrelay-attempts").as_deref(), Some("1"));
    h.stop().await;
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after_says() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    let responder = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        ResponseTemplate::new(200).set_body_json(json!({"ok": true})),
    ]);
    let arrivals = responder.arrivals();
    Mock::given(path("/limited")).respond_with(responder).expect(2).mount(&target).await;

    h.broker.publish_job(&job("job-429", Phase::DuringCall).to(&format!("{}/limited", target.uri()))).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    let waited = arrivals.gap();
    assert!(waited >= Duration::from_millis(950), "retried after {waited:?}, Retry-After asked for 1 s");
    h.stop().await;
}

#[tokio::test]
async fn a_retry_after_longer_than_the_deadline_allows_ends_the_job_without_waiting() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&target)
        .await;
    let published = Instant::now();

    // during_call: 5 s deadline, 2 attempts; a 30 s wait cannot fit.
    h.broker.publish_job(&job("job-429-long", Phase::DuringCall).to(&format!("{}/busy", target.uri()))).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["response"]["status"], 429, "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    assert!(published.elapsed() < Duration::from_secs(2), "the worker waited {:?} for nothing", published.elapsed());
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Deadlines and timeouts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_slow_target_fails_with_deadline_exceeded_once_the_job_deadline_nears() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .expect(1)
        .mount(&target)
        .await;
    let j = job("job-deadline", Phase::DuringCall)
        .to(&format!("{}/slow", target.uri()))
        .deadline_in(Duration::from_millis(1500));
    let published = Instant::now();

    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    let took = published.elapsed();
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "deadline_exceeded", "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    assert!(took < Duration::from_secs(2), "the result came {took:?} after publishing; the deadline was 1.5 s away");
    h.stop().await;
}

#[tokio::test]
async fn a_per_attempt_timeout_is_retried_and_reported_as_timeout() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/sluggish"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(1)))
        .expect(2)
        .mount(&target)
        .await;
    let j = job("job-timeout", Phase::DuringCall)
        .request(json!({"url": format!("{}/sluggish", target.uri()), "timeout_ms": 200}))
        .max_attempts(2);

    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "timeout", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Response size
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_oversized_response_is_cut_at_the_limit_and_flagged() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_MAX_RESPONSE_BYTES", "1048576");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a".repeat(3 * 1024 * 1024)))
        .expect(1)
        .mount(&target)
        .await;
    let truncated_before = h.metric("authrelay_response_bodies_truncated_total").await;

    h.broker.publish_job(&job("job-big", Phase::DuringCall).to(&format!("{}/big", target.uri()))).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result:.300}");
    assert_eq!(result["response"]["body_truncated"], true);
    let body = result["response"]["body"].as_str().expect("a cut body is a string");
    assert!(!body.is_empty() && body.len() <= 1024 * 1024, "body of {} bytes", body.len());
    assert_eq!(h.metric("authrelay_response_bodies_truncated_total").await, truncated_before + 1.0);
    h.stop().await;
}

#[tokio::test]
async fn a_body_cut_inside_a_multibyte_character_stays_within_the_limit() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_MAX_RESPONSE_BYTES", "1048576");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    // "€" is 3 bytes and 1048576 = 3 × 349525 + 1: the cut falls inside a character.
    Mock::given(path("/euros"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("€".repeat(1024 * 1024).into_bytes(), "text/plain; charset=utf-8"),
        )
        .expect(1)
        .mount(&target)
        .await;

    h.broker.publish_job(&job("job-euros", Phase::DuringCall).to(&format!("{}/euros", target.uri()))).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["response"]["body_truncated"], true);
    let body = result["response"]["body"].as_str().expect("a cut body is a string");
    assert!(body.len() <= 1024 * 1024, "body of {} bytes, over the 1048576-byte limit", body.len());
    assert!(!body.contains('\u{FFFD}'), "the cut left a replacement character the target never sent");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// The egress guard (only 127.0.0.1/32 is allowed in tests)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn loopback_addresses_outside_the_allow_list_are_rejected_without_a_request() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/blocked")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let p = target.address().port();

    h.broker.publish_job(&job("to-127-0-0-2", Phase::DuringCall).to(&format!("http://127.0.0.2:{p}/blocked"))).await;
    h.broker.publish_job(&job("to-ipv6-loopback", Phase::DuringCall).to(&format!("http://[::1]:{p}/blocked"))).await;

    let results = h.results.take(2, WAIT).await;
    for result in &results {
        // `connect` would mean a connection was tried; the guard refuses before that.
        assert_eq!(result["outcome"], "rejected", "{result}");
        assert_eq!(result["error"]["kind"], "destination_blocked", "{result}");
        assert_eq!(result["attempts"], 0, "{result}");
    }
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 2, WAIT).await;
    assert!(parked.iter().all(|p| p.header("x-authrelay-error-kind").as_deref() == Some("destination_blocked")));
    h.stop().await;
}

#[tokio::test]
async fn a_redirect_to_a_blocked_address_is_handed_back_not_followed() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    let p = target.address().port();
    Mock::given(path("/hop"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("http://127.0.0.2:{p}/landing").as_str()),
        )
        .expect(1)
        .mount(&target)
        .await;
    Mock::given(path("/landing")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;

    h.broker.publish_job(&job("job-redirect", Phase::DuringCall).to(&format!("{}/hop", target.uri()))).await;

    // Had the redirect been followed, nothing listens on 127.0.0.2, so the
    // result would be a `connect` failure rather than the 302 itself.
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["response"]["status"], 302, "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_lane_never_sends_more_requests_at_once_than_its_concurrency() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_POST_CALL_CONCURRENCY", "3");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = Target::start(Duration::from_millis(100)).await;

    for i in 0..15 {
        h.broker.publish_job(&job(&format!("bounded-{i}"), Phase::PostCall).to(&target.url())).await;
    }
    let results = h.results.take(15, WAIT).await;

    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    // 15 jobs waiting and 3 slots: the target sees exactly 3 at once, never more.
    assert_eq!(target.most_in_flight(), 3);
}
