//! The machine-readable contracts (contract §11): the OpenAPI document is
//! served without a token and is the committed `docs/openapi.json`; real
//! answers of the API (a profile of every type, a list, usage, a reference,
//! a 409, a 404, a 422, an audit page) validate against it; real results of
//! every outcome and of the error kinds a test can provoke here (invalid_job,
//! profile_not_found, destination_blocked, connect, timeout, http_status,
//! deadline_exceeded, token_request_failed; a JSON and a truncated body),
//! every kind through `JobResult` itself, real profile
//! events, and jobs with `inline_auth` of every type validate against
//! `schemas/`; and the validator is live (it refuses what breaks them).
//!
//! The harness validates every result (`ResultTap`), event (`EventTap`),
//! published job (`TestBroker::publish_job`) and API answer (`Admin::send`)
//! of every test too; these tests make sure each kind is covered.
//!
//! `UPDATE_CONTRACTS=1 cargo test --lib api::schemas` regenerates the
//! committed documents (the same test compares them with the code).

use std::time::Duration;

use authrelay::job::{ErrorKind, JobError, JobResult, Outcome, Phase};
use authrelay_testkit::app::{spawn_api, spawn_worker};
use authrelay_testkit::contracts::{self, Message};
use authrelay_testkit::targets::{BadTargets, Target, closed_addr, serve, silent_server};
use authrelay_testkit::tls::TestCa;
use authrelay_testkit::{JobExt as _, deadline_in, job, json_props};
use serde_json::{Value, json};

use crate::WAIT;

fn repository_file(relative: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

#[tokio::test]
async fn the_served_document_needs_no_token_and_is_the_committed_one() {
    let app = spawn_api().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let served = http.get(app.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(served.status(), 200, "no token needed");
    assert_eq!(served.headers()["content-type"], "application/json");
    let served = served.text().await.unwrap();
    assert!(
        served == repository_file("docs/openapi.json"),
        "GET /v1/openapi.json differs from docs/openapi.json; regenerate with \
         `UPDATE_CONTRACTS=1 cargo test --lib api::schemas` and commit it"
    );
    // Everything else under /v1 still needs the token.
    let listed = http.get(app.profiles_url("acme")).send().await.unwrap();
    assert_eq!(listed.status(), 401);
    app.stop().await;
}

#[test]
fn the_document_is_openapi_3_1_with_the_bearer_scheme_on_every_v1_route() {
    let doc = contracts::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"],
        json!({"type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["admin_token"]["description"]})
    );
    let routes = [
        ("post", "/v1/workspaces/{ws}/auth-profiles"),
        ("get", "/v1/workspaces/{ws}/auth-profiles"),
        ("get", "/v1/workspaces/{ws}/auth-profiles/{id}"),
        ("patch", "/v1/workspaces/{ws}/auth-profiles/{id}"),
        ("delete", "/v1/workspaces/{ws}/auth-profiles/{id}"),
        ("get", "/v1/workspaces/{ws}/auth-profiles/{id}/usage"),
        ("post", "/v1/workspaces/{ws}/auth-profiles/{id}/test"),
        ("put", "/v1/workspaces/{ws}/references/{kind}/{ref_id}"),
        ("delete", "/v1/workspaces/{ws}/references/{kind}/{ref_id}"),
        ("get", "/v1/workspaces/{ws}/audit"),
        ("post", "/v1/replay"),
        ("get", "/v1/openapi.json"),
        ("get", "/metrics"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    ];
    for (method, path) in routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        let secured = operation["security"] == json!([{"admin_token": []}]);
        let needs_token = path.starts_with("/v1/") && path != "/v1/openapi.json";
        assert_eq!(secured, needs_token, "{method} {path}: security");
    }
    let list_params: Vec<&str> = doc["paths"]["/v1/workspaces/{ws}/auth-profiles"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(list_params, ["ws", "q", "type", "state", "limit", "cursor"]);
    let types = &doc["components"]["schemas"]["AuthType"]["enum"];
    assert_eq!(
        *types,
        json!([
            "bearer",
            "api_key",
            "basic",
            "oauth2_client_credentials",
            "oauth2_jwt_bearer",
            "hmac",
            "aws_sigv4",
            "mtls"
        ])
    );
}

/// A create body of each type, with the optional parts that change how it reads back.
fn profiles_of_every_type() -> Vec<Value> {
    let ca = TestCa::new("Contracts CA");
    let client = ca.client("contracts-client");
    // A P-256 signing key (ES256) and its certificate, for the assertion types.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let signer_certificate =
        rcgen::CertificateParams::new(vec!["signer.example".into()]).unwrap().self_signed(&key).unwrap().pem();
    let signer = (key.serialize_pem(), signer_certificate);
    let certificate =
        json!({"certificate": client.certificate, "private_key": client.private_key, "ca_certificate": ca.certificate});
    vec![
        json!({"name": "bearer", "type": "bearer", "config": {"token": "tok-1234567890abcd", "client_certificate": certificate}}),
        json!({"name": "api key", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "X-Api-Key", "value": "key-1234567890"}]}}),
        json!({"name": "basic", "type": "basic", "config": {"username": "u", "password": "pass-1234567890"}}),
        json!({"name": "cc", "type": "oauth2_client_credentials", "config": {
            "client_id": "c", "client_secret": "s-1234567890abcd", "token_endpoint": "https://idp.example.com/token",
            "scope": "a b", "audience": "api", "client_auth": "post",
            "token_params": [{"key": "resource", "value": "r"}, {"key": "account_id", "value": "acct-123456789", "secret": true}],
            "token_headers": [{"key": "X-Tenant", "value": "t"}],
            "token_response": {"access_token": "data.token"}, "send_as": {"header": "X-Auth-Token", "prefix": ""}}}),
        json!({"name": "cc jwt", "type": "oauth2_client_credentials", "config": {
            "client_id": "c", "token_endpoint": "https://idp.example.com/token", "client_auth": "private_key_jwt",
            "private_key": signer.0, "key_id": "k1", "signing_alg": "ES256", "certificate": signer.1}}),
        json!({"name": "jwt bearer", "type": "oauth2_jwt_bearer", "config": {
            "token_endpoint": "https://oauth2.example.com/token", "issuer": "svc@example.com", "subject": "u@example.com",
            "scope": "s", "private_key": signer.0}}),
        json!({"name": "webhooks", "type": "hmac", "config": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "scheme": "standard_webhooks"}}),
        json!({"name": "github", "type": "hmac", "config": {"secret": "gh-secret-123456", "scheme": "custom",
            "header": "X-Hub-Signature-256", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
            "template": "{timestamp}.{body}", "timestamp_header": "X-Timestamp"}}),
        json!({"name": "aws", "type": "aws_sigv4", "config": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session_token": "session-123456789",
            "region": "eu-west-1", "service": "execute-api"}}),
        json!({"name": "mtls", "type": "mtls", "config": certificate}),
    ]
}

