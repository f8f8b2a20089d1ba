//! OAuth 2.0 the way identity providers run it (contract §8.1), against a
//! real authorization server on 127.0.0.1 that verifies client assertions
//! (signature with the registered public key, `aud`, `exp`, `jti` replay) and
//! an API that accepts only tokens it issued, still valid on arrival:
//! `private_key_jwt`, the JWT-bearer grant, token endpoints that keep the
//! token elsewhere, tokens never sent stale, and one token for a fleet of
//! worker processes.

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::idp::{AuthServer, ReplyShape, TestKey};
use authrelay_testkit::{JobExt as _, TcpProxy, TestApp, TestBroker, TestEnv, eventually, ids_of, job};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{WAIT, authrelay};

const SECRET: &str = "cs-flows-0123456789";

fn client_credentials(auth: &AuthServer, client: &str) -> Value {
    json!({"client_id": client, "client_secret": SECRET, "token_endpoint": auth.token_url()})
}

fn assert_succeeded(result: &Value) {
    assert_eq!(result["outcome"], "succeeded", "{result}");
}

#[tokio::test]
async fn a_token_is_never_sent_in_its_last_second_and_no_job_waits_at_expiry() {
    let auth = AuthServer::start().await;
    auth.register_secret("short-lived", SECRET);
    // 4 s tokens that reach us having lost half a second already, as when the
    // server starts its clock before we do (`expires_in` is whole seconds).
    auth.set_lifetime(Duration::from_secs(4), Duration::from_millis(500));
    let h = spawn_worker().await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "short", "type": "oauth2_client_credentials",
                                       "config": client_credentials(&auth, "short-lived")}),
        )
        .await;

    // A steady stream of during-call jobs for 11 s, across several token lifetimes.
    let jobs: Vec<Value> = (0..44)
        .map(|i| job(&format!("tick-{i}"), Phase::DuringCall).to(&auth.api_url("tick")).profile(&profile))
        .collect();
    for j in &jobs {
        h.broker.publish_job(j).await;
        tokio::time::sleep(Duration::from_millis(250)).await; // the pace of the stream, not a verdict
    }
    let tally = h.results.all_answered(&ids_of(&jobs), WAIT).await;

    assert_eq!(auth.stale_tokens(), 0, "tokens reached the API after they expired");
    assert!(h.results.results().iter().all(|r| r["outcome"] == "succeeded"), "{tally}");
    assert!(auth.token_requests() >= 3, "tokens were renewed ({} requests)", auth.token_requests());
    // Renewals ran ahead, in the background: only the very first job waited for a token.
    assert_eq!(h.metric(r#"authrelay_token_lookups_total{result="miss"}"#).await, 1.0);
    h.stop().await;
}

#[tokio::test]
async fn private_key_jwt_with_rsa_and_ec_keys_gets_tokens_the_api_accepts() {
    let auth = AuthServer::start().await;
    let h = spawn_worker().await;
    for (client, key, kid) in [("rsa-client", TestKey::rsa(), Some("rsa-1")), ("ec-client", TestKey::ec(), None)] {
        auth.register_key(client, &key, kid);
        let mut config = json!({"client_id": client, "client_auth": "private_key_jwt",
                                "token_endpoint": auth.token_url(), "private_key": key.private_pem});
        if let Some(kid) = kid {
            config["key_id"] = json!(kid);
        }
        let profile = h
            .create_profile("acme", json!({"name": client, "type": "oauth2_client_credentials", "config": config}))
            .await;

        h.broker.publish_job(&job(client, Phase::PreCall).to(&auth.api_url("me")).profile(&profile)).await;
        let result = h.results.next(WAIT).await;

        assert_succeeded(&result);
        assert_eq!(result["response"]["body"]["client"], client);
    }
    assert!(auth.refusals().is_empty(), "{:?}", auth.refusals());
    assert_eq!(auth.token_requests(), 2);
    h.stop().await;
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused_and_the_job_fails_without_leaking_the_key() {
    let auth = AuthServer::start().await;
    auth.register_key("client-1", &TestKey::ec(), None);
    let wrong = TestKey::ec();
    let h = spawn_worker().await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "wrong key", "type": "oauth2_client_credentials", "config": {
            "client_id": "client-1", "client_auth": "private_key_jwt", "token_endpoint": auth.token_url(),
            "private_key": wrong.private_pem}}),
        )
        .await;

    h.broker.publish_job(&job("wrong", Phase::PreCall).to(&auth.api_url("me")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;

    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "token_request_failed");
    assert!(result["error"]["message"].as_str().unwrap().contains("invalid_client"), "{result}");
    let body = wrong.private_pem.lines().nth(1).unwrap();
    assert!(!result.to_string().contains(body), "the private key leaked: {result}");
    assert_eq!(auth.api_calls(), 0, "no API request without a token");
    h.stop().await;
}

