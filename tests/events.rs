//! Profile events close the loop between editing a profile and the workers
//! that cached it; the broker connection is cut through a proxy the test owns.

mod common;

use authrelay::job::Phase;
use authrelay::metrics::{Consumer, EventOutcome};

use std::sync::Arc;
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::profile::AuthConfig;
use authrelay::worker::WorkerContext;
use common::amqp::{TestBroker, json_props};
use common::proxy::TcpProxy;
use common::{TestApp, TestEnv, spawn_app_with};
use futures_util::StreamExt as _;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let AuthConfig::OAuth2ClientCredentials(config) = &profile.config else { panic!("oauth profile") };
    ctx.executor.tokens().get(profile.id, profile.version, config, Duration::from_secs(5)).await.unwrap();
    ctx.profiles.insert(Arc::new(profile));
    assert_eq!((ctx.profiles.len(), ctx.executor.tokens().len()), (1, 1));
}

fn is_cold(ctx: &Arc<WorkerContext>) -> bool {
    ctx.profiles.is_empty() && ctx.executor.tokens().is_empty()
}

/// A second instance on the same database and broker names.
fn sibling_env(first: &TestEnv) -> TestEnv {
    let mut env = TestEnv::new();
    for key in ["AUTHRELAY_DATABASE_URL", "AUTHRELAY_MASTER_KEYS", "AUTHRELAY_ADMIN_TOKEN", "AUTHRELAY_AMQP_PREFIX"] {
        env.set(key, first.vars[key].clone());
    }
    env
}

