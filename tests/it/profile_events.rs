//! Profile events close the loop between editing a profile and the workers
//! that cached it (and the jobs they run next); the broker connection is cut
//! through a proxy the test owns.

use std::sync::Arc;
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::credentials::token_cache::TokenSource;
use authrelay::job::Phase;
use authrelay::metrics::{Consumer, EventOutcome};
use authrelay::worker::WorkerContext;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::{JobExt as _, TcpProxy, TestApp, TestBroker, TestEnv, eventually, job, json_props};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

/// Waits until `check` holds (checked every 20 ms); panics after [`WAIT`].
async fn until(what: &str, check: impl Fn() -> bool) {
    eventually(WAIT, what, async || check().then_some(())).await;
}

async fn oauth_profile(app: &TestApp, idp: &MockServer) -> String {
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "tok-123456789", "expires_in": 3600})),
        )
        .mount(idp)
        .await;
    app.create_profile(
        "acme",
        json!({"name": "IdP", "type": "oauth2_client_credentials", "config": {
            "client_id": "cid", "client_secret": "cs-123456789", "token_endpoint": format!("{}/token", idp.uri())}}),
    )
    .await
}

/// Caches a decrypted profile and a token in a worker, as a job would.
async fn warm(app: &TestApp, ctx: &Arc<WorkerContext>, id: &str) {
    let profile = app.store.get("acme", id.parse().unwrap()).await.unwrap();
    let config = Arc::new(profile.config.clone());
    let source = TokenSource::new(config, Some((profile.id, profile.version)), "acme", None).expect("an OAuth profile");
    ctx.executor.tokens().get(&source, Duration::from_secs(5)).await.unwrap();
    ctx.profiles.insert(Arc::new(profile));
    assert_eq!((ctx.profiles.len(), ctx.executor.tokens().len()), (1, 1));
}

fn is_cold(ctx: &Arc<WorkerContext>) -> bool {
    ctx.profiles.is_empty() && ctx.executor.tokens().is_empty()
}

#[tokio::test]
async fn every_running_instance_drops_its_cached_profile_and_token_on_any_profile_event() {
    // Each instance keeps its own tokens here, so each refetch shows at the token endpoint.
    let mut env_a = TestEnv::new();
    env_a.set("AUTHRELAY_TOKEN_SHARING", "process");
    let mut env_b = TestEnv::sibling_of(&env_a);
    env_b.set("AUTHRELAY_TOKEN_SHARING", "process");
    let a = TestApp::start(env_a, Roles::ALL).await;
    let b = TestApp::start(env_b, Roles { worker: true, api: false }).await;
    let (ctx_a, ctx_b) = (a.worker(), b.worker());
    let idp = MockServer::start().await;
    let id = oauth_profile(&a, &idp).await;
    // Each instance's event queue must be bound before the events we count are published.
    until("both event consumers run", || {
        ctx_a.metrics.consumer_starts(Consumer::ProfileEvents).get() == 1
            && ctx_b.metrics.consumer_starts(Consumer::ProfileEvents).get() == 1
    })
    .await;

    // A PATCH through the API (outbox → relay → fanout).
    warm(&a, &ctx_a, &id).await;
    warm(&a, &ctx_b, &id).await;
    let (status, _) =
        a.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"scope": "write"}})).await;
    assert_eq!(status, 200);
    until("both instances dropped what they cached", || is_cold(&ctx_a) && is_cold(&ctx_b)).await;
    // The next use in each instance fetches a new token: 2 at warm-up, 2 now.
    warm(&a, &ctx_a, &id).await;
    warm(&a, &ctx_b, &id).await;
    let token_requests = idp.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/token").count();
    assert_eq!(token_requests, 4);

    // An event from another publisher (the platform itself) does the same.
    warm(&a, &ctx_a, &id).await;
    warm(&a, &ctx_b, &id).await;
    let (broker, events) = (&a.broker, a.broker.names.events_exchange());
    broker.publish(&events, "", b"{not an event", json_props()).await;
    broker.publish(&events, "", br#"{"type": "profile.updated"}"#, json_props()).await;
    let foreign = json!({"type": "profile.updated", "workspace_id": "acme", "profile_id": id, "version": 7, "occurred_at": "2026-11-29T10:00:00Z"});
    broker.publish(&events, "", &serde_json::to_vec(&foreign).unwrap(), json_props()).await;
    until("a foreign event is honoured after malformed ones", || is_cold(&ctx_a) && is_cold(&ctx_b)).await;
    assert_eq!(ctx_a.metrics.profile_events(EventOutcome::Malformed).get(), 2);
    a.stop().await;
    b.stop().await;
}

