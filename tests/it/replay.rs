//! Replaying parked jobs, on the real broker.

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::config::WorkerConfig;
use authrelay::job::{ErrorKind, Phase};
use authrelay::queue::replay::{ReplayRequest, replay};
use authrelay_testkit::{JobExt as _, Taken, TestApp, TestBroker, TestEnv, eventually, job, json_props};
use chrono::Utc;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn worker_config() -> WorkerConfig {
    WorkerConfig::from_env(&std::collections::HashMap::<String, String>::new()).unwrap()
}

/// A broker of its own: the topology behind a fresh prefix, removed with the environment.
async fn broker() -> (TestBroker, TestEnv) {
    let env = TestEnv::new();
    (TestBroker::new(env.names()).await, env)
}

/// Parks a job the way a worker does: the body unchanged, the contract's headers added.
async fn park(broker: &TestBroker, id: &str, phase: Phase, workspace: &str, kind: &str, failed_minutes_ago: i64) {
    let job = job(id, phase).to("https://example.com/").with(json!({"workspace_id": workspace}));
    let mut headers = FieldTable::default();
    let text = |s: String| AMQPValue::LongString(s.into());
    headers.insert("x-authrelay-error-kind".into(), text(kind.into()));
    headers.insert("x-authrelay-error".into(), text("HTTP 503".into()));
    headers.insert("x-authrelay-attempts".into(), AMQPValue::LongLongInt(3));
    headers.insert("x-authrelay-phase".into(), text(phase.as_str().into()));
    headers.insert(
        "x-authrelay-failed-at".into(),
        text((Utc::now() - chrono::Duration::minutes(failed_minutes_ago)).to_rfc3339()),
    );
    let props = json_props().with_headers(headers);
    broker.publish("", &broker.names.failed_queue(), &serde_json::to_vec(&job).unwrap(), props).await;
}

fn ids(taken: &[Taken]) -> Vec<String> {
    taken.iter().map(|t| t.json()["job_id"].as_str().unwrap().to_owned()).collect()
}

async fn parked_fixture(broker: &TestBroker) {
    park(broker, "p1", Phase::PostCall, "acme", "http_status", 30).await;
    park(broker, "p2", Phase::PostCall, "globex", "http_status", 30).await;
    park(broker, "p3", Phase::PostCall, "acme", "token_request_failed", 1).await;
    park(broker, "p4", Phase::PreCall, "acme", "http_status", 0).await;
    park(broker, "p5", Phase::PostCall, "acme", "http_status", 0).await;
}

async fn run(broker: &TestBroker, request: ReplayRequest) -> authrelay::queue::replay::ReplayReport {
    replay(&broker.conn, &broker.names, &worker_config(), &request).await.unwrap()
}

#[tokio::test]
async fn each_filter_moves_exactly_the_matching_jobs_and_keeps_the_rest_in_order() {
    let cases: Vec<(ReplayRequest, Vec<&str>)> = vec![
        (
            ReplayRequest { workspace: Some("acme".into()), phase: Some(Phase::PostCall), ..Default::default() },
            vec!["p1", "p3", "p5"],
        ),
        (ReplayRequest { error_kind: Some(ErrorKind::TokenRequestFailed), ..Default::default() }, vec!["p3"]),
        (ReplayRequest { job_id: Some("p2".into()), ..Default::default() }, vec!["p2"]),
        (ReplayRequest { older_than: Some(Duration::from_secs(600)), ..Default::default() }, vec!["p1", "p2"]),
        (ReplayRequest { phase: Some(Phase::PreCall), ..Default::default() }, vec!["p4"]),
        (ReplayRequest { phase: Some(Phase::PostCall), limit: Some(2), ..Default::default() }, vec!["p1", "p2"]),
    ];
    for (request, expected) in cases {
        let (broker, _env) = broker().await;
        parked_fixture(&broker).await;
        let report = run(&broker, request.clone()).await;
        assert_eq!(report.job_ids, expected, "{request:?}");
        assert_eq!(report.moved, expected.len());
        let mut moved = broker.drain(&broker.names.phase_queue(Phase::PostCall)).await;
        moved.extend(broker.drain(&broker.names.phase_queue(Phase::PreCall)).await);
        let mut moved_ids = ids(&moved);
        moved_ids.sort();
        assert_eq!(moved_ids, expected, "{request:?}");
        for m in &moved {
            assert!(m.header("x-authrelay-attempts").is_none(), "a fresh attempt count");
            assert!(m.header("x-authrelay-error-kind").is_none());
            assert!(m.header("x-authrelay-replayed-at").is_some());
        }
        let kept = ids(&broker.drain(&broker.names.failed_queue()).await);
        let expected_kept: Vec<String> =
            ["p1", "p2", "p3", "p4", "p5"].iter().filter(|id| !expected.contains(id)).map(|s| s.to_string()).collect();
        assert_eq!(kept, expected_kept, "the rest stays parked, in order ({request:?})");
    }
}

