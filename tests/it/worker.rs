//! The action worker end to end: jobs published to the real RabbitMQ, targets
//! on 127.0.0.1 (wiremock), profiles in the real PostgreSQL.

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::{JobExt as _, job, json_props};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

#[tokio::test]
async fn a_bearer_profile_reaches_the_target_and_the_result_is_published() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/contacts"))
        .and(header("authorization", "Bearer crm-token-0123456789"))
        .and(header("idempotency-key", "job-1"))
        .and(query_param("source", "voice"))
        .and(query_param("limit", "10"))
        .and(body_json(json!({"phone": "+15550100"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 42})))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "crm-token-0123456789"}}))
        .await;
    let j = job("job-1", Phase::DuringCall)
        .request(json!({"method": "POST", "url": format!("{}/v1/contacts?source=voice", target.uri()),
            "query": {"limit": "10"}, "body": {"phone": "+15550100"}}))
        .with(json!({"auth_profile_id": profile, "inline_auth": {"type": "bearer", "token": "inline-should-lose"}}));
    h.broker.publish_job(&j).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["job_id"], "job-1");
    assert_eq!(result["call_id"], "call-1");
    assert_eq!(result["attempts"], 1);
    assert_eq!(result["response"]["status"], 200);
    assert_eq!(result["response"]["body"], json!({"id": 42}));
    assert_eq!(result["auth_profile_id"], profile.as_str());
    assert_eq!(result["auth_profile_version"], 1);
    assert!(result["error"].is_null());
    assert!(!result.to_string().contains("crm-token"));
    h.stop().await;
}

#[tokio::test]
async fn a_503_is_retried_up_to_max_attempts_then_parked_with_headers() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/flaky")).respond_with(ResponseTemplate::new(503)).expect(3).mount(&target).await;
    let j = job("job-503", Phase::DuringCall).to(&format!("{}/flaky", target.uri())).max_attempts(3);
    h.broker.publish_job(&j).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["attempts"], 3);
    assert_eq!(result["error"]["kind"], "http_status");
    assert_eq!(result["response"]["status"], 503);
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].json(), j, "parked unchanged");
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("http_status"));
    assert_eq!(parked[0].header("x-authrelay-attempts").as_deref(), Some("3"));
    assert_eq!(parked[0].header("x-authrelay-phase").as_deref(), Some("during_call"));
    assert!(parked[0].header("x-authrelay-failed-at").is_some());
    assert!(parked[0].header("x-authrelay-error").unwrap().contains("503"));
    h.stop().await;
}

#[tokio::test]
async fn malformed_messages_are_parked_and_the_next_valid_job_still_succeeds() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    let exchange = h.broker.names.actions_exchange();
    h.broker.publish(&exchange, "pre_call", b"this is not json", json_props()).await;
    h.broker.publish(&exchange, "pre_call", br#"{"workspace_id": "acme"}"#, json_props()).await;
    h.broker.publish_job(&job("bad-url", Phase::PreCall).to("ftp://example.com/x")).await;
    h.broker.publish_job(&job("good", Phase::PreCall).to(&format!("{}/ok", target.uri()))).await;

    let results = h.results.take(2, WAIT).await;
    let by_id = |id: &str| results.iter().find(|r| r["job_id"] == id).cloned().unwrap();
    assert_eq!(by_id("bad-url")["outcome"], "rejected");
    assert_eq!(by_id("bad-url")["error"]["kind"], "invalid_job");
    assert_eq!(by_id("good")["outcome"], "succeeded");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 3, WAIT).await;
    assert_eq!(parked.len(), 3);
    assert!(parked.iter().all(|p| p.header("x-authrelay-error-kind").as_deref() == Some("invalid_job")));
    assert!(parked.iter().any(|p| p.body == b"this is not json"));
    h.results.no_more(Duration::from_millis(300)).await;
    h.stop().await;
}

#[tokio::test]
async fn a_job_past_its_deadline_is_expired_without_a_request() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/late")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let j = job("late", Phase::DuringCall)
        .to(&format!("{}/late", target.uri()))
        .with(json!({"deadline": "2020-01-01T00:00:00Z"}));
    h.broker.publish_job(&j).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "expired");
    assert_eq!(result["attempts"], 0);
    assert_eq!(h.broker.message_count(&h.broker.names.failed_queue()).await, 0, "expired jobs are not parked");
    h.stop().await;
}