/// Every role, reaching the shared RabbitMQ through `proxy`.
async fn behind(proxy: &TcpProxy) -> TestApp {
    let mut env = TestEnv::new();
    env.broker_through(proxy);
    TestApp::start(env, Roles::ALL).await
}

#[tokio::test]
async fn an_event_committed_while_the_broker_is_unreachable_is_published_when_it_returns() {
    let proxy = TcpProxy::to_broker().await;
    let app = behind(&proxy).await;
    // Watch the events exchange directly (not through the proxy).
    let broker = &app.broker;
    let events_exchange = broker.names.events_exchange();
    let queue = TestBroker::private_queue(&broker.channel, Some((&events_exchange, ""))).await;
    let mut events = TestBroker::consume(&broker.channel, queue.as_str()).await;
    let id =
        app.create_profile("acme", json!({"name": "p", "type": "bearer", "config": {"token": "t-1234567890"}})).await;
    let created = tokio::time::timeout(WAIT, events.next()).await.expect("create event").unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&created.data).unwrap()["type"], "profile.created");

    proxy.cut();
    let (status, _) = app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "profile edits work without the broker");
    assert!(tokio::time::timeout(Duration::from_secs(1), events.next()).await.is_err(), "no event while cut");
    proxy.restore();
    // Events are published at least once: a repeat of the create may come first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await.expect("event after the broker returns");
        let event: serde_json::Value = serde_json::from_slice(&next.unwrap().unwrap().data).unwrap();
        if event["type"] == "profile.updated" {
            assert_eq!(event["version"], 2);
            break;
        }
        assert_eq!(event["type"], "profile.created", "only a repeat of the earlier event may come first: {event}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_broker_that_stops_answering_holds_up_neither_profile_edits_nor_shutdown() {
    let proxy = TcpProxy::to_broker().await;
    let mut env = TestEnv::new();
    env.broker_through(&proxy).set("AUTHRELAY_SHUTDOWN_GRACE", "1s");
    let app = TestApp::start(env, Roles::ALL).await;
    app.ready_within(200, WAIT).await;
    let id =
        app.create_profile("acme", json!({"name": "p", "type": "bearer", "config": {"token": "t-1234567890"}})).await;

    // Silent, not closed: every AMQP call in flight now waits for an answer that never comes.
    proxy.freeze();
    let (status, _) = app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "profile edits do not wait for the broker");
    // A precondition, not a verdict: the relay gets time to try publishing the
    // edit's event into the frozen connection, so shutdown finds a call waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown took {:?}", started.elapsed());
}

#[tokio::test]
async fn readiness_follows_the_broker_connection_and_a_reconnect_drops_all_caches() {
    let proxy = TcpProxy::to_broker().await;
    let app = behind(&proxy).await;
    let ctx = app.worker();
    let idp = MockServer::start().await;
    let id = oauth_profile(&app, &idp).await;
    app.ready_within(200, WAIT).await;
    warm(&app, &ctx, &id).await;

    proxy.cut();
    app.ready_within(503, WAIT).await;
    // A job published meanwhile waits in its queue, and runs after recovery.
    let target = MockServer::start().await;
    Mock::given(path("/after")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    app.broker.publish_job(&job("during-outage", Phase::PostCall).to(&format!("{}/after", target.uri()))).await;
    proxy.restore();
    app.ready_within(200, WAIT).await;
    assert!(is_cold(&ctx), "caches are dropped on reconnect");
    let result = app.results.next(WAIT).await;
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("during-outage"), Some("succeeded")));
    app.stop().await;
}

