//! Replaying parked jobs, on the real broker.

mod common;

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::config::WorkerConfig;
use authrelay::job::{ErrorKind, Phase};
use authrelay::queue::replay::{ReplayRequest, replay};
use chrono::Utc;
use common::amqp::{Taken, TestBroker, json_props};
use common::{TestEnv, spawn_app_with};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn worker_config() -> WorkerConfig {
    WorkerConfig::from_env(&std::collections::HashMap::<String, String>::new()).unwrap()
}

fn prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Parks a job the way a worker does: the body unchanged, the contract's headers added.
async fn park(broker: &TestBroker, id: &str, phase: &str, workspace: &str, kind: &str, failed_minutes_ago: i64) {
    let job = json!({"job_id": id, "workspace_id": workspace, "phase": phase, "action_id": "a", "request": {"url": "https://example.com/"}});
    let mut headers = FieldTable::default();
    let text = |s: String| AMQPValue::LongString(s.into());
    headers.insert("x-authrelay-error-kind".into(), text(kind.into()));
    headers.insert("x-authrelay-error".into(), text("HTTP 503".into()));
    headers.insert("x-authrelay-attempts".into(), AMQPValue::LongLongInt(3));
    headers.insert("x-authrelay-phase".into(), text(phase.into()));
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
    park(broker, "p1", "post_call", "acme", "http_status", 30).await;
    park(broker, "p2", "post_call", "globex", "http_status", 30).await;
    park(broker, "p3", "post_call", "acme", "token_request_failed", 1).await;
    park(broker, "p4", "pre_call", "acme", "http_status", 0).await;
    park(broker, "p5", "post_call", "acme", "http_status", 0).await;
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
        let broker = TestBroker::new(&prefix()).await;
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
    let broker = TestBroker::new(&prefix()).await;
    parked_fixture(&broker).await;
    let report =
        run(&broker, ReplayRequest { workspace: Some("acme".into()), dry_run: true, ..Default::default() }).await;
    assert_eq!(report.job_ids, ["p1", "p3", "p4", "p5"]);
    assert_eq!(broker.message_count(&broker.names.phase_queue(Phase::PostCall)).await, 0);
    assert_eq!(ids(&broker.drain(&broker.names.failed_queue()).await), ["p1", "p2", "p3", "p4", "p5"]);
}

#[tokio::test]
async fn a_during_call_job_whose_call_is_over_is_replayed_only_when_asked() {
    let broker = TestBroker::new(&prefix()).await;
    park(&broker, "live", "during_call", "acme", "http_status", 0).await;
    park(&broker, "over", "during_call", "acme", "http_status", 60).await;
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
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_RETRY_JITTER", "0");
    let mut broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let app = spawn_app_with(env, Roles::ALL).await;
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
    let job = json!({"job_id": "hook-1", "workspace_id": "acme", "phase": "post_call", "action_id": "summary",
        "auth_profile_id": id, "request": {"method": "POST", "url": format!("{}/hook", target.uri()), "body": {"ok": true}}});
    broker.publish_job(&job).await;
    let first = broker.next_result(Duration::from_secs(15)).await;
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, report) = app.post("/v1/replay", json!({"job_id": "hook-1"})).await;
        if report["moved"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job was never parked: {report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = broker.next_result(Duration::from_secs(15)).await;
    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(second["auth_profile_version"], 2);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"authrelay_jobs_replayed_total{phase="post_call"} 1"#), "{metrics}");
    let _: Value = second;
    app.stop().await;
}
