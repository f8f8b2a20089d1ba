//! Credentials as the target sees them (contract sections 3 and 5): every
//! profile type applied by the real worker, the override rules, OAuth 2.0
//! token sharing, refresh and 401 handling, and no secret in anything we echo.
//! Jobs go through the real RabbitMQ; profiles live in the real PostgreSQL;
//! targets and token endpoints are wiremock servers on 127.0.0.1.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::TestApp;
use common::amqp::json_props;
use common::worker::{Harness, WAIT, job, start, with};
use serde_json::{Map, Value, json};
use wiremock::matchers::{body_json, body_string, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A during-call job that uses the stored profile `profile`.
fn profile_job(id: &str, profile: &str, request: Value) -> Value {
    with(job(id, "during_call", request), json!({"auth_profile_id": profile}))
}

/// Answers `<prefix>-1`, `<prefix>-2`, … so tests can tell token fetches apart.
struct Tokens {
    prefix: &'static str,
    expires_in: u64,
    issued: AtomicUsize,
}

impl Tokens {
    fn new(prefix: &'static str, expires_in: u64) -> Self {
        Self { prefix, expires_in, issued: AtomicUsize::new(0) }
    }
}

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("{}-{n}", self.prefix), "token_type": "Bearer", "expires_in": self.expires_in
        }))
    }
}

/// Echoes the request back: its headers, URI, query and body in a JSON body, each
/// header again as an `x-echo-<name>` response header, and the Authorization
/// value in `x-echo-auth` (what a debug endpoint or a chatty error page does).
struct Echo {
    status: u16,
}

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let mut headers = Map::new();
        let mut response = ResponseTemplate::new(self.status);
        for (name, value) in &request.headers {
            headers.insert(name.to_string(), Value::String(text(value.as_bytes())));
            response = response.append_header(format!("x-echo-{name}").as_str(), value.clone());
        }
        let auth = request.headers.get("authorization").map(|v| text(v.as_bytes())).unwrap_or_default();
        response
            .insert_header("x-echo-auth", auth.as_str())
            .insert_header("x-echo-query", request.url.query().unwrap_or(""))
            .set_body_json(json!({
                "headers": headers,
                "uri": request.url.as_str(),
                "query": request.url.query(),
                "body": text(&request.body),
            }))
    }
}

fn oauth_config(token_server: &MockServer, secret: &str) -> Value {
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

fn assert_rejected(result: &Value, kind: &str) {
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], kind, "{result}");
    assert_eq!(result["attempts"], 0, "{result}");
}

/// The forms a secret can come back in: as is, form- and percent-encoded, JSON-escaped.
fn leak_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.replace(' ', "%20"),
        json[1..json.len() - 1].to_owned(),
    ]
}

/// Every key and string value in a JSON document, decoded.
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(obj) => {
            for (k, v) in obj {
                out.push(k.clone());
                strings_in(v, out);
            }
        }
        _ => {}
    }
}

/// Everything a parked message carries, as one text: body and headers.
fn parked_text(taken: &common::amqp::Taken) -> String {
    format!("{} {:?}", String::from_utf8_lossy(&taken.body), taken.properties.headers())
}

