//! Credential health (contract section 10): what jobs did with a profile's
//! credentials, as every profile read shows it — over several worker
//! processes and restarts, through a database outage, the deauthorized cycle
//! with its events and gauge, the list filter and the CLI — and never a
//! secret in it. Targets and token endpoints are servers on 127.0.0.1.

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::credentials::token_cache::TokenSource;
use authrelay::job::Phase;
use authrelay::metrics::{Consumer, EventOutcome};
use authrelay_testkit::app::Admin;
use authrelay_testkit::targets::{Tokens, closed_addr, serve};
use authrelay_testkit::{JobExt as _, TcpProxy, TestApp, TestBroker, TestEnv, eventually, job, json_props, lazy};
use axum::http::{HeaderMap, StatusCode, Uri};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{WAIT, authrelay};

/// Flushes this often in tests that wait for health (the default is 5 s).
const FLUSH: &str = "200ms";

fn quick_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_HEALTH_FLUSH_INTERVAL", FLUSH);
    env
}

async fn profile(admin: &Admin, id: &str) -> Value {
    let (status, body) = admin.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the profile's health satisfies `check`; returns it.
async fn health_until(admin: &Admin, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let describe = lazy(|| format!("the health of {id} shows {what} (it is {})", last.lock().unwrap()));
    eventually(WAIT, describe, async || {
        let health = profile(admin, id).await["health"].clone();
        *last.lock().unwrap() = health.clone();
        check(&health).then_some(health)
    })
    .await
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value.as_str().unwrap_or_else(|| panic!("a time: {value}")).parse().unwrap()
}

fn counts(health: &Value) -> (u64, u64) {
    (health["last_24h"]["succeeded"].as_u64().unwrap(), health["last_24h"]["failed"].as_u64().unwrap())
}

/// A queue bound to the profile-events exchange, read from the test's own connection.
async fn watch_events(broker: &TestBroker) -> lapin::Consumer {
    let exchange = broker.names.events_exchange();
    let queue = TestBroker::private_queue(&broker.channel, Some((&exchange, ""))).await;
    TestBroker::consume(&broker.channel, queue.as_str()).await
}

/// The next event of type `event_type` on `events` (others are skipped).
async fn next_event(events: &mut lapin::Consumer, event_type: &str) -> Value {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(Ok(delivery)) = events.next().await {
            let event: Value = serde_json::from_slice(&delivery.data).unwrap();
            if event["type"] == event_type {
                return event;
            }
        }
        panic!("the events consumer ended");
    });
    found.await.unwrap_or_else(|_| panic!("no {event_type} event within {WAIT:?}"))
}

/// Outbox rows of `event_type` for `profile_id`: what was committed, published or not.
async fn outbox_rows(env: &TestEnv, event_type: &str, profile_id: &str) -> Vec<i64> {
    let client = env.db.client().await;
    let rows = client
        .query(
            "SELECT version FROM profile_events_outbox WHERE event_type = $1 AND profile_id = $2::text::uuid ORDER BY id",
            &[&event_type, &profile_id],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn oauth(idp: &MockServer, secret: &str) -> Value {
    json!({"name": "IdP", "type": "oauth2_client_credentials", "config": {
        "client_id": "authrelay-client", "client_secret": secret, "token_endpoint": format!("{}/token", idp.uri())}})
}

fn refusing_token_endpoint() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client", "error_description": "unknown client"}))
}

fn issuing_token_endpoint() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": "at-0123456789abcdef", "expires_in": 3600}))
}

