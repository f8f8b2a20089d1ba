//! Token endpoints and APIs that misbehave for OAuth profiles: an API that
//! answers 401 forever, a token endpoint that is down, slow, answers HTML or
//! an error, or leaves out `expires_in`. Each job fails with the right kind and
//! retryability within its deadline, and no endpoint is hammered. Servers are
//! wiremock or raw TCP on 127.0.0.1; each test prints its figures
//! (`cargo test --test it token_endpoint_trouble:: -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{Tokens, closed_addr, raw_server};
use authrelay_testkit::{JobExt as _, TestApp, TestEnv, ids_of, job};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;
use crate::misbehaving_targets::assert_failed;

/// The config of an OAuth profile that fetches its tokens from `endpoint`.
fn oauth_config(endpoint: &str) -> Value {
    json!({"client_id": "cid", "client_secret": "client-secret-0123456789", "token_endpoint": endpoint})
}

#[tokio::test]
async fn an_api_answering_401_forever_costs_each_of_20_concurrent_jobs_exactly_one_token_refetch() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    let tokens = Tokens::new("access-0123456789", 3600);
    Mock::given(path("/token")).respond_with(tokens.clone()).mount(&idp).await;
    let api = MockServer::start().await;
    Mock::given(path("/me")).respond_with(ResponseTemplate::new(401)).mount(&api).await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&format!("{}/token", idp.uri()))}),
        )
        .await;
    let jobs: Vec<Value> = (0..20)
        .map(|i| {
            job(&format!("unauthorized-{i:02}"), Phase::DuringCall).to(&format!("{}/me", api.uri())).profile(&profile)
        })
        .collect();
    let published = Instant::now();

    h.broker.publish_all(&jobs).await;

    let tally = h.results.all_answered(&ids_of(&jobs), WAIT).await;
    let took = published.elapsed();
    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    for request in api.received_requests().await.unwrap() {
        let id = request.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned();
        *per_job.entry(id).or_default() += 1;
    }
    let token_requests = tokens.issued();
    println!(
        "401 forever, 20 jobs: {tally}; API requests per job {:?}; token requests {token_requests}; {took:?}",
        per_job.values().collect::<BTreeSet<_>>()
    );
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
    for result in h.results.results() {
        assert_failed(&result, "http_status", 2);
        assert_eq!(result["response"]["status"], 401, "{result}");
    }
    assert_eq!(per_job.len(), 20);
    assert!(per_job.values().all(|n| *n == 2), "each job: the request, one refetch, one retry: {per_job:?}");
    assert!((2..=21).contains(&token_requests), "{token_requests} token requests");
    assert!(took < Duration::from_secs(5), "{took:?}");
    h.stop().await;
}

#[tokio::test]
async fn token_endpoint_trouble_fails_the_job_with_token_request_failed_and_the_right_retryability() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_REQUEST_TIMEOUT", "1s");
    let h = TestApp::start(env, Roles::ALL).await;
    let api = MockServer::start().await;
    let closed = closed_addr();
    let idp = MockServer::start().await;
    let replies = [
        (
            "slow",
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "late-0123456789"}))
                .set_delay(Duration::from_secs(3)),
        ),
        ("html", ResponseTemplate::new(200).set_body_raw("<html><body>Sign in to continue</body></html>", "text/html")),
        (
            "refusal",
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": "invalid_client", "error_description": "unknown client"})),
        ),
        ("busy", ResponseTemplate::new(200).set_body_json(json!({"error": "temporarily_unavailable"}))),
        ("error-500", ResponseTemplate::new(500).set_body_json(json!({"error": "server_error"}))),
        ("status-401", ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}))),
    ];
    for (name, reply) in replies.iter().cloned() {
        Mock::given(path(format!("/{name}"))).respond_with(reply).mount(&idp).await;
    }
    // (case, token endpoint, retryable, attempts)
    let mut cases = vec![("down".to_owned(), format!("http://{closed}/token"), true, 2)];
    for (name, retryable) in [
        ("slow", true),
        ("html", false),
        ("refusal", false),
        ("busy", true),
        ("error-500", true),
        ("status-401", false),
    ] {
        cases.push((name.to_owned(), format!("{}/{name}", idp.uri()), retryable, if retryable { 2 } else { 1 }));
    }
    let published = Instant::now();
    for (name, endpoint, _, _) in &cases {
        let config = json!({"name": name, "type": "oauth2_client_credentials", "config": oauth_config(endpoint)});
        let profile = h.create_profile("acme", config).await;
        let j = job(&format!("token-{name}"), Phase::DuringCall).to(&format!("{}/api", api.uri())).profile(&profile);
        h.broker.publish_job(&j).await;
    }

    let mut figures = Vec::new();
    for (name, _, retryable, attempts) in &cases {
        let (result, after) = h.results.of(&format!("token-{name}"), published, WAIT).await;
        figures.push(format!("{name}: {after:?}"));
        assert_failed(&result, "token_request_failed", *attempts);
        assert_eq!(result["error"]["retryable"], *retryable, "{name}: {result}");
        assert!(after < Duration::from_secs(5), "{name}: {after:?} (deadline 5 s)");
        assert!(!result.to_string().contains("client-secret-0123456789"), "{result}");
    }
    println!("token endpoint trouble, results after: {}", figures.join(", "));
    assert!(api.received_requests().await.unwrap().is_empty(), "no API request without a token");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), cases.len() as u32, WAIT).await;
    assert!(parked.iter().all(|p| p.header("x-authrelay-error-kind").as_deref() == Some("token_request_failed")));
    h.stop().await;
}

