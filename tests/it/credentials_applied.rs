//! Credentials as the target sees them (contract sections 3 and 5): every
//! profile type applied by the real worker, the override rules, and profiles
//! that cannot be used. Jobs go through the real RabbitMQ; profiles live in
//! the real PostgreSQL; targets are wiremock servers on 127.0.0.1.

use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::{JobExt as _, TestApp, job};
use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

fn assert_rejected(result: &Value, kind: &str) {
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], kind, "{result}");
    assert_eq!(result["attempts"], 0, "{result}");
}

// ---------------------------------------------------------------------------
// Each type, applied from a stored profile
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_bearer_profile_is_sent_as_a_bearer_authorization_header() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/bearer"))
        .and(header("authorization", "Bearer bearer-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "bearer-token-0123456789"}}))
        .await;

    h.broker
        .publish_job(&job("bearer-1", Phase::DuringCall).to(&format!("{}/bearer", target.uri())).profile(&profile))
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["auth_profile_id"], profile.as_str());
    assert_eq!(result["auth_profile_version"], 1);
    h.stop().await;
}

#[tokio::test]
async fn a_basic_profile_is_sent_as_base64_of_username_colon_password() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("Aladdin:open sesame"));
    assert_eq!(expected, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    Mock::given(path("/basic"))
        .and(header("authorization", expected.as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Basic", "type": "basic", "config": {"username": "Aladdin", "password": "open sesame"}}),
        )
        .await;

    h.broker
        .publish_job(&job("basic-1", Phase::DuringCall).to(&format!("{}/basic", target.uri())).profile(&profile))
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn an_api_key_header_profile_sends_each_pair_as_a_header() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/hdr"))
        .and(header("x-api-key", "hdr-key-0123456789"))
        .and(header("x-tenant", "tenant-42"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let pairs = json!([{"key": "X-Api-Key", "value": "hdr-key-0123456789"}, {"key": "X-Tenant", "value": "tenant-42"}]);
    let profile = h
        .create_profile("acme", json!({"name": "K", "type": "api_key", "config": {"method": "header", "pairs": pairs}}))
        .await;

    h.broker.publish_job(&job("hdr-1", Phase::DuringCall).to(&format!("{}/hdr", target.uri())).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn an_api_key_query_profile_appends_its_pairs_after_the_urls_own_query() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/q"))
        .and(query_param("source", "voice"))
        .and(query_param("limit", "10"))
        .and(query_param("api_key", "query-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "query-key-0123456789"}]}}),
        )
        .await;

    let request = json!({"url": format!("{}/q?source=voice", target.uri()), "query": {"limit": "10"}});
    h.broker.publish_job(&job("query-1", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = target.received_requests().await.unwrap();
    assert_eq!(seen[0].url.query(), Some("source=voice&limit=10&api_key=query-key-0123456789"));
    h.stop().await;
}

async fn body_key_profile(app: &TestApp) -> String {
    app.create_profile(
        "acme",
        json!({"name": "Body", "type": "api_key", "config": {"method": "body", "pairs": [{"key": "api_key", "value": "body-key-0123456789"}]}}),
    )
    .await
}

#[tokio::test]
async fn an_api_key_body_profile_merges_its_pairs_into_a_json_object_body() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"phone": "+15550100", "api_key": "body-key-0123456789"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h).await;

    let request = json!({"method": "POST", "url": format!("{}/json", target.uri()), "body": {"phone": "+15550100"}});
    h.broker.publish_job(&job("body-json", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_merges_its_pairs_into_a_form_body() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/form"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("q=1&api_key=body-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h).await;

    let request = json!({"method": "POST", "url": format!("{}/form", target.uri()), "form": {"q": "1"}});
    h.broker.publish_job(&job("body-form", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_sends_a_json_object_of_its_pairs_when_the_request_has_no_body() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/empty"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"api_key": "body-key-0123456789"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h).await;

    h.broker
        .publish_job(
            &job("body-none", Phase::DuringCall)
                .request(json!({"method": "POST", "url": format!("{}/empty", target.uri())}))
                .profile(&profile),
        )
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_rejects_a_json_body_that_is_not_an_object_as_invalid_job() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/array")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let profile = body_key_profile(&h).await;

    let request = json!({"method": "POST", "url": format!("{}/array", target.uri()), "body": [1, 2, 3]});
    h.broker.publish_job(&job("body-array", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_rejected(&result, "invalid_job");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("invalid_job"));
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Precedence: the profile wins over inline_auth and the request's own keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_header_profile_replaces_inline_auth_and_the_requests_own_header() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    // `header` matches every value of the header: exactly one, the profile's.
    Mock::given(path("/hdr"))
        .and(header("x-api-key", "profile-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "K", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "X-Api-Key", "value": "profile-key-0123456789"}]}}),
        )
        .await;

    let request = json!({"url": format!("{}/hdr", target.uri()), "headers": {"X-Api-Key": "mine"}});
    let inline = json!({"type": "api_key", "method": "header", "pairs": [{"key": "X-Api-Key", "value": "inline-key"}]});
    h.broker
        .publish_job(
            &job("hdr-override", Phase::DuringCall)
                .request(request)
                .profile(&profile)
                .with(json!({"inline_auth": inline})),
        )
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_bearer_profile_replaces_inline_auth_and_the_requests_own_authorization_header() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/auth"))
        .and(header("authorization", "Bearer profile-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "profile-token-0123456789"}}))
        .await;

    let request = json!({"url": format!("{}/auth", target.uri()), "headers": {"Authorization": "Bearer mine"}});
    let j = job("auth-override", Phase::DuringCall)
        .request(request)
        .profile(&profile)
        .with(json!({"inline_auth": {"type": "basic", "username": "u", "password": "inline-pw"}}));
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_query_profile_replaces_a_query_parameter_of_the_same_name() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/q")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "profile-key-0123456789"}]}}),
        )
        .await;

    let request =
        json!({"url": format!("{}/q?api_key=mine&a=1", target.uri()), "query": {"api_key": "mine-too", "b": "2"}});
    h.broker.publish_job(&job("query-override", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = target.received_requests().await.unwrap();
    assert_eq!(seen[0].url.query(), Some("a=1&b=2&api_key=profile-key-0123456789"));
    h.stop().await;
}

#[tokio::test]
async fn a_body_profile_replaces_a_body_field_of_the_same_name() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/json"))
        .and(body_json(json!({"api_key": "body-key-0123456789", "q": 1})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    Mock::given(path("/form"))
        .and(body_string("q=1&api_key=body-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h).await;

    let json_request =
        json!({"method": "POST", "url": format!("{}/json", target.uri()), "body": {"api_key": "mine", "q": 1}});
    let form_request =
        json!({"method": "POST", "url": format!("{}/form", target.uri()), "form": {"api_key": "mine", "q": "1"}});
    h.broker.publish_job(&job("body-override-json", Phase::DuringCall).request(json_request).profile(&profile)).await;
    h.broker.publish_job(&job("body-override-form", Phase::DuringCall).request(form_request).profile(&profile)).await;

    let results = h.results.take(2, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    h.stop().await;
}

#[tokio::test]
async fn inline_auth_alone_is_applied_when_the_job_names_no_profile() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/inline"))
        .and(header("authorization", "Bearer inline-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;

    let j = job("inline-1", Phase::DuringCall)
        .to(&format!("{}/inline", target.uri()))
        .with(json!({"inline_auth": {"type": "bearer", "token": "inline-token-0123456789"}}));
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert!(result["auth_profile_id"].is_null(), "{result}");
    assert!(!result.to_string().contains("inline-token"), "{result}");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Profiles that cannot be used
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_profile_id_is_rejected_as_profile_not_found_without_a_request() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/x")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    h.broker
        .publish_job(&job("unknown-profile", Phase::DuringCall).to(&format!("{}/x", target.uri())).profile(&unknown))
        .await;

    let result = h.results.next(WAIT).await;
    assert_rejected(&result, "profile_not_found");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("profile_not_found"));
    h.stop().await;
}

#[tokio::test]
async fn another_workspaces_profile_is_rejected_as_profile_not_found() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/x")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let theirs = h
        .create_profile(
            "globex",
            json!({"name": "Theirs", "type": "bearer", "config": {"token": "globex-token-0123456789"}}),
        )
        .await;

    h.broker
        .publish_job(&job("foreign-profile", Phase::DuringCall).to(&format!("{}/x", target.uri())).profile(&theirs))
        .await;

    let result = h.results.next(WAIT).await;
    assert_rejected(&result, "profile_not_found");
    assert!(!result.to_string().contains("globex-token"), "{result}");
    h.stop().await;
}