#[tokio::test]
async fn the_jwt_bearer_grant_signs_for_its_issuer_with_scope_as_a_claim_and_its_audience() {
    let auth = AuthServer::start().await;
    let key = TestKey::rsa();
    auth.register_key("svc@project.iam.example", &key, Some("key-7"));
    auth.accept_audience("https://oauth2.example/token");
    let h = spawn_worker().await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "service account", "type": "oauth2_jwt_bearer", "config": {
            "token_endpoint": auth.token_url(), "issuer": "svc@project.iam.example", "subject": "user@example.com",
            "audience": "https://oauth2.example/token", "scope": "https://www.example.com/auth/calendar",
            "private_key": key.private_pem, "key_id": "key-7"}}),
        )
        .await;

    h.broker.publish_job(&job("sa", Phase::DuringCall).to(&auth.api_url("calendar")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;

    assert_succeeded(&result);
    assert_eq!(result["response"]["body"]["client"], "svc@project.iam.example");
    assert_eq!(result["response"]["body"]["scope"], "https://www.example.com/auth/calendar");
    assert!(auth.refusals().is_empty(), "{:?}", auth.refusals());
    h.stop().await;
}

#[tokio::test]
async fn a_token_kept_at_a_nested_path_is_read_there_and_sent_in_the_configured_header() {
    let auth = AuthServer::start().await;
    auth.register_secret("nested", SECRET);
    auth.set_shape(ReplyShape::Nested);
    auth.api_reads("X-Auth-Token", "");
    let h = spawn_worker().await;
    let mut config = client_credentials(&auth, "nested");
    config["token_response"] = json!({"access_token": "data.token", "expires_in": "data.ttl"});
    config["send_as"] = json!({"header": "X-Auth-Token"});
    let good = h
        .create_profile("acme", json!({"name": "nested", "type": "oauth2_client_credentials", "config": config}))
        .await;
    config["token_response"] = json!({"access_token": "data.nope"});
    let wrong = h
        .create_profile("acme", json!({"name": "wrong path", "type": "oauth2_client_credentials", "config": config}))
        .await;

    h.broker.publish_job(&job("nested", Phase::PreCall).to(&auth.api_url("me")).profile(&good)).await;
    assert_succeeded(&h.results.next(WAIT).await);
    h.broker
        .publish_job(&job("wrong-path", Phase::PreCall).to(&auth.api_url("me")).profile(&wrong).max_attempts(1))
        .await;
    let result = h.results.next(WAIT).await;

    assert_eq!(result["error"]["kind"], "token_request_failed", "{result}");
    assert!(result["error"]["message"].as_str().unwrap().contains("data.nope"), "{result}");
    h.stop().await;
}

#[tokio::test]
async fn extra_token_fields_and_headers_reach_the_token_endpoint_and_secret_ones_no_result() {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("resource=https%3A%2F%2Fcrm.example"))
        .and(body_string_contains("account_key=acct-secret-0123456789"))
        .and(header("x-tenant", "acme"))
        .and(header("x-gateway-key", "gw-secret-0123456789"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-extra-0123456789", "expires_in": 3600})),
        )
        .expect(1)
        .mount(&idp)
        .await;
    // A target that echoes everything it can think of back.
    let target = MockServer::start().await;
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "seen": "acct-secret-0123456789 gw-secret-0123456789 at-extra-0123456789 cs-flows-0123456789"})))
        .mount(&target)
        .await;
    let h = spawn_worker().await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "extras", "type": "oauth2_client_credentials", "config": {
            "client_id": "c", "client_secret": SECRET, "token_endpoint": format!("{}/token", idp.uri()),
            "token_params": [{"key": "resource", "value": "https://crm.example"},
                             {"key": "account_key", "value": "acct-secret-0123456789", "secret": true}],
            "token_headers": [{"key": "X-Tenant", "value": "acme"},
                              {"key": "X-Gateway-Key", "value": "gw-secret-0123456789", "secret": true}]}}),
        )
        .await;

    h.broker.publish_job(&job("extras", Phase::PreCall).to(&format!("{}/echo", target.uri())).profile(&profile)).await;
    let result = h.results.next(WAIT).await;

    assert_succeeded(&result);
    for secret in ["acct-secret", "gw-secret", "at-extra", "cs-flows"] {
        assert!(!result.to_string().contains(secret), "{secret} leaked: {result}");
    }
    let (_, shown) = h.get(&format!("/v1/workspaces/acme/auth-profiles/{profile}")).await;
    let shown = shown.to_string();
    assert!(!shown.contains("acct-secret") && !shown.contains("gw-secret"), "{shown}");
    assert!(shown.contains("https://crm.example"), "plain values read back: {shown}");
    h.stop().await;
}