#[tokio::test]
async fn a_token_reply_without_expires_in_works_and_is_kept_for_the_default_lifetime() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "no-expiry-0123456789", "token_type": "bearer"})),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .and(wiremock::matchers::header("authorization", "Bearer no-expiry-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&api)
        .await;
    let config = json!({"name": "p", "type": "oauth2_client_credentials", "config": oauth_config(&format!("{}/token", idp.uri()))});
    let profile = h.create_profile("acme", config).await;
    let url = format!("{}/api", api.uri());

    h.broker.publish_job(&job("first", Phase::DuringCall).to(&url).profile(&profile)).await;
    let (first, _) = h.results.of("first", Instant::now(), WAIT).await;
    h.broker.publish_job(&job("second", Phase::DuringCall).to(&url).profile(&profile)).await;
    let (second, _) = h.results.of("second", Instant::now(), WAIT).await;

    assert_eq!((first["outcome"].as_str(), second["outcome"].as_str()), (Some("succeeded"), Some("succeeded")));
    h.stop().await;
}

#[tokio::test]
async fn jobs_against_a_failing_token_endpoint_do_not_hammer_it() {
    let h = spawn_worker().await;
    let api = MockServer::start().await;
    let idp = MockServer::start().await;
    Mock::given(path("/token")).respond_with(ResponseTemplate::new(503)).mount(&idp).await;
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let refusing = raw_server(move |socket| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { drop(socket) }
    })
    .await;
    let mut jobs = Vec::new();
    for (name, endpoint) in [("503", format!("{}/token", idp.uri())), ("hangs-up", format!("http://{refusing}/token"))]
    {
        let config = json!({"name": name, "type": "oauth2_client_credentials", "config": oauth_config(&endpoint)});
        let profile = h.create_profile("acme", config).await;
        jobs.extend((0..40).map(|i| {
            job(&format!("{name}-{i:02}"), Phase::DuringCall).to(&format!("{}/api", api.uri())).profile(&profile)
        }));
    }
    let published = Instant::now();

    h.broker.publish_all(&jobs).await;

    let tally = h.results.all_answered(&ids_of(&jobs), WAIT).await;
    let took = published.elapsed();
    let token_requests = idp.received_requests().await.unwrap().len();
    let token_connections = connections.load(Ordering::SeqCst);
    println!(
        "80 jobs on 2 failing token endpoints in {took:?}: {tally}; token requests: 503 → {token_requests}, hang-up → {token_connections} connections"
    );
    assert_eq!(tally.lost, 0, "{tally}");
    assert!(h.results.results().iter().all(|r| r["error"]["kind"] == "token_request_failed"));
    assert!(token_requests <= 2, "{token_requests} requests to a 503 token endpoint for 40 jobs");
    assert!(token_connections <= 2, "{token_connections} connections to a hanging-up token endpoint for 40 jobs");
    assert!(api.received_requests().await.unwrap().is_empty());
    h.stop().await;
}