/// Every string that is a secret in `body`'s config, to check none reads back.
fn secrets_of(body: &Value) -> Vec<String> {
    let config = &body["config"];
    let mut secrets: Vec<String> =
        ["token", "password", "client_secret", "secret", "secret_access_key", "session_token", "private_key"]
            .iter()
            .filter_map(|k| config[*k].as_str().map(str::to_owned))
            .collect();
    secrets.extend(
        config["pairs"].as_array().into_iter().flatten().filter_map(|p| p["value"].as_str().map(str::to_owned)),
    );
    secrets.extend(config["client_certificate"]["private_key"].as_str().map(str::to_owned));
    secrets.extend(
        config["token_params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["secret"] == true)
            .filter_map(|p| p["value"].as_str().map(str::to_owned)),
    );
    secrets
}

#[tokio::test]
async fn real_answers_of_the_api_validate_against_the_document() {
    let app = spawn_api().await;
    let profile = contracts::component("Profile");
    let mut ids = Vec::new();
    for body in profiles_of_every_type() {
        let create = contracts::component("NewProfile");
        assert!(
            contracts::errors(&create, &body).is_empty(),
            "create body {body}: {:?}",
            contracts::errors(&create, &body)
        );
        let (status, created) = app.post("/v1/workspaces/acme/auth-profiles", body.clone()).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(contracts::errors(&profile, &created), Vec::<String>::new(), "{created}");
        for secret in secrets_of(&body) {
            assert!(!created.to_string().contains(&secret), "a secret reads back: {created}");
        }
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(contracts::errors(&profile, &shown), Vec::<String>::new(), "{shown}");
        ids.push(id);
    }
    let (status, page) = app.get("/v1/workspaces/acme/auth-profiles?limit=3&type=hmac&state=unused").await;
    assert_eq!(status, 200);
    assert_eq!(contracts::errors(&contracts::component("ProfilePage"), &page), Vec::<String>::new());

    let id = &ids[0];
    let (status, patched) =
        app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "renamed"})).await;
    assert_eq!((status, patched["version"].clone()), (200, json!(2)));
    let (status, reference) = app
        .put("/v1/workspaces/acme/references/during_call_action/crm", json!({"profile_id": id, "name": "CRM"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(contracts::errors(&contracts::component("Reference"), &reference), Vec::<String>::new());
    let (status, usage) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}/usage")).await;
    assert_eq!(status, 200);
    assert_eq!(contracts::errors(&contracts::component("Usage"), &usage), Vec::<String>::new());
    let (status, in_use) = app.delete(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 409);
    assert_eq!(contracts::errors(&contracts::component("ProfileInUse"), &in_use), Vec::<String>::new(), "{in_use}");
    let (status, tested) = app.post(&format!("/v1/workspaces/acme/auth-profiles/{id}/test"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(contracts::errors(&contracts::component("TestReport"), &tested), Vec::<String>::new(), "{tested}");

    let (status, missing) = app.get("/v1/workspaces/acme/auth-profiles/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(status, 404);
    assert_eq!(contracts::errors(&contracts::component("Error"), &missing), Vec::<String>::new());
    let (status, invalid) = app
        .post("/v1/workspaces/acme/auth-profiles", json!({"name": "x", "type": "bearer", "config": {"token": ""}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        contracts::errors(&contracts::component("ValidationError"), &invalid),
        Vec::<String>::new(),
        "{invalid}"
    );
    assert_eq!(invalid["details"][0]["field"], "config.token");

    let (status, audit) = app.get("/v1/workspaces/acme/audit?limit=50").await;
    assert_eq!(status, 200);
    assert!(audit["items"].as_array().unwrap().len() > ids.len(), "{audit}");
    assert_eq!(contracts::errors(&contracts::component("AuditPage"), &audit), Vec::<String>::new(), "{audit}");
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(contracts::errors(&contracts::component("Readiness"), &ready), Vec::<String>::new());
    app.stop().await;
}

#[test]
fn a_read_that_shows_a_secret_or_an_undescribed_field_breaks_the_document() {
    let read = json!({
        "id": "7d1e0000-0000-4000-8000-000000000000", "workspace_id": "acme", "name": "p", "type": "bearer",
        "config": {"token": "••••cdef"}, "version": 1,
        "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z",
        "health": {"state": "unused", "since": null, "last_used_at": null, "last_success_at": null,
                   "last_failure": null, "last_24h": {"succeeded": 0, "failed": 0}}
    });
    let profile = contracts::component("Profile");
    assert_eq!(contracts::errors(&profile, &read), Vec::<String>::new());
    let mut clear = read.clone();
    clear["config"]["token"] = json!("tok-1234567890abcd");
    assert!(!contracts::errors(&profile, &clear).is_empty(), "a secret in clear is refused");
    let mut pem = read.clone();
    pem["config"] = json!({"certificate": {"subject": "CN=a", "issuer": "CN=a", "not_after": "2027-01-01T00:00:00Z",
        "fingerprint_sha256": "ab".repeat(32)}, "private_key": "-----BEGIN PRIVATE KEY-----"});
    assert!(!contracts::errors(&profile, &pem).is_empty(), "a PEM key is refused");
    let mut extra = read.clone();
    extra["config"]["refresh_token"] = json!("x");
    assert!(!contracts::errors(&profile, &extra).is_empty(), "an undescribed field is refused");
    let mut limits = read;
    limits["limits"] = json!({"rate_per_s": 0});
    assert!(!contracts::errors(&profile, &limits).is_empty(), "rate_per_s must be above 0");
}

#[test]
fn every_error_kind_and_maybe_sent_validate_and_a_broken_result_does_not() {
    let started = chrono::Utc::now();
    for kind in ErrorKind::ALL {
        let result = JobResult {
            job_id: "j".into(),
            workspace_id: Some("acme".into()),
            phase: Phase::DuringCall,
            action_id: Some("a".into()),
            call_id: None,
            outcome: kind.outcome(),
            attempts: 1,
            response: None,
            error: Some(JobError::new(kind, "m", false)),
            auth_profile_id: None,
            auth_profile_version: None,
            started_at: started,
            finished_at: started,
            duration_ms: 0,
        };
        let mut value = serde_json::to_value(&result).unwrap();
        Message::Result.assert_valid(&value);
        value["error"]["maybe_sent"] = json!(true);
        Message::Result.assert_valid(&value);
        value["error"]["maybe_sent"] = json!("yes");
        assert!(!Message::Result.errors(&value).is_empty(), "maybe_sent is a boolean");
    }
    let schema: Value = serde_json::from_str(&repository_file("schemas/result.schema.json")).unwrap();
    let kinds = &schema["$defs"]["ErrorKind"];
    for kind in ["rate_limited", "circuit_open", "internal"] {
        assert!(kinds.to_string().contains(kind), "{kind} is in the result schema");
    }
    let mut broken = serde_json::to_value(JobResult::unattempted(
        &authrelay::job::JobIdentity {
            job_id: "j".into(),
            workspace_id: None,
            phase: Phase::PreCall,
            action_id: None,
            call_id: None,
            auth_profile_id: None,
        },
        Outcome::Expired,
        None,
        started,
    ))
    .unwrap();
    Message::Result.assert_valid(&broken);
    broken["outcome"] = json!("maybe");
    assert!(!Message::Result.errors(&broken).is_empty(), "an unknown outcome is refused");
}

#[test]
fn the_job_schema_takes_inline_auth_of_every_type_and_refuses_what_the_worker_refuses() {
    let base = job("j", Phase::DuringCall).to("https://api.example.com/v1?x=1");
    for profile in profiles_of_every_type() {
        let mut auth = profile["config"].clone();
        auth["type"] = profile["type"].clone();
        Message::Job.assert_valid(&base.clone().with(json!({"inline_auth": auth})));
    }
    let full = base.clone().with(json!({
        "request": {"method": "post", "url": "https://api.example.com/v1", "headers": {"X-A": "1"},
                    "query": {"limit": 10, "all": true}, "body": {"a": [1]}, "timeout_ms": 3000, "idempotent": false},
        "auth_profile_id": "7d1e0000-0000-4000-8000-000000000000", "deadline": deadline_in(Duration::from_secs(5)),
        "max_attempts": 3, "call_id": null
    }));
    Message::Job.assert_valid(&full);
    let refused = [
        json!({"request": {"url": "https://a.example", "body": {}, "form": {"a": "b"}}}),
        json!({"request": {"url": "ftp://a.example"}}),
        json!({"request": {"url": "https://a.example", "method": "TRACE"}}),
        json!({"request": {"url": "https://a.example", "timeout_ms": 0}}),
        json!({"request": {"url": "https://a.example", "idempotent": "no"}}),
        json!({"phase": "someday"}),
        json!({"job_id": ""}),
        json!({"inline_auth": {"type": "kerberos"}}),
        json!({"inline_auth": {"type": "bearer"}}),
        json!({"max_attempts": 0}),
        json!({"auth_profile_id": "not-a-uuid"}),
    ];
    for change in refused {
        let invalid = base.clone().with(change.clone());
        assert!(!Message::Job.errors(&invalid).is_empty(), "the job schema refuses {change}");
    }
    let event = json!({"type": "profile.updated", "workspace_id": "acme",
        "profile_id": "7d1e0000-0000-4000-8000-000000000000", "version": 4, "occurred_at": "2026-12-07T10:00:00Z"});
    Message::ProfileEvent.assert_valid(&event);
    for kind in ["profile.created", "profile.deleted", "profile.deauthorized", "profile.authorized"] {
        Message::ProfileEvent.assert_valid(
            &json!({"type": kind})
                .as_object()
                .map(|_| {
                    let mut e = event.clone();
                    e["type"] = json!(kind);
                    e
                })
                .unwrap(),
        );
    }
    let mut renamed = event;
    renamed["type"] = json!("profile.renamed");
    assert!(!Message::ProfileEvent.errors(&renamed).is_empty(), "an unknown event type is refused");
}

#[tokio::test]
async fn results_of_each_outcome_and_the_events_of_a_profile_validate() {
    let app = spawn_worker().await;
    let target = Target::start(Duration::ZERO).await;
    let profile = app
        .create_profile("acme", json!({"name": "p", "type": "bearer", "config": {"token": "tok-1234567890abcd"}}))
        .await;
    let closed = format!("http://{}/", closed_addr());
    let answers = axum::Router::new()
        .route("/json", axum::routing::get(|| async { axum::Json(json!({"id": 42, "tags": ["a"]})) }))
        .route("/missing", axum::routing::get(|| async { (axum::http::StatusCode::NOT_FOUND, "no such thing") }));
    let answers = format!("http://{}", serve(answers).await);
    let silent = format!("http://{}/", silent_server().await);
    let endless = BadTargets::start().await;
    let jobs = [
        ("json", job("c-json", Phase::PostCall).to(&format!("{answers}/json")), "succeeded", None),
        ("truncated", job("c-truncated", Phase::DuringCall).to(&endless.url("/endless")), "succeeded", None),
        (
            "http_status",
            job("c-404", Phase::DuringCall).to(&format!("{answers}/missing")),
            "failed",
            Some("http_status"),
        ),
        (
            "timeout",
            job("c-timeout", Phase::DuringCall)
                .request(json!({"url": silent, "timeout_ms": 200, "idempotent": false}))
                .max_attempts(1),
            "failed",
            Some("timeout"),
        ),
        (
            "deadline",
            job("c-deadline", Phase::DuringCall).to(&silent).deadline_in(Duration::from_millis(800)),
            "failed",
            Some("deadline_exceeded"),
        ),
        ("ok", job("c-ok", Phase::DuringCall).to(&target.url()).profile(&profile), "succeeded", None),
        ("connect", job("c-connect", Phase::DuringCall).to(&closed).max_attempts(1), "failed", Some("connect")),
        (
            "inline",
            job("c-inline", Phase::PreCall)
                .to(&target.url())
                .with(json!({"inline_auth": {"type": "basic", "username": "u", "password": "p"}})),
            "succeeded",
            None,
        ),
        ("invalid", job("c-invalid", Phase::DuringCall).to("ftp://127.0.0.1/"), "rejected", Some("invalid_job")),
        (
            "missing",
            job("c-missing", Phase::DuringCall).to(&target.url()).profile("00000000-0000-4000-8000-000000000000"),
            "rejected",
            Some("profile_not_found"),
        ),
        (
            "blocked",
            job("c-blocked", Phase::DuringCall).to("http://127.0.0.2/latest"),
            "rejected",
            Some("destination_blocked"),
        ),
        (
            "expired",
            job("c-expired", Phase::PostCall).to(&target.url()).with(json!({"deadline": "2020-01-01T00:00:00Z"})),
            "expired",
            None,
        ),
        (
            "token",
            job("c-token", Phase::DuringCall).to(&target.url()).max_attempts(1).with(json!({"inline_auth": {
                "type": "oauth2_client_credentials", "client_id": "c", "client_secret": "s",
                "token_endpoint": closed.clone()}})),
            "failed",
            Some("token_request_failed"),
        ),
    ];
    for (_, job, _, _) in &jobs {
        app.broker.publish_job(job).await;
    }
    for (name, job, outcome, kind) in &jobs {
        let id = job["job_id"].as_str().unwrap();
        let (result, _) = app.results.of(id, tokio::time::Instant::now(), WAIT).await;
        assert_eq!(result["outcome"], *outcome, "{name}: {result}");
        if let Some(kind) = kind {
            assert_eq!(result["error"]["kind"], *kind, "{name}: {result}");
        }
        Message::Result.assert_valid(&result);
    }

    app.patch(&format!("/v1/workspaces/acme/auth-profiles/{profile}"), json!({"name": "q"})).await;
    let second = app
        .create_profile("acme", json!({"name": "gone", "type": "bearer", "config": {"token": "tok-1234567890abcd"}}))
        .await;
    app.delete(&format!("/v1/workspaces/acme/auth-profiles/{second}")).await;
    let seen = authrelay_testkit::eventually(WAIT, "created, updated and deleted events", async || {
        let types: Vec<String> =
            app.events.events().iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect();
        ["profile.created", "profile.updated", "profile.deleted"]
            .iter()
            .all(|t| types.iter().any(|s| s == t))
            .then_some(types)
    })
    .await;
    assert!(seen.len() >= 4, "{seen:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_harness_catches_a_result_an_event_or_an_answer_that_breaks_the_contracts() {
    let app = spawn_api().await;
    let broker = &app.broker;
    // A result and an event of the wrong shape, published where authrelay publishes its own.
    let bogus_result = json!({"job_id": "bogus", "outcome": "maybe"});
    let results_exchange = broker.names.results_exchange();
    broker.publish(&results_exchange, "during_call.maybe", bogus_result.to_string().as_bytes(), json_props()).await;
    // The event looks as if authrelay's outbox sent it (only those are held to the schema).
    let bogus_event = json!({"type": "profile.renamed", "workspace_id": "acme"});
    let as_outbox = json_props().with_message_id("outbox-0".into());
    broker.publish(&broker.names.events_exchange(), "", bogus_event.to_string().as_bytes(), as_outbox).await;
    app.results.count_reaches(1, WAIT).await;
    let breaches = app.results.take_contract_breaches();
    assert!(breaches.len() == 1 && breaches[0].contains("bogus"), "{breaches:?}");
    let invalid = authrelay_testkit::eventually(WAIT, "the bogus event is caught", async || {
        let invalid = app.events.take_invalid();
        (!invalid.is_empty()).then_some(invalid)
    })
    .await;
    assert!(invalid[0].contains("profile.renamed"), "{invalid:?}");

    // A job the schema refuses, answered as if the worker had taken it.
    let refused = authrelay_testkit::contracts::RefusedJobs::default();
    refused.check(&job("odd", Phase::DuringCall).to("ftp://example.com/"));
    let taken = json!({"job_id": "odd", "outcome": "succeeded", "error": null});
    assert!(refused.disagreement(&taken).is_some(), "a schema stricter than the worker is caught");
    let answered = json!({"job_id": "odd", "outcome": "rejected", "error": {"kind": "invalid_job"}});
    assert!(refused.disagreement(&answered).is_none());

    // An answer of the API that is not what the document says.
    let (_, page) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert!(contracts::response_errors("GET", "/v1/workspaces/acme/auth-profiles", 200, &page).is_empty());
    let broken = json!({"items": [{"id": "x"}], "next_cursor": null});
    assert!(!contracts::response_errors("GET", "/v1/workspaces/acme/auth-profiles", 200, &broken).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn refusals_of_a_body_are_the_documented_error_shape() {
    let app = spawn_api().await;
    let url = app.profiles_url("acme");
    let path = "/v1/workspaces/acme/auth-profiles";
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.http.post(&url).bearer_auth(&app.token).header("content-type", content_type).body(body).send()
    };
    let cases = [
        (send(b"{not json".to_vec(), "application/json").await.unwrap(), 400),
        (send(b"{}".to_vec(), "text/plain").await.unwrap(), 415),
        (send(vec![b' '; 300 * 1024], "application/json").await.unwrap(), 413),
        (send(br#"{"name": "x", "type": "bearer", "extra": 1}"#.to_vec(), "application/json").await.unwrap(), 422),
    ];
    for (response, status) in cases {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert!(contracts::response_schema("POST", path, status).is_some(), "{status} is described");
        assert_eq!(contracts::response_errors("POST", path, status, &body), Vec::<String>::new(), "{status}: {body}");
    }
    app.stop().await;
}

#[test]
fn every_schema_is_valid_json_schema_2020_12() {
    for file in ["schemas/job.schema.json", "schemas/result.schema.json", "schemas/profile-event.schema.json"] {
        let schema: Value = serde_json::from_str(&repository_file(file)).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{file}");
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{file} is not a valid JSON Schema 2020-12: {e}");
        }
    }
    // OpenAPI 3.1 schemas are JSON Schema 2020-12: each component, with the others as `$defs`.
    let components = contracts::openapi()["components"]["schemas"].as_object().unwrap();
    for name in components.keys() {
        let schema = contracts::openapi_schema(&json!({"$ref": format!("#/components/schemas/{name}")}));
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("component {name} is not a valid JSON Schema 2020-12: {e}");
        }
    }
    let mut broken: Value = serde_json::from_str(&repository_file("schemas/job.schema.json")).unwrap();
    broken["properties"]["job_id"]["minLength"] = json!("one");
    assert!(jsonschema::meta::validate(&broken).is_err(), "the meta-schema check is live");
}