#[tokio::test]
async fn a_consumer_cancelled_by_the_broker_is_restarted_and_counted() {
    use lapin::options::QueueDeleteOptions;
    let app = spawn_worker().await;
    let broker = &app.broker;
    let ctx = app.worker();
    let starts = || ctx.metrics.consumer_starts(Consumer::Lane(Phase::DuringCall)).get();
    until("the lane runs", || starts() == 1).await;
    // Deleting the queue makes the broker cancel our consumer.
    let queue = broker.names.phase_queue(Phase::DuringCall);
    broker.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    until("the lane was restarted", || starts() >= 2).await;
    app.ready_within(200, WAIT).await;
    let target = MockServer::start().await;
    Mock::given(path("/again")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    broker.publish_job(&job("after-cancel", Phase::DuringCall).to(&format!("{}/again", target.uri()))).await;
    assert_eq!(app.results.next(WAIT).await["outcome"], "succeeded");
    app.stop().await;
}

#[tokio::test]
async fn two_relaying_instances_publish_every_outbox_row() {
    let env_a = TestEnv::new();
    let env_b = TestEnv::sibling_of(&env_a);
    let a = TestApp::start(env_a, Roles { worker: false, api: true }).await;
    let b = TestApp::start(env_b, Roles { worker: false, api: true }).await;
    let broker = &a.broker;
    let events_exchange = broker.names.events_exchange();
    let queue = TestBroker::private_queue(&broker.channel, Some((&events_exchange, ""))).await;
    // Write through both APIs at once, so both relays are woken.
    let writes = (0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.post(
            "/v1/workspaces/acme/auth-profiles",
            json!({"name": format!("p{i}"), "type": "bearer", "config": {"token": "t"}}),
        )
    });
    for (status, body) in futures_util::future::join_all(writes).await {
        assert_eq!(status, 201, "{body}");
    }
    let db = a.env.db.client().await;
    eventually(WAIT, "every outbox row is published", async || {
        let pending: i64 = db
            .query_one("SELECT count(*) FROM profile_events_outbox WHERE published_at IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        (pending == 0).then_some(())
    })
    .await;
    let received = broker.drain(queue.as_str()).await;
    let mut ids: Vec<String> = received.iter().map(|m| m.json()["profile_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every created profile's event arrived at least once");
    a.stop().await;
    b.stop().await;
}

// ---------------------------------------------------------------------------
// Profile changes reach the jobs of running workers
// ---------------------------------------------------------------------------

/// Waits until the profile-event consumer is up (it binds its queue after start).
async fn wait_until_event_consumer_is_ready(app: &TestApp) {
    eventually(WAIT, "the profile-event consumer is ready", async || {
        let (_, body) = app.get("/readyz").await;
        (body["checks"]["consumer.profile_events"] == "ok").then_some(())
    })
    .await;
}

/// Publishes probe jobs until one reports `version` of the profile (the cache
/// is dropped asynchronously, by an event), and returns its result; panics
/// after `within`.
async fn probe_until_version(h: &TestApp, profile: &str, url: &str, version: i64, within: Duration) -> Value {
    let mut n = 0;
    let what = format!("a probe job uses version {version} of the profile, not the cached one");
    eventually(within, what, async || {
        n += 1;
        h.broker.publish_job(&job(&format!("probe-{n}"), Phase::DuringCall).to(url).profile(profile)).await;
        let result = h.results.next(WAIT).await;
        (result["auth_profile_version"] == version).then_some(result)
    })
    .await
}

#[tokio::test]
async fn a_profile_updated_through_the_api_is_used_by_the_next_jobs_with_its_new_version() {
    let h = spawn_worker().await;
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
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "old-token-0123456789"}}))
        .await;
    let url = format!("{}/v", target.uri());
    h.broker.publish_job(&job("before", Phase::DuringCall).to(&url).profile(&profile)).await;
    assert_eq!(h.results.next(WAIT).await["auth_profile_version"], 1, "the worker cached version 1");

    let (status, patched) = h
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{profile}"),
            json!({"config": {"token": "new-token-0123456789"}}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 2);

    let result = probe_until_version(&h, &profile, &url, 2, Duration::from_secs(10)).await;
    assert_eq!(result["auth_profile_version"], 2, "still the cached profile 10 s after the PATCH: {result}");
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}

#[tokio::test]
async fn a_profile_event_from_any_publisher_drops_the_cached_profile() {
    let h = spawn_worker().await;
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
        .create_profile("acme", json!({"name": "B", "type": "bearer", "config": {"token": "old-token-0123456789"}}))
        .await;
    let url = format!("{}/v", target.uri());
    h.broker.publish_job(&job("before", Phase::DuringCall).to(&url).profile(&profile)).await;
    assert_eq!(h.results.next(WAIT).await["auth_profile_version"], 1);
    let (status, _) = h
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{profile}"),
            json!({"config": {"token": "new-token-0123456789"}}),
        )
        .await;
    assert_eq!(status, 200);
    wait_until_event_consumer_is_ready(&h).await;

    // The event another instance's relay would publish.
    let event = json!({"type": "profile.updated", "workspace_id": "acme", "profile_id": profile, "version": 2, "occurred_at": "2026-01-01T00:00:00Z"});
    h.broker.publish(&h.broker.names.events_exchange(), "", &serde_json::to_vec(&event).unwrap(), json_props()).await;

    let result = probe_until_version(&h, &profile, &url, 2, Duration::from_secs(5)).await;
    assert_eq!(result["auth_profile_version"], 2, "{result}");
    assert_eq!(result["outcome"], "succeeded", "{result}");
    h.stop().await;
}