#[tokio::test]
async fn keys_and_the_new_fields_are_checked_at_create_and_patch_and_read_back_as_fingerprints() {
    let h = spawn_worker().await;
    let key = TestKey::ec();
    let base = json!({"token_endpoint": "https://idp.example/token", "issuer": "svc", "private_key": key.private_pem});
    let cases = [
        (json!({"private_key": key.public_pem}), "config.private_key"),
        (
            json!({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "config.private_key",
        ),
        (json!({"signing_alg": "RS256"}), "config.signing_alg"),
        (json!({"signing_alg": "HS256"}), "config.signing_alg"),
        (json!({"issuer": ""}), "config.issuer"),
        (json!({"token_params": [{"key": "assertion", "value": "x"}]}), "config.token_params[0].key"),
        (json!({"token_headers": [{"key": "X-A", "secret": true}]}), "config.token_headers[0].value"),
        (json!({"token_response": {"access_token": ".bad"}}), "config.token_response.access_token"),
        (json!({"send_as": {"header": "Host"}}), "config.send_as.header"),
        (json!({"lifetime": 60}), "config.lifetime"),
    ];
    for (change, field) in cases {
        let mut config = base.clone();
        for (k, v) in change.as_object().unwrap() {
            config[k] = v.clone();
        }
        let (status, body) = h
            .post(
                "/v1/workspaces/acme/auth-profiles",
                json!({"name": "n", "type": "oauth2_jwt_bearer", "config": config}),
            )
            .await;
        assert_eq!(status, 422, "{change}: {body}");
        assert_eq!(body["error"], "validation_failed");
        let fields: Vec<&str> =
            body["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
        assert!(fields.contains(&field), "{change}: {body}");
    }
    let (_, listed) = h.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "nothing was stored");

    let id = h.create_profile("acme", json!({"name": "sa", "type": "oauth2_jwt_bearer", "config": base})).await;
    let (_, read) = h.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    let fingerprint = read["config"]["private_key"]["fingerprint_sha256"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 64);
    assert!(!read.to_string().contains("BEGIN"), "{read}");
    // A patch that leaves the key out keeps it; one with an EC key and RS256 is refused.
    let (status, patched) =
        h.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"scope": "a"}})).await;
    assert_eq!(
        (status, patched["config"]["private_key"]["fingerprint_sha256"].as_str()),
        (200, Some(fingerprint.as_str()))
    );
    let (status, refused) =
        h.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"signing_alg": "RS256"}})).await;
    assert_eq!(status, 422, "{refused}");
    h.stop().await;
}