// ---------------------------------------------------------------------------
// Each type, applied from a stored profile
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_bearer_profile_is_sent_as_a_bearer_authorization_header() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/bearer"))
        .and(header("authorization", "Bearer bearer-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "bearer-token-0123456789"}}))
        .await;

    h.broker.publish_job(&profile_job("bearer-1", &profile, json!({"url": format!("{}/bearer", target.uri())}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["auth_profile_id"], profile.as_str());
    assert_eq!(result["auth_profile_version"], 1);
    h.app.stop().await;
}

#[tokio::test]
async fn a_basic_profile_is_sent_as_base64_of_username_colon_password() {
    let mut h = start().await;
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
        .app
        .create_profile(
            "acme",
            json!({"name": "Basic", "type": "basic", "config": {"username": "Aladdin", "password": "open sesame"}}),
        )
        .await;

    h.broker.publish_job(&profile_job("basic-1", &profile, json!({"url": format!("{}/basic", target.uri())}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_key_header_profile_sends_each_pair_as_a_header() {
    let mut h = start().await;
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
        .app
        .create_profile("acme", json!({"name": "K", "type": "api_key", "config": {"method": "header", "pairs": pairs}}))
        .await;

    h.broker.publish_job(&profile_job("hdr-1", &profile, json!({"url": format!("{}/hdr", target.uri())}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_key_query_profile_appends_its_pairs_after_the_urls_own_query() {
    let mut h = start().await;
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
        .app
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "query-key-0123456789"}]}}),
        )
        .await;

    let request = json!({"url": format!("{}/q?source=voice", target.uri()), "query": {"limit": "10"}});
    h.broker.publish_job(&profile_job("query-1", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = target.received_requests().await.unwrap();
    assert_eq!(seen[0].url.query(), Some("source=voice&limit=10&api_key=query-key-0123456789"));
    h.app.stop().await;
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
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"phone": "+15550100", "api_key": "body-key-0123456789"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h.app).await;

    let request = json!({"method": "POST", "url": format!("{}/json", target.uri()), "body": {"phone": "+15550100"}});
    h.broker.publish_job(&profile_job("body-json", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_merges_its_pairs_into_a_form_body() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/form"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("q=1&api_key=body-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h.app).await;

    let request = json!({"method": "POST", "url": format!("{}/form", target.uri()), "form": {"q": "1"}});
    h.broker.publish_job(&profile_job("body-form", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_sends_a_json_object_of_its_pairs_when_the_request_has_no_body() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/empty"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"api_key": "body-key-0123456789"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = body_key_profile(&h.app).await;

    h.broker
        .publish_job(&profile_job(
            "body-none",
            &profile,
            json!({"method": "POST", "url": format!("{}/empty", target.uri())}),
        ))
        .await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_key_body_profile_rejects_a_json_body_that_is_not_an_object_as_invalid_job() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/array")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let profile = body_key_profile(&h.app).await;

    let request = json!({"method": "POST", "url": format!("{}/array", target.uri()), "body": [1, 2, 3]});
    h.broker.publish_job(&profile_job("body-array", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_rejected(&result, "invalid_job");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("invalid_job"));
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Precedence: the profile wins over inline_auth and the request's own keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_header_profile_replaces_inline_auth_and_the_requests_own_header() {
    let mut h = start().await;
    let target = MockServer::start().await;
    // `header` matches every value of the header: exactly one, the profile's.
    Mock::given(path("/hdr"))
        .and(header("x-api-key", "profile-key-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .app
        .create_profile(
            "acme",
            json!({"name": "K", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "X-Api-Key", "value": "profile-key-0123456789"}]}}),
        )
        .await;

    let request = json!({"url": format!("{}/hdr", target.uri()), "headers": {"X-Api-Key": "mine"}});
    let inline = json!({"type": "api_key", "method": "header", "pairs": [{"key": "X-Api-Key", "value": "inline-key"}]});
    h.broker.publish_job(&with(profile_job("hdr-override", &profile, request), json!({"inline_auth": inline}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_bearer_profile_replaces_inline_auth_and_the_requests_own_authorization_header() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/auth"))
        .and(header("authorization", "Bearer profile-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "profile-token-0123456789"}}))
        .await;

    let request = json!({"url": format!("{}/auth", target.uri()), "headers": {"Authorization": "Bearer mine"}});
    let j = with(
        profile_job("auth-override", &profile, request),
        json!({"inline_auth": {"type": "basic", "username": "u", "password": "inline-pw"}}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_query_profile_replaces_a_query_parameter_of_the_same_name() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/q")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    let profile = h
        .app
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "profile-key-0123456789"}]}}),
        )
        .await;

    let request =
        json!({"url": format!("{}/q?api_key=mine&a=1", target.uri()), "query": {"api_key": "mine-too", "b": "2"}});
    h.broker.publish_job(&profile_job("query-override", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = target.received_requests().await.unwrap();
    assert_eq!(seen[0].url.query(), Some("a=1&b=2&api_key=profile-key-0123456789"));
    h.app.stop().await;
}

#[tokio::test]
async fn a_body_profile_replaces_a_body_field_of_the_same_name() {
    let mut h = start().await;
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
    let profile = body_key_profile(&h.app).await;

    let json_request =
        json!({"method": "POST", "url": format!("{}/json", target.uri()), "body": {"api_key": "mine", "q": 1}});
    let form_request =
        json!({"method": "POST", "url": format!("{}/form", target.uri()), "form": {"api_key": "mine", "q": "1"}});
    h.broker.publish_job(&profile_job("body-override-json", &profile, json_request)).await;
    h.broker.publish_job(&profile_job("body-override-form", &profile, form_request)).await;

    let results = h.broker.results(2, WAIT).await;
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    h.app.stop().await;
}

#[tokio::test]
async fn inline_auth_alone_is_applied_when_the_job_names_no_profile() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/inline"))
        .and(header("authorization", "Bearer inline-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;

    let j = with(
        job("inline-1", "during_call", json!({"url": format!("{}/inline", target.uri())})),
        json!({"inline_auth": {"type": "bearer", "token": "inline-token-0123456789"}}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert!(result["auth_profile_id"].is_null(), "{result}");
    assert!(!result.to_string().contains("inline-token"), "{result}");
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Profiles that cannot be used
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_profile_id_is_rejected_as_profile_not_found_without_a_request() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/x")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    h.broker
        .publish_job(&profile_job("unknown-profile", &unknown, json!({"url": format!("{}/x", target.uri())})))
        .await;

    let result = h.broker.next_result(WAIT).await;
    assert_rejected(&result, "profile_not_found");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("profile_not_found"));
    h.app.stop().await;
}

#[tokio::test]
async fn another_workspaces_profile_is_rejected_as_profile_not_found() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/x")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&target).await;
    let theirs = h
        .app
        .create_profile(
            "globex",
            json!({"name": "Theirs", "type": "bearer", "config": {"token": "globex-token-0123456789"}}),
        )
        .await;

    h.broker.publish_job(&profile_job("foreign-profile", &theirs, json!({"url": format!("{}/x", target.uri())}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_rejected(&result, "profile_not_found");
    assert!(!result.to_string().contains("globex-token"), "{result}");
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// OAuth 2.0 client credentials
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fifty_jobs_on_a_cold_oauth_profile_share_one_token_request() {
    let mut h = start().await;
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
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-shared-0123456789")}))
        .await;
    // Published right after the create: its profile.created event may arrive
    // during the burst, and must not cancel the shared token fetch.

    let jobs: Vec<Value> = (0..50)
        .map(|i| profile_job(&format!("oauth-{i}"), &profile, json!({"url": format!("{}/contacts", api.uri())})))
        .collect();
    futures_util::future::join_all(jobs.iter().map(|j| h.broker.publish_job(j))).await;

    let results = h.broker.results(50, WAIT).await;
    let failed: Vec<&Value> = results.iter().filter(|r| r["outcome"] != "succeeded").collect();
    assert!(failed.is_empty(), "{failed:?}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_short_lived_oauth_token_is_fetched_again_once_it_expires() {
    let mut h = start().await;
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
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-short-0123456789")}))
        .await;
    let request = json!({"url": format!("{}/a", api.uri())});
    h.broker.publish_job(&profile_job("short-1", &profile, request.clone())).await;
    assert_eq!(h.broker.next_result(WAIT).await["outcome"], "succeeded");

    // Let the first token (expires_in 2) run out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    h.broker.publish_job(&profile_job("short-2", &profile, request)).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_401_with_an_oauth_profile_fetches_a_new_token_and_retries_once() {
    let mut h = start().await;
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
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-401-0123456789")}))
        .await;

    // max_attempts 1: the retry after a 401 is owed whatever the attempt budget says.
    let j = with(
        profile_job("oauth-401", &profile, json!({"url": format!("{}/a", api.uri())})),
        json!({"max_attempts": 1}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    assert_eq!(result["response"]["body"], json!({"ok": true}));
    h.app.stop().await;
}

#[tokio::test]
async fn an_api_that_always_answers_401_fails_after_one_token_refetch() {
    let mut h = start().await;
    let idp = MockServer::start().await;
    mount_tokens(&idp, Tokens::new("at-never", 3600), 2).await;
    let api = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(401)).expect(2).mount(&api).await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-never-0123456789")}))
        .await;

    let j = with(
        profile_job("oauth-401-forever", &profile, json!({"url": format!("{}/a", api.uri())})),
        json!({"max_attempts": 5}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["response"]["status"], 401, "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    h.app.stop().await;
}

#[tokio::test]
async fn a_401_with_a_static_credential_is_not_retried() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&target).await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "stale-token-0123456789"}}))
        .await;

    let j = with(
        profile_job("bearer-401", &profile, json!({"url": format!("{}/a", target.uri())})),
        json!({"max_attempts": 3}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "http_status", "{result}");
    assert_eq!(result["attempts"], 1, "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_refusal_fails_the_job_without_calling_the_api() {
    let mut h = start().await;
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
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&idp, "cs-refused-0123456789")}))
        .await;

    let j = with(
        profile_job("token-refused", &profile, json!({"url": format!("{}/a", api.uri())})),
        json!({"max_attempts": 3}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "token_request_failed", "{result}");
    assert!(result["error"]["message"].as_str().unwrap().contains("invalid_client"), "{result}");
    assert!(!result.to_string().contains("cs-refused"), "{result}");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert_eq!(parked[0].header("x-authrelay-error-kind").as_deref(), Some("token_request_failed"));
    assert!(!parked_text(&parked[0]).contains("cs-refused"), "{}", parked_text(&parked[0]));
    h.app.stop().await;
}

#[tokio::test]
async fn a_token_endpoint_on_a_blocked_address_is_rejected_as_destination_blocked() {
    let mut h = start().await;
    let api = MockServer::start().await;
    Mock::given(path("/a")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&api).await;
    let port = api.address().port();
    let config = json!({"client_id": "c", "client_secret": "cs-blocked-0123456789", "token_endpoint": format!("http://127.0.0.2:{port}/oauth/token")});
    let profile = h
        .app
        .create_profile("acme", json!({"name": "IdP", "type": "oauth2_client_credentials", "config": config}))
        .await;

    h.broker.publish_job(&profile_job("token-blocked", &profile, json!({"url": format!("{}/a", api.uri())}))).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], "destination_blocked", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_connection_error_does_not_leak_a_query_api_key_through_its_message() {
    let mut h = start().await;
    // A port on 127.0.0.1 that nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let profile = h
        .app
        .create_profile(
            "acme",
            json!({"name": "Q", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": "conn-secret-0123456789"}]}}),
        )
        .await;

    let j = with(
        profile_job("conn-refused", &profile, json!({"url": format!("http://127.0.0.1:{closed}/x")})),
        json!({"max_attempts": 1}),
    );
    h.broker.publish_job(&j).await;

    let result = h.broker.next_result(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "connect", "{result}");
    assert!(!result.to_string().contains("conn-secret"), "{result}");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 1, WAIT).await;
    assert!(!parked_text(&parked[0]).contains("conn-secret"), "{}", parked_text(&parked[0]));
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Profile changes reach running workers
// ---------------------------------------------------------------------------

/// Waits until the profile-event consumer is up (it binds its queue after start).
async fn wait_until_event_consumer_is_ready(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = app.get("/readyz").await;
        if body["checks"]["consumer.profile_events"] == "ok" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the profile-event consumer never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes probe jobs until one reports `version` (the cache is dropped
/// asynchronously, by an event) or `within` passes; returns the last result.
async fn probe_until_version(h: &mut Harness, profile: &str, url: &str, version: i64, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    let mut n = 0;
    loop {
        n += 1;
        h.broker.publish_job(&profile_job(&format!("probe-{n}"), profile, json!({"url": url}))).await;
        let result = h.broker.next_result(WAIT).await;
        if result["auth_profile_version"] == version || tokio::time::Instant::now() >= deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_profile_updated_through_the_api_is_used_by_the_next_jobs_with_its_new_version() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/v"))
        .and(header("authorization", "Bearer old-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    Mock::given(path("/v"))
        .and(header("authorization", "Bearer new-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1..)
        .mount(&target)
        .await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "old-token-0123456789"}}))
        .await;
    let url = format!("{}/v", target.uri());
    h.broker.publish_job(&profile_job("before", &profile, json!({"url": url}))).await;
    assert_eq!(h.broker.next_result(WAIT).await["auth_profile_version"], 1, "the worker cached version 1");

    let (status, patched) = h
        .app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{profile}"),
            json!({"config": {"token": "new-token-0123456789"}}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 2);

    let result = probe_until_version(&mut h, &profile, &url, 2, Duration::from_secs(10)).await;
    assert_eq!(result["auth_profile_version"], 2, "still the cached profile 10 s after the PATCH: {result}");
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_profile_event_from_any_publisher_drops_the_cached_profile() {
    let mut h = start().await;
    let target = MockServer::start().await;
    Mock::given(path("/v"))
        .and(header("authorization", "Bearer old-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    Mock::given(path("/v"))
        .and(header("authorization", "Bearer new-token-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let profile = h
        .app
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "old-token-0123456789"}}))
        .await;
    let url = format!("{}/v", target.uri());
    h.broker.publish_job(&profile_job("before", &profile, json!({"url": url}))).await;
    assert_eq!(h.broker.next_result(WAIT).await["auth_profile_version"], 1);
    let (status, _) = h
        .app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{profile}"),
            json!({"config": {"token": "new-token-0123456789"}}),
        )
        .await;
    assert_eq!(status, 200);
    wait_until_event_consumer_is_ready(&h.app).await;

    // The event another instance's relay would publish.
    let event = json!({"type": "profile.updated", "workspace_id": "acme", "profile_id": profile, "version": 2, "occurred_at": "2026-01-01T00:00:00Z"});
    h.broker.publish(&h.broker.names.events_exchange(), "", &serde_json::to_vec(&event).unwrap(), json_props()).await;

    let result = probe_until_version(&mut h, &profile, &url, 2, Duration::from_secs(5)).await;
    assert_eq!(result["auth_profile_version"], 2, "{result}");
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// No secret in results, parked messages or metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_secret_reaches_results_or_parked_messages_even_when_the_target_echoes_the_request() {
    let mut h = start().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-echo-secret-0123456789", "expires_in": 3600})),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let echo = MockServer::start().await;
    Mock::given(path("/echo")).respond_with(Echo { status: 500 }).expect(6).mount(&echo).await;

    let basic_b64 = base64::engine::general_purpose::STANDARD.encode("echo-user:basic-pw-secret-0123456789");
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("bearer", json!({"token": "bearer-secret-0123456789"}), vec!["bearer-secret-0123456789".into()]),
        (
            "basic",
            json!({"username": "echo-user", "password": "basic-pw-secret-0123456789"}),
            vec!["basic-pw-secret-0123456789".into(), basic_b64],
        ),
        (
            "api_key",
            json!({"method": "header", "pairs": [{"key": "X-Api-Key", "value": "hdr-secret-0123456789"}]}),
            vec!["hdr-secret-0123456789".into()],
        ),
        (
            "api_key",
            json!({"method": "query", "pairs": [{"key": "api_key", "value": "query-secret-0123456789"}]}),
            vec!["query-secret-0123456789".into()],
        ),
        (
            "api_key",
            json!({"method": "body", "pairs": [{"key": "api_key", "value": "body-secret-0123456789"}]}),
            vec!["body-secret-0123456789".into()],
        ),
        (
            "oauth2_client_credentials",
            oauth_config(&idp, "client-secret-0123456789"),
            vec!["client-secret-0123456789".into(), "at-echo-secret-0123456789".into()],
        ),
    ];
    let mut secrets = Vec::new();
    for (i, (auth_type, config, case_secrets)) in cases.into_iter().enumerate() {
        let profile = h
            .app
            .create_profile("acme", json!({"name": format!("echo-{i}"), "type": auth_type, "config": config}))
            .await;
        let request = json!({"method": "POST", "url": format!("{}/echo?source=voice", echo.uri()), "body": {"phone": "+15550100"}});
        h.broker
            .publish_job(&with(profile_job(&format!("echo-{i}"), &profile, request), json!({"max_attempts": 1})))
            .await;
        secrets.extend(case_secrets);
    }

    let results = h.broker.results(6, WAIT).await;
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 6, WAIT).await;
    let (_, metrics) = h.app.get("/metrics").await;

    for result in &results {
        assert_eq!(result["outcome"], "failed", "{result}");
        assert_eq!(result["response"]["status"], 500, "{result}");
        assert!(result["response"]["body"]["uri"].is_string(), "the echo made it into the result: {result}");
    }
    let results_text = serde_json::to_string(&results).unwrap();
    let parked_texts: Vec<String> = parked.iter().map(parked_text).collect();
    for secret in &secrets {
        assert!(!results_text.contains(secret.as_str()), "a result carries `{secret}`: {results_text}");
        for text in &parked_texts {
            assert!(!text.contains(secret.as_str()), "a parked message carries `{secret}`: {text}");
        }
        assert!(!metrics.to_string().contains(secret.as_str()), "/metrics carries `{secret}`");
    }
    h.app.stop().await;
}

#[tokio::test]
async fn secrets_with_special_characters_are_redacted_in_every_encoding_the_target_echoes() {
    let mut h = start().await;
    let echo = MockServer::start().await;
    Mock::given(path("/echo")).respond_with(Echo { status: 500 }).expect(4).mount(&echo).await;
    let secret = r#"s3cr3t "k&y"=v/1+2% ok"#;
    let pairs = json!([{"key": "api_key", "value": secret}]);
    let cases = [
        ("api_key", json!({"method": "query", "pairs": pairs}), json!({"url": format!("{}/echo?a=1", echo.uri())})),
        (
            "api_key",
            json!({"method": "body", "pairs": pairs}),
            json!({"method": "POST", "url": format!("{}/echo", echo.uri()), "body": {"q": 1}}),
        ),
        (
            "api_key",
            json!({"method": "body", "pairs": pairs}),
            json!({"method": "POST", "url": format!("{}/echo", echo.uri()), "form": {"q": "1"}}),
        ),
        ("basic", json!({"username": "u", "password": secret}), json!({"url": format!("{}/echo", echo.uri())})),
    ];
    for (i, (auth_type, config, request)) in cases.into_iter().enumerate() {
        let profile = h
            .app
            .create_profile("acme", json!({"name": format!("special-{i}"), "type": auth_type, "config": config}))
            .await;
        h.broker
            .publish_job(&with(profile_job(&format!("special-{i}"), &profile, request), json!({"max_attempts": 1})))
            .await;
    }

    let results = h.broker.results(4, WAIT).await;
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 4, WAIT).await;

    let basic_b64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{secret}"));
    let mut forms = leak_forms(secret);
    forms.push(basic_b64);
    let received = echo.received_requests().await.unwrap();
    assert!(
        received
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&forms[3])
                || r.url.query().unwrap_or("").contains(&forms[1])),
        "the target did get the secret"
    );
    for result in &results {
        assert_eq!(result["response"]["status"], 500, "{result}");
        let mut strings = Vec::new();
        strings_in(result, &mut strings);
        for text in &strings {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "`{form}` in {text}");
            }
        }
    }
    for message in &parked {
        let text = parked_text(message);
        for form in &forms {
            assert!(!text.contains(form.as_str()), "`{form}` in a parked message: {text}");
        }
    }
    h.app.stop().await;
}
