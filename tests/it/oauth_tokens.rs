//! OAuth 2.0 client credentials as the worker uses them (contract section 5):
//! one token shared by a burst, refetched once it expires or after a 401,
//! a token endpoint that refuses or cannot be reached, and no secret in what
//! a failure reports. Token endpoints and APIs are wiremock servers on 127.0.0.1.

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{Tokens, closed_addr};
use authrelay_testkit::{JobExt as _, job};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

/// The config of an OAuth profile that fetches its tokens from `token_server`.
pub(crate) fn oauth_config(token_server: &MockServer, secret: &str) -> Value {
    json!({"client_id": "authrelay-client", "client_secret": secret,
           "token_endpoint": format!("{}/oauth/token", token_server.uri()), "scope": "contacts.read"})
}

async fn mount_tokens(token_server: &MockServer, tokens: Tokens, expected: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(tokens)
        .expect(expected)
        .mount(token_server)
        .await;
}

// ---------------------------------------------------------------------------
// OAuth 2.0 client credentials
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fifty_jobs_on_a_cold_oauth_profile_share_one_token_request() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("scope=contacts.read"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "at-shared-0123456789", "token_type": "Bearer", "expires_in": 3600}),
                )
                // Slow enough that most jobs arrive while the fetch is in flight.
                .set_delay(Duration::from_millis(500)),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/contacts"))
        .and(header("authorization", "Bearer at-shared-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(50)
        .mount(&api)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-shared-0123456789")}))
        .await;
    // Published right after the create: its profile.created event may arrive
    // during the burst, and must not cancel the shared token fetch.

    let jobs: Vec<Value> = (0..50)
        .map(|i| job(&format!("oauth-{i}"), Phase::DuringCall).to(&format!("{}/contacts", api.uri())).profile(&profile))
        .collect();
    futures_util::future::join_all(jobs.iter().map(|j| h.broker.publish_job(j))).await;

    let results = h.results.take(50, WAIT).await;
    let failed: Vec<&Value> = results.iter().filter(|r| r["outcome"] != "succeeded").collect();
    assert!(failed.is_empty(), "{failed:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_short_lived_oauth_token_is_fetched_again_once_it_expires() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    mount_tokens(&idp, Tokens::new("at-short", 2), 2).await;
    let api = MockServer::start().await;
    Mock::given(path("/a"))
        .and(header("authorization", "Bearer at-short-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(path("/a"))
        .and(header("authorization", "Bearer at-short-2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&api)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-short-0123456789")}))
        .await;
    let request = json!({"url": format!("{}/a", api.uri())});
    h.broker.publish_job(&job("short-1", Phase::DuringCall).request(request.clone()).profile(&profile)).await;
    assert_eq!(h.results.next(WAIT).await["outcome"], "succeeded");

    // Let the first token (expires_in 2) run out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    h.broker.publish_job(&job("short-2", Phase::DuringCall).request(request).profile(&profile)).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_401_with_an_oauth_profile_fetches_a_new_token_and_retries_once() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    mount_tokens(&idp, Tokens::new("at-revoked", 3600), 2).await;
    let api = MockServer::start().await;
    Mock::given(path("/a"))
        .and(header("authorization", "Bearer at-revoked-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(path("/a"))
        .and(header("authorization", "Bearer at-revoked-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&api)
        .await;
    let profile = h
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-401-0123456789")}))
        .await;

    // max_attempts 1: the retry after a 401 is owed whatever the attempt budget says.
    let j = job("oauth-401", Phase::DuringCall).to(&format!("{}/a", api.uri())).profile(&profile).max_attempts(1);
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    assert_eq!(result["response"]["body"], json!({"ok": true}));
    h.stop().await;
}

#[tokio::test]
async fn an_api_that_always_answers_401_fails_after_one_token_refetch() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    mount_tokens(&idp, Tokens::new("at-never", 3600), 2).await;
    let api = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(401)).expect(2).mount(&api).await;
    let profile = h
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-never-0123456789")}))
        .await;

    let j =
        job("oauth-401-forever", Phase::DuringCall).to(&format!("{}/a", api.uri())).profile(&profile).max_attempts(5);
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["response"]["status"], 401, "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    h.stop().await;
}

#[tokio::test]
async fn a_401_with_a_static_credential_is_not_retried() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&target).await;
    let profile = h
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "stale-token-0123456789"}}))
        .await;

    let j = job("bearer-401", Phase::DuringCall).to(&format!("{}/a", target.uri())).profile(&profile).max_attempts(3);
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_refusal_fails_the_job_without_calling_the_api() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "error_description": "client secret cs-refused-0123456789 is wrong"
        })))
        .expect(1)
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&api).await;
    let profile = h
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-refused-0123456789")}))
        .await;

    let j = job("token-refused", Phase::DuringCall).to(&format!("{}/a", api.uri())).profile(&profile).max_attempts(3);
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "token_request_failed", "{result}");
    assert!(result["error"]["message"].as_str().unwrap().contains("invalid_client"), "{result}");
    assert!(!result.to_string().contains("cs-refused"), "{result}");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("token_request_failed"));
    assert!(!parked[0].text().contains("cs-refused"), "{}", parked[0].text());
    h.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_on_a_blocked_address_is_rejected_as_destination_blocked() {
    let h = spawn_worker().await;
    let api = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&api).await;
    let port = api.address().port();
    let config = json!({"client_id": "c", "client_secret": "cs-blocked-0123456789", "token_endpoint": format!("http://127.0.0.2:{port}/oauth/token")});
    let profile =
        h.create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": config})).await;

    h.broker
        .publish_job(&job("token-blocked", Phase::DuringCall).to(&format!("{}/a", api.uri())).profile(&profile))
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], "destination_blocked", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_connection_error_does_not_leak_a_query_api_key_through_its_message() {
    let h = spawn_worker().await;
    let closed = closed_addr();
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "conn-secret-0123456789"}]}}),
        )
        .await;

    let j = job("conn-refused", Phase::DuringCall).to(&format!("http://{closed}/x")).profile(&profile).max_attempts(1);
    h.broker.publish_job(&j).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "connect", "{result}");
    assert!(!result.to_string().contains("conn-secret"), "{result}");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert!(!parked[0].text().contains("conn-secret"), "{}", parked[0].text());
    h.stop().await;
}