#[tokio::test]
async fn a_job_whose_token_is_in_memory_runs_while_the_database_is_down() {
    let auth = AuthServer::start().await;
    auth.register_secret("steady", SECRET);
    let proxy = TcpProxy::to_database().await;
    let mut env = TestEnv::new();
    env.database_through(&proxy);
    let h = TestApp::start(env, Roles::ALL).await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "steady", "type": "oauth2_client_credentials",
                                       "config": client_credentials(&auth, "steady")}),
        )
        .await;
    h.broker.publish_job(&job("warm", Phase::DuringCall).to(&auth.api_url("a")).profile(&profile)).await;
    assert_succeeded(&h.results.next(WAIT).await);

    proxy.cut();
    h.broker.publish_job(&job("cached", Phase::DuringCall).to(&auth.api_url("a")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;

    assert_succeeded(&result);
    assert_eq!(auth.token_requests(), 1);
    proxy.restore();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_one_token_for_a_cold_burst_and_one_refetch_after_a_401() {
    let _turn = authrelay_testkit::timed_turn().await;
    let auth = AuthServer::start().await;
    auth.register_secret("fleet", SECRET);
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let api = authrelay(&env).serve(&["run", "--roles", "api"]).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(authrelay(&env).serve(&["run", "--roles", "worker"]).await);
    }
    let profile = api
        .create_profile(
            "acme",
            json!({"name": "fleet", "type": "oauth2_client_credentials",
                                       "config": client_credentials(&auth, "fleet")}),
        )
        .await;

    // A burst on the cold profile, spread over the three processes.
    let burst: Vec<Value> = (0..1000)
        .map(|i| job(&format!("burst-{i}"), Phase::PostCall).to(&auth.api_url("x")).profile(&profile))
        .collect();
    broker.publish_all(&burst).await;
    tap.all_answered(&ids_of(&burst), Duration::from_secs(60)).await;
    let first = auth.token_requests();
    // The provider revokes the token early: every process sees 401s.
    auth.revoke_all();
    let after: Vec<Value> = (0..300)
        .map(|i| job(&format!("after-{i}"), Phase::PostCall).to(&auth.api_url("x")).profile(&profile))
        .collect();
    broker.publish_all(&after).await;
    tap.all_answered(&ids_of(&after), Duration::from_secs(60)).await;

    assert_eq!(first, 1, "token requests for the cold burst of 1,000 jobs on 3 processes");
    assert_eq!(auth.token_requests(), 2, "one refetch in all after the 401s");
    let failed: Vec<Value> = tap.results().into_iter().filter(|r| r["outcome"] != "succeeded").collect();
    assert!(failed.is_empty(), "{} jobs failed, e.g. {}", failed.len(), failed[0]);
    eventually(WAIT, "each process served jobs", async || {
        let mut served = Vec::new();
        for w in &workers {
            served.push(w.metric(r#"authrelay_jobs_total{outcome="succeeded",phase="post_call"}"#).await);
        }
        served.iter().all(|n| *n > 0.0).then_some(())
    })
    .await;
    drop(api);
}

#[tokio::test]
async fn a_certificate_credential_names_its_certificate_by_thumbprint_as_entra_asks() {
    let auth = AuthServer::start().await;
    let key = TestKey::rsa();
    let (certificate, thumbprint) = key.certificate();
    auth.register_certificate("entra-app", &key, &thumbprint);
    let h = spawn_worker().await;
    let config = json!({"client_id": "entra-app", "client_auth": "private_key_jwt", "token_endpoint": auth.token_url(),
                        "private_key": key.private_pem, "certificate": certificate});
    let profile =
        h.create_profile("acme", json!({"name": "entra", "type": "oauth2_client_credentials", "config": config})).await;

    h.broker.publish_job(&job("entra", Phase::PreCall).to(&auth.api_url("graph")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;

    assert_succeeded(&result);
    assert!(auth.refusals().is_empty(), "{:?}", auth.refusals());
    let (_, read) = h.get(&format!("/v1/workspaces/acme/auth-profiles/{profile}")).await;
    let shown = &read["config"]["certificate"];
    assert!(shown["subject"].is_string() && shown["not_after"].is_string(), "{read}");
    assert_eq!(shown["fingerprint_sha256"].as_str().map(str::len), Some(64));
    // A certificate of another key is refused when saved.
    let (other, _) = TestKey::rsa().certificate();
    let mut mismatched = config.clone();
    mismatched["certificate"] = json!(other);
    let (status, body) = h
        .post(
            "/v1/workspaces/acme/auth-profiles",
            json!({"name": "mismatch", "type": "oauth2_client_credentials", "config": mismatched}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "config.certificate");
    h.stop().await;
}