#[tokio::test]
async fn a_dry_run_lists_the_jobs_and_moves_nothing() {
    let (broker, _env) = broker().await;
    parked_fixture(&broker).await;
    let report =
        run(&broker, ReplayRequest { workspace: Some("acme".into()), dry_run: true, ..Default::default() }).await;
    assert_eq!(report.job_ids, ["p1", "p3", "p4", "p5"]);
    assert_eq!(broker.message_count(&broker.names.phase_queue(Phase::PostCall)).await, 0);
    assert_eq!(ids(&broker.drain(&broker.names.failed_queue()).await), ["p1", "p2", "p3", "p4", "p5"]);
}

#[tokio::test]
async fn a_during_call_job_whose_call_is_over_is_replayed_only_when_asked() {
    let (broker, _env) = broker().await;
    park(&broker, "live", Phase::DuringCall, "acme", "http_status", 0).await;
    park(&broker, "over", Phase::DuringCall, "acme", "http_status", 60).await;
    let report = run(&broker, ReplayRequest { phase: Some(Phase::DuringCall), ..Default::default() }).await;
    assert_eq!((report.job_ids.clone(), report.skipped_expired), (vec!["live".to_owned()], 1));
    let report = run(&broker, ReplayRequest { include_expired: true, ..Default::default() }).await;
    assert_eq!(report.job_ids, ["over"]);
    let moved = broker.drain(&broker.names.phase_queue(Phase::DuringCall)).await;
    assert_eq!(ids(&moved), ["live", "over"]);
    assert_eq!(moved[1].header("x-authrelay-deadline-override").as_deref(), Some("Boolean(true)"));
}

#[tokio::test]
async fn a_job_that_failed_with_401_succeeds_after_its_profile_is_fixed_and_it_is_replayed() {
    let app = TestApp::start(TestEnv::new(), Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/hook"))
        .and(header("authorization", "Bearer fixed-token-123456"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    Mock::given(path("/hook")).respond_with(ResponseTemplate::new(401)).expect(1).mount(&target).await;
    let id = app
        .create_profile("acme", json!({"name": "Hook", "type": "bearer", "config": {"token": "stale-token-123456"}}))
        .await;
    let hook = json!({"method": "POST", "url": format!("{}/hook", target.uri()), "body": {"ok": true}});
    app.broker.publish_job(&job("hook-1", Phase::PostCall).request(hook).profile(&id)).await;
    let first = app.results.next(Duration::from_secs(15)).await;
    assert_eq!(
        (first["outcome"].as_str(), first["response"]["status"].as_u64()),
        (Some("failed"), Some(401)),
        "{first}"
    );

    let (status, _) = app
        .patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"token": "fixed-token-123456"}}))
        .await;
    assert_eq!(status, 200);
    // The PATCH's event reaches the worker and drops its cached profile; replay goes through the API.
    eventually(Duration::from_secs(10), "the parked job is replayed", async || {
        let (_, report) = app.post("/v1/replay", json!({"job_id": "hook-1"})).await;
        (report["moved"] == 1).then_some(())
    })
    .await;
    let second = app.results.next(Duration::from_secs(15)).await;
    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(second["auth_profile_version"], 2);
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"authrelay_jobs_replayed_total{phase="post_call"} 1"#), "{metrics}");
    let _: Value = second;
    app.stop().await;
}