// ---------------------------------------------------------------------------
// Every worker's jobs, persisted
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_adds_up_the_jobs_of_two_worker_processes_and_survives_a_restart() {
    let env = quick_env();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(30)))
        .mount(&target)
        .await;
    Mock::given(path("/down")).respond_with(ResponseTemplate::new(503)).mount(&target).await;
    // Small lanes, so that both workers take a share of the jobs.
    let lanes = [("AUTHRELAY_POST_CALL_PREFETCH", "2".to_owned()), ("AUTHRELAY_POST_CALL_CONCURRENCY", "2".to_owned())];
    let api = authrelay(&env).serve(&["run", "--roles", "api"]).await;
    let workers = [
        authrelay(&env).envs(&lanes).serve(&["run", "--roles", "worker"]).await,
        authrelay(&env).envs(&lanes).serve(&["run", "--roles", "worker"]).await,
    ];
    let id = api
        .create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "crm-token-0123456789"}}))
        .await;
    assert_eq!(profile(&api, &id).await["health"]["state"], "unused");

    let ok: Vec<Value> = (0..40)
        .map(|i| job(&format!("ok-{i:02}"), Phase::PostCall).to(&format!("{}/ok", target.uri())).profile(&id))
        .collect();
    broker.publish_all(&ok).await;
    tap.all_answered(&authrelay_testkit::ids_of(&ok), WAIT).await;
    let down: Vec<Value> = (0..2)
        .map(|i| job(&format!("down-{i}"), Phase::PostCall).to(&format!("{}/down", target.uri())).profile(&id))
        .map(|j| j.max_attempts(1))
        .collect();
    broker.publish_all(&down).await;
    tap.all_answered(&authrelay_testkit::ids_of(&down), WAIT).await;
    let answered = Instant::now();

    let health = health_until(&api, &id, "42 jobs", |h| counts(h) == (40, 2)).await;
    let took = answered.elapsed();
    let series = r#"authrelay_jobs_total{outcome="succeeded",phase="post_call"}"#;
    let shares = [workers[0].metric(series).await, workers[1].metric(series).await];
    println!("health of 42 jobs over two workers ({shares:?} each) read {took:?} after the last result: {health}");
    assert!(shares.iter().all(|n| *n > 0.0), "both workers ran jobs: {shares:?}");
    assert!(took < Duration::from_secs(30), "within 30 s: {took:?}");
    assert_eq!(health["state"], "failing", "{health}");
    assert_eq!(health["last_failure"]["kind"], "http_status");
    assert_eq!(health["last_failure"]["status"], 503);
    assert_eq!(health["last_failure"]["message"], "503 from 127.0.0.1");
    assert!(health["last_success_at"].is_string() && health["last_used_at"].is_string(), "{health}");
    let since = time(&health["since"]);
    assert!(
        time(&health["last_success_at"]) < since && since <= time(&health["last_failure"]["at"]),
        "failing since the first of the two failures: {health}"
    );

    // Everything stops; a new process reads the same health.
    for mut process in workers.into_iter().chain([api]) {
        process.terminate();
        assert!(process.exit_within(WAIT).await.success());
    }
    let api = authrelay(&env).serve(&["run", "--roles", "api"]).await;
    assert_eq!(profile(&api, &id).await["health"], health, "health survives a restart");

    // A worker that would not flush for 25 s writes what it saw when it stops.
    let slow = [("AUTHRELAY_HEALTH_FLUSH_INTERVAL", "25s".to_owned())];
    let mut worker = authrelay(&env).envs(&slow).serve(&["run", "--roles", "worker"]).await;
    let last: Vec<Value> = (0..3)
        .map(|i| job(&format!("last-{i}"), Phase::PostCall).to(&format!("{}/ok", target.uri())).profile(&id))
        .collect();
    broker.publish_all(&last).await;
    tap.all_answered(&authrelay_testkit::ids_of(&last), WAIT).await;
    assert_eq!(counts(&profile(&api, &id).await["health"]), (40, 2), "not flushed yet");
    worker.terminate();
    assert!(worker.exit_within(WAIT).await.success());
    let health = profile(&api, &id).await["health"].clone();
    assert_eq!((counts(&health), health["state"].as_str()), ((43, 2), Some("ok")), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_while_the_database_is_down_and_their_health_is_written_once_it_returns() {
    let proxy = TcpProxy::to_database().await;
    let mut env = quick_env();
    env.database_through(&proxy);
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let url = format!("{}/ok", target.uri());
    let id = h
        .create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "crm-token-0123456789"}}))
        .await;
    h.broker.publish_job(&job("warm", Phase::PostCall).to(&url).profile(&id)).await;
    h.results.next(WAIT).await;
    health_until(&h, &id, "the first job", |health| counts(health) == (1, 0)).await;

    proxy.cut();
    let cut = Instant::now();
    let jobs: Vec<Value> = (0..5).map(|i| job(&format!("outage-{i}"), Phase::PostCall).to(&url).profile(&id)).collect();
    h.broker.publish_all(&jobs).await;
    let results = h.results.take(5, WAIT).await;
    let answered = cut.elapsed();
    // Several flushes fail meanwhile; what they held is kept.
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();

    let health = health_until(&h, &id, "every job", |health| counts(health) == (6, 0)).await;
    println!("5 jobs on a cached profile answered {answered:?} into a database outage; health after it: {health}");
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    assert!(answered < Duration::from_secs(5), "jobs did not wait for the health flush: {answered:?}");
    assert_eq!(health["state"], "ok");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Deauthorized: the credentials themselves are refused
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_refuses_the_client_deauthorizes_it_once_and_accepting_again_authorizes_it() {
    let mut env_a = quick_env();
    let one_at_a_time = [
        ("AUTHRELAY_POST_CALL_PREFETCH", "1"),
        ("AUTHRELAY_POST_CALL_CONCURRENCY", "1"),
        ("AUTHRELAY_TOKEN_FAILURE_TTL", "0s"),
    ];
    for (k, v) in one_at_a_time {
        env_a.set(k, v);
    }
    let mut env_b = TestEnv::sibling_of(&env_a);
    for (k, v) in one_at_a_time.iter().chain([&("AUTHRELAY_HEALTH_FLUSH_INTERVAL", FLUSH)]) {
        env_b.set(k, *v);
    }
    let a = TestApp::start(env_a, Roles::ALL).await;
    let b = TestApp::start(env_b, Roles { worker: true, api: false }).await;
    // Both lanes consume before the jobs are published, so that both take a share.
    a.ready_within(200, WAIT).await;
    b.ready_within(200, WAIT).await;
    let mut events = watch_events(&a.broker).await;
    let idp = MockServer::start().await;
    Mock::given(path("/token")).respond_with(refusing_token_endpoint()).mount(&idp).await;
    let api = MockServer::start().await;
    Mock::given(path("/contacts")).respond_with(ResponseTemplate::new(200)).mount(&api).await;
    let url = format!("{}/contacts", api.uri());
    let id = a.create_profile("acme", oauth(&idp, "cs-0123456789abcdef")).await;

    let refused: Vec<Value> =
        (0..10).map(|i| job(&format!("refused-{i}"), Phase::PostCall).to(&url).profile(&id)).collect();
    a.broker.publish_all(&refused).await;
    let results = a.results.take(10, WAIT).await;
    assert!(results.iter().all(|r| r["error"]["kind"] == "token_request_failed"), "{results:?}");
    let health = health_until(&a, &id, "all 10 failures", |h| counts(h) == (0, 10)).await;
    let series = r#"authrelay_jobs_total{outcome="failed",phase="post_call"}"#;
    let shares = [a.metric(series).await, b.metric(series).await];
    assert!(shares.iter().all(|n| *n > 0.0), "both workers saw refusals: {shares:?}");
    assert_eq!(health["state"], "deauthorized", "{health}");
    assert_eq!(health["last_failure"]["kind"], "token_request_failed");
    assert_eq!(health["last_failure"]["message"], "the token endpoint refused the client (invalid_client)");
    let event = next_event(&mut events, "profile.deauthorized").await;
    assert_eq!((event["workspace_id"].as_str(), event["profile_id"].as_str()), (Some("acme"), Some(id.as_str())));
    assert_eq!(event["version"], 1);
    assert!(event["occurred_at"].is_string(), "{event}");
    assert_eq!(outbox_rows(&a.env, "profile.deauthorized", &id).await.len(), 1, "two workers, ten refusals: one event");
    a.metric_reaches("authrelay_profiles_deauthorized", 1.0, WAIT).await;
    b.metric_reaches("authrelay_profiles_deauthorized", 1.0, WAIT).await;

    // The endpoint issues tokens again: the next job's success clears it.
    idp.reset().await;
    Mock::given(path("/token")).respond_with(issuing_token_endpoint()).mount(&idp).await;
    a.broker.publish_job(&job("accepted", Phase::PostCall).to(&url).profile(&id)).await;
    assert_eq!(a.results.next(WAIT).await["outcome"], "succeeded");
    let health = health_until(&a, &id, "ok", |h| h["state"] == "ok").await;
    let event = next_event(&mut events, "profile.authorized").await;
    assert_eq!(event["profile_id"], id.as_str());
    assert_eq!(health["since"], health["last_success_at"], "{health}");
    eventually(WAIT, "the gauge drops to 0", async || {
        (a.metric("authrelay_profiles_deauthorized").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(outbox_rows(&a.env, "profile.authorized", &id).await.len(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn static_credentials_refused_on_three_jobs_in_a_row_are_deauthorized_until_the_profile_is_updated() {
    let h = TestApp::start(quick_env(), Roles::ALL).await;
    let mut events = watch_events(&h.broker).await;
    let target = MockServer::start().await;
    Mock::given(path("/refuses")).respond_with(ResponseTemplate::new(401)).mount(&target).await;
    Mock::given(path("/forbids")).respond_with(ResponseTemplate::new(403)).mount(&target).await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let id = h
        .create_profile(
            "acme",
            json!({"name": "Old key", "type": "bearer", "config": {"token": "old-token-0123456789"}}),
        )
        .await;
    let mut n = 0;
    let mut run = async |to: &str| {
        n += 1;
        h.broker
            .publish_job(&job(&format!("job-{n}"), Phase::PostCall).to(&format!("{}{to}", target.uri())).profile(&id))
            .await;
        h.results.next(WAIT).await;
        n
    };

    // Two refusals, then a success: the run is broken.
    run("/refuses").await;
    run("/forbids").await;
    let jobs = run("/ok").await;
    let health = health_until(&h, &id, "3 jobs", |health| counts(health).0 + counts(health).1 == jobs as u64).await;
    assert_eq!(health["state"], "ok", "{health}");
    // Two more: failing, not yet deauthorized.
    run("/refuses").await;
    let jobs = run("/refuses").await;
    let health = health_until(&h, &id, "5 jobs", |health| counts(health).0 + counts(health).1 == jobs as u64).await;
    assert_eq!(health["state"], "failing", "{health}");
    assert_eq!(health["last_failure"]["message"], "401 from 127.0.0.1");
    // The third in a row.
    run("/forbids").await;
    let health = health_until(&h, &id, "deauthorized", |health| health["state"] == "deauthorized").await;
    assert_eq!((health["last_failure"]["status"].as_u64(), counts(&health)), (Some(403), (1, 5)));
    next_event(&mut events, "profile.deauthorized").await;

    // Replacing the token clears it, in the update's own transaction.
    let (status, updated) = h
        .patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"token": "new-token-0123456789"}}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["health"]["state"], "ok", "{updated}");
    assert_eq!(updated["health"]["last_24h"], json!({"succeeded": 1, "failed": 5}), "counts are kept");
    assert_eq!(outbox_rows(&h.env, "profile.authorized", &id).await, vec![2]);
    assert_eq!(outbox_rows(&h.env, "profile.updated", &id).await, vec![2]);
    let event = next_event(&mut events, "profile.authorized").await;
    assert_eq!(event["version"], 2);
    // A rename of a healthy profile announces nothing.
    let (status, _) = h.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "New key"})).await;
    assert_eq!(status, 200);
    assert_eq!(outbox_rows(&h.env, "profile.authorized", &id).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_fresh_token_refused_by_the_target_deauthorizes_and_the_event_drops_the_cached_token() {
    let h = TestApp::start(quick_env(), Roles::ALL).await;
    let ctx = h.worker();
    eventually(WAIT, "the event consumer runs", async || {
        (ctx.metrics.consumer_starts(Consumer::ProfileEvents).get() == 1).then_some(())
    })
    .await;
    let idp = MockServer::start().await;
    let tokens = Tokens::new("fresh", 3600);
    Mock::given(path("/token")).respond_with(tokens.clone()).mount(&idp).await;
    let api = MockServer::start().await;
    Mock::given(path("/contacts")).respond_with(ResponseTemplate::new(401)).mount(&api).await;
    let id = h.create_profile("acme", oauth(&idp, "cs-0123456789abcdef")).await;

    h.broker.publish_job(&job("revoked", Phase::PostCall).to(&format!("{}/contacts", api.uri())).profile(&id)).await;
    let result = h.results.next(WAIT).await;
    assert_eq!((result["outcome"].as_str(), result["attempts"].as_u64()), (Some("failed"), Some(2)), "{result}");
    assert_eq!(tokens.issued(), 2, "a token for the job, and one more after the 401");
    let health = health_until(&h, &id, "deauthorized", |health| health["state"] == "deauthorized").await;
    assert_eq!(health["last_failure"]["message"], "401 from 127.0.0.1 to a freshly fetched token");
    eventually(WAIT, "the refused token is dropped", async || ctx.executor.tokens().is_empty().then_some(())).await;
    h.stop().await;
}

#[tokio::test]
async fn the_health_events_drop_tokens_only_when_a_profile_is_deauthorized() {
    let h = TestApp::start(quick_env(), Roles::ALL).await;
    let ctx = h.worker();
    eventually(WAIT, "the event consumer runs", async || {
        (ctx.metrics.consumer_starts(Consumer::ProfileEvents).get() == 1).then_some(())
    })
    .await;
    let idp = MockServer::start().await;
    Mock::given(path("/token")).respond_with(issuing_token_endpoint()).mount(&idp).await;
    let id = h.create_profile("acme", oauth(&idp, "cs-0123456789abcdef")).await;
    let profile = h.store.get("acme", id.parse().unwrap()).await.unwrap();
    let config = std::sync::Arc::new(profile.config.clone());
    let source = TokenSource::new(config, Some((profile.id, profile.version)), "acme", None).expect("an OAuth profile");
    ctx.executor.tokens().get(&source, WAIT).await.unwrap();
    ctx.profiles.insert(std::sync::Arc::new(profile));
    let event = |event_type: &str| {
        serde_json::to_vec(&json!({"type": event_type, "workspace_id": "acme", "profile_id": id, "version": 1,
                                   "occurred_at": "2026-12-06T10:00:00Z"}))
        .unwrap()
    };
    let exchange = h.broker.names.events_exchange();
    let ignored = || ctx.metrics.profile_events(EventOutcome::Ignored).get();
    eventually(WAIT, "the profile.created event has come and gone", async || (ignored() >= 1).then_some(())).await;
    let (ignored_before, applied) = (ignored(), ctx.metrics.profile_events(EventOutcome::Applied).get());

    h.broker.publish(&exchange, "", &event("profile.authorized"), json_props()).await;
    eventually(WAIT, "the authorized event is ignored", async || (ignored() > ignored_before).then_some(())).await;
    assert_eq!((ctx.profiles.len(), ctx.executor.tokens().len()), (1, 1), "nothing is dropped");
    h.broker.publish(&exchange, "", &event("profile.deauthorized"), json_props()).await;
    eventually(WAIT, "the token is dropped", async || ctx.executor.tokens().is_empty().then_some(())).await;
    assert_eq!(ctx.profiles.len(), 1, "the profile itself did not change");
    assert_eq!(ctx.metrics.profile_events(EventOutcome::Applied).get(), applied + 1);
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Reading health: the list filter, the CLI, and no secret anywhere
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_list_filters_by_health_state_and_the_cli_shows_health() {
    let h = TestApp::start(quick_env(), Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let idp = MockServer::start().await;
    Mock::given(path("/token")).respond_with(refusing_token_endpoint()).mount(&idp).await;
    let bearer = |name: &str| json!({"name": name, "type": "bearer", "config": {"token": "bearer-token-0123456789"}});
    let healthy = h.create_profile("acme", bearer("Healthy")).await;
    let idle = h.create_profile("acme", bearer("Idle")).await;
    let refused = h.create_profile("acme", oauth(&idp, "cs-0123456789abcdef")).await;
    let url = format!("{}/ok", target.uri());
    h.broker.publish_job(&job("healthy", Phase::PostCall).to(&url).profile(&healthy)).await;
    h.broker.publish_job(&job("refused", Phase::PostCall).to(&url).profile(&refused)).await;
    h.results.take(2, WAIT).await;
    health_until(&h, &healthy, "ok", |health| health["state"] == "ok").await;
    health_until(&h, &refused, "deauthorized", |health| health["state"] == "deauthorized").await;

    let ids = async |query: &str| -> Vec<String> {
        let (status, page) = h.get(&format!("/v1/workspaces/acme/auth-profiles?{query}")).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids("state=deauthorized").await, vec![refused.clone()]);
    assert_eq!(ids("state=unused").await, vec![idle.clone()]);
    assert_eq!(ids("state=ok,unused").await, vec![healthy.clone(), idle.clone()]);
    assert_eq!(ids("state=failing,deauthorized&type=bearer").await, Vec::<String>::new());
    let (status, page) = h.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(status, 200);
    let states: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|p| p["health"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["ok", "unused", "deauthorized"], "every list item carries its health");
    let (status, error) = h.get("/v1/workspaces/acme/auth-profiles?state=broken").await;
    assert_eq!((status, error["details"][0]["field"].as_str()), (422, Some("state")), "{error}");

    let cli = authrelay(&h.env);
    let out = cli.output(&["profiles", "list", "-w", "acme", "--state", "deauthorized"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], refused.as_str());
    let out = cli.output(&["profiles", "show", "-w", "acme", &refused]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["health"]["state"], "deauthorized", "{shown}");
    assert_eq!(shown["health"]["last_24h"], json!({"succeeded": 0, "failed": 1}));
    let out = cli.output(&["profiles", "list", "-w", "acme", "--state", "broken"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state"), "{}", String::from_utf8_lossy(&out.stderr));
    h.stop().await;
}

/// Answers `status` with the request's URL, headers and body echoed in the
/// body and in a response header: a target that leaks whatever it was sent.
async fn echo_target(status: StatusCode) -> std::net::SocketAddr {
    let echo = move |uri: Uri, headers: HeaderMap, body: String| async move {
        let seen = format!("{uri} {headers:?} {body}");
        let header = seen.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(2000).collect::<String>();
        (status, [("www-authenticate", header)], seen)
    };
    serve(axum::Router::new().fallback(echo)).await
}

#[tokio::test]
async fn no_secret_reaches_health_even_from_targets_and_token_endpoints_that_echo_them() {
    let h = TestApp::start(quick_env(), Roles::ALL).await;
    let secrets = ["bearer-secret-0001", "apikey-secret-0002", "basic-secret-0003", "client-secret-0004"];
    let idp = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "error_description": format!("wrong secret {} for authrelay-client", secrets[3])})))
        .mount(&idp)
        .await;
    let unauthorized = echo_target(StatusCode::UNAUTHORIZED).await;
    let forbidden = echo_target(StatusCode::FORBIDDEN).await;
    let broken = echo_target(StatusCode::INTERNAL_SERVER_ERROR).await;
    let profiles = [
        (json!({"name": "b", "type": "bearer", "config": {"token": secrets[0]}}), format!("http://{unauthorized}/me")),
        (
            json!({"name": "k", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": secrets[1]}]}}),
            format!("http://{forbidden}/me"),
        ),
        (
            json!({"name": "u", "type": "basic", "config": {"username": "svc", "password": secrets[2]}}),
            format!("http://{broken}/me"),
        ),
        (oauth(&idp, secrets[3]), format!("http://{broken}/me")),
        // A connection error's text names the URL, query (and API key) included.
        (
            json!({"name": "c", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": secrets[1]}]}}),
            format!("http://{}/me", closed_addr()),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (body, url)) in profiles.into_iter().enumerate() {
        let id = h.create_profile("acme", body).await;
        h.broker.publish_job(&job(&format!("echo-{i}"), Phase::PostCall).to(&url).profile(&id).max_attempts(1)).await;
        ids.push(id);
    }
    h.results.take(ids.len(), WAIT).await;
    let mut messages = Vec::new();
    for id in &ids {
        let health = health_until(&h, id, "a failure", |health| health["last_failure"].is_object()).await;
        messages.push(health["last_failure"]["message"].as_str().unwrap().to_owned());
    }
    println!("health messages: {messages:?}");

    let (_, list) = h.get("/v1/workspaces/acme/auth-profiles").await;
    let (_, audit) = h.get("/v1/workspaces/acme/audit").await;
    let stored = h.env.db.client().await;
    let rows = stored.query("SELECT row_to_json(h)::text FROM profile_health h", &[]).await.unwrap();
    let rows: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let everything = format!("{list} {audit} {rows:?} {messages:?}");
    for secret in secrets {
        assert!(!everything.contains(secret), "{secret} leaked: {everything}");
        assert!(!everything.contains(&secret[..12]), "part of {secret} leaked: {everything}");
    }
    assert_eq!(messages[0], "401 from 127.0.0.1");
    assert_eq!(messages[3], "the token endpoint refused the client (invalid_client)");
    assert_eq!(messages[4], "could not connect to 127.0.0.1");
    h.stop().await;
}