#[tokio::test]
async fn every_running_instance_drops_its_cached_profile_and_token_on_any_profile_event() {
    let env_a = TestEnv::new();
    let env_b = sibling_env(&env_a);
    let broker = TestBroker::new(&env_a.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let a = spawn_app_with(env_a, Roles::ALL).await;
    let b = spawn_app_with(env_b, Roles { worker: true, api: false }).await;
    let (ctx_a, ctx_b) = (a.worker.clone().unwrap(), b.worker.clone().unwrap());
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
    let events = broker.names.events_exchange();
    broker.publish(&events, "", b"{not an event", json_props()).await;
    broker.publish(&events, "", br#"{"type": "profile.updated"}"#, json_props()).await;
    let foreign = json!({"type": "profile.updated", "workspace_id": "acme", "profile_id": id, "version": 7, "occurred_at": "2026-11-29T10:00:00Z"});
    broker.publish(&events, "", &serde_json::to_vec(&foreign).unwrap(), json_props()).await;
    until("a foreign event is honoured after malformed ones", || is_cold(&ctx_a) && is_cold(&ctx_b)).await;
    assert_eq!(ctx_a.metrics.profile_events(EventOutcome::Malformed).get(), 2);
    a.stop().await;
    b.stop().await;
}

async fn proxied_app(proxy: &TcpProxy) -> (TestApp, TestBroker) {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{}/%2f", proxy.addr));
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    (spawn_app_with(env, Roles::ALL).await, broker)
}

/// The shared RabbitMQ, reached through a proxy by the app under test.
fn upstream() -> std::net::SocketAddr {
    "127.0.0.1:5672".parse().unwrap()
}

#[tokio::test]
async fn an_event_committed_while_the_broker_is_unreachable_is_published_when_it_returns() {
    let proxy = TcpProxy::start(upstream()).await;
    let (app, broker) = proxied_app(&proxy).await;
    // Watch the events exchange directly (not through the proxy).
    let events_exchange = broker.names.events_exchange();
    let queue = TestBroker::private_queue(&broker.channel, Some((&events_exchange, ""))).await;
    let mut events = broker
        .channel
        .basic_consume(
            queue.clone(),
            "".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
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
    let proxy = TcpProxy::start(upstream()).await;
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{}/%2f", proxy.addr));
    env.set("AUTHRELAY_SHUTDOWN_GRACE", "1s");
    let _broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let app = spawn_app_with(env, Roles::ALL).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.http.get(app.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id =
        app.create_profile("acme", json!({"name": "p", "type": "bearer", "config": {"token": "t-1234567890"}})).await;

    // Silent, not closed: every AMQP call in flight now waits for an answer that never comes.
    proxy.freeze();
    let (status, _) = app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "profile edits do not wait for the broker");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown took {:?}", started.elapsed());
}

#[tokio::test]
async fn readiness_follows_the_broker_connection_and_a_reconnect_drops_all_caches() {
    let proxy = TcpProxy::start(upstream()).await;
    let (app, mut broker) = proxied_app(&proxy).await;
    let ctx = app.worker.clone().unwrap();
    let idp = MockServer::start().await;
    let id = oauth_profile(&app, &idp).await;
    let ready = || async { app.http.get(app.url("/readyz")).send().await.unwrap().status().as_u16() };
    let deadline = tokio::time::Instant::now() + WAIT;
    while ready().await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warm(&app, &ctx, &id).await;

    proxy.cut();
    let deadline = tokio::time::Instant::now() + WAIT;
    while ready().await != 503 {
        assert!(tokio::time::Instant::now() < deadline, "readiness never reflected the lost broker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A job published meanwhile waits in its queue, and runs after recovery.
    let target = MockServer::start().await;
    Mock::given(path("/after")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    broker
        .publish_job(&json!({"job_id": "during-outage", "workspace_id": "acme", "phase": "post_call", "action_id": "a",
            "request": {"url": format!("{}/after", target.uri())}}))
        .await;
    proxy.restore();
    let deadline = tokio::time::Instant::now() + WAIT;
    while ready().await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_cold(&ctx), "caches are dropped on reconnect");
    let result = broker.next_result(WAIT).await;
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("during-outage"), Some("succeeded")));
    app.stop().await;
}

#[tokio::test]
async fn a_consumer_cancelled_by_the_broker_is_restarted_and_counted() {
    use lapin::options::QueueDeleteOptions;
    let env = TestEnv::new();
    let mut broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let app = spawn_app_with(env, Roles::ALL).await;
    let ctx = app.worker.clone().unwrap();
    let starts = || ctx.metrics.consumer_starts(Consumer::Lane(Phase::DuringCall)).get();
    until("the lane runs", || starts() == 1).await;
    // Deleting the queue makes the broker cancel our consumer.
    let queue = broker.names.phase_queue(authrelay::job::Phase::DuringCall);
    broker.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    until("the lane was restarted", || starts() >= 2).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.http.get(app.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = MockServer::start().await;
    Mock::given(path("/again")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&target).await;
    broker
        .publish_job(
            &json!({"job_id": "after-cancel", "workspace_id": "acme", "phase": "during_call", "action_id": "a",
            "request": {"url": format!("{}/again", target.uri())}}),
        )
        .await;
    assert_eq!(broker.next_result(WAIT).await["outcome"], "succeeded");
    app.stop().await;
}

#[tokio::test]
async fn two_relaying_instances_publish_every_outbox_row() {
    let env_a = TestEnv::new();
    let env_b = sibling_env(&env_a);
    let broker = TestBroker::new(&env_a.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let events_exchange = broker.names.events_exchange();
    let queue = TestBroker::private_queue(&broker.channel, Some((&events_exchange, ""))).await;
    let a = spawn_app_with(env_a, Roles { worker: false, api: true }).await;
    let b = spawn_app_with(env_b, Roles { worker: false, api: true }).await;
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
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pending: i64 = db
            .query_one("SELECT count(*) FROM profile_events_outbox WHERE published_at IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending} events never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = broker.drain(queue.as_str()).await;
    let mut ids: Vec<String> = received.iter().map(|m| m.json()["profile_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every created profile's event arrived at least once");
    a.stop().await;
    b.stop().await;
}
