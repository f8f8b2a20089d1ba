//! Circuit breaking per destination origin (contract §9), end to end: a
//! target that answers 503 or refuses connections opens its circuit after
//! `AUTHRELAY_CIRCUIT_FAILURES` failing attempts in a row; then live jobs fail
//! `circuit_open` at once without a request, post-call jobs wait (no attempt
//! spent) and succeed after one probe once the target is back; a 4xx never
//! opens it and a success resets the run. Targets are servers of the test's
//! own on 127.0.0.1; the settings are small so that it runs in seconds.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::targets::{closed_addr, serve};
use authrelay_testkit::{JobExt as _, TestApp, TestEnv, eventually, ids_of, job};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::WAIT;

/// A target that answers every request with the status of the moment (after
/// a delay), and records when each request arrived.
#[derive(Clone, Default)]
struct Switchable {
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Switchable {
    async fn start(status: u16) -> (Self, String) {
        let target = Self::default();
        target.answer(status);
        let router = axum::Router::new().fallback(respond).with_state(target.clone());
        let addr = serve(router).await;
        (target, format!("http://{addr}"))
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

async fn respond(State(target): State<Switchable>) -> StatusCode {
    target.arrivals.lock().unwrap().push(Instant::now());
    tokio::time::sleep(Duration::from_millis(target.delay_ms.load(Ordering::SeqCst))).await;
    StatusCode::from_u16(target.status.load(Ordering::SeqCst)).unwrap()
}

/// The worker with circuits that open after `failures` failing attempts for `open_for`.
async fn worker(failures: u32, open_for: &str, max_open: &str) -> TestApp {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_CIRCUIT_FAILURES", failures.to_string())
        .set("AUTHRELAY_CIRCUIT_OPEN_FOR", open_for)
        .set("AUTHRELAY_CIRCUIT_MAX_OPEN", max_open);
    TestApp::start(env, Roles::ALL).await
}

/// Publishes one job (a single attempt) and waits for its result.
async fn run(h: &TestApp, id: &str, phase: Phase, url: &str) -> (Value, Duration) {
    let published = Instant::now();
    h.broker.publish_job(&job(id, phase).to(url).max_attempts(1)).await;
    h.results.of(id, published, WAIT).await
}

fn assert_circuit_open(result: &Value, origin: &str) {
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "circuit_open", "{result}");
    assert_eq!(result["error"]["retryable"], false, "{result}");
    assert_eq!(result["attempts"], 0, "no attempt was made: {result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains(origin), "the message names the origin {origin}: {message}");
    assert!(!message.contains("/private-path") && !message.contains("key="), "no path or query: {message}");
}

#[tokio::test]
async fn after_repeated_503s_during_call_jobs_fail_circuit_open_at_once_and_nothing_reaches_the_target() {
    let h = worker(3, "60s", "5m").await;
    let (target, origin) = Switchable::start(503).await;
    let url = format!("{origin}/private-path?key=secret");

    for i in 0..3 {
        let (result, _) = run(&h, &format!("opening-{i}"), Phase::DuringCall, &url).await;
        assert_eq!(result["error"]["kind"], "http_status", "{result}");
    }
    let mut slowest = Duration::ZERO;
    for (i, phase) in [Phase::DuringCall, Phase::PreCall, Phase::DuringCall, Phase::PreCall].into_iter().enumerate() {
        let (result, after) = run(&h, &format!("refused-{i}"), phase, &url).await;
        assert_circuit_open(&result, &origin);
        slowest = slowest.max(after);
    }

    // A post-call job waits for the circuit, unless its deadline comes before the probe may go.
    let published = Instant::now();
    let hurried = job("post-call-hurried", Phase::PostCall).to(&url).deadline_in(Duration::from_secs(3));
    h.broker.publish_job(&hurried).await;
    h.broker.publish_job(&job("post-call-patient", Phase::PostCall).to(&url)).await;
    let (hurried, _) = h.results.of("post-call-hurried", published, WAIT).await;
    assert_circuit_open(&hurried, &origin);
    let deferred = r#"authrelay_jobs_deferred_total{phase="post_call",reason="circuit_open"}"#;
    h.metric_reaches(deferred, 1.0, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let patient = h.results.results().into_iter().find(|r| r["job_id"] == "post-call-patient");
    assert!(patient.is_none(), "a post-call job with time to wait is not failed: {patient:?}");

    println!("circuit open: live jobs answered within {slowest:?}; the target got {} requests", target.requests());
    assert_eq!(target.requests(), 3, "no request reaches an open circuit's origin");
    assert!(slowest < Duration::from_secs(1), "failing at once took {slowest:?}");
    assert_eq!(h.metric("authrelay_circuits_open").await, 1.0);
    assert_eq!(h.metric(r#"authrelay_circuit_transitions_total{to="open"}"#).await, 1.0);
    assert_eq!(h.metric(r#"authrelay_circuit_transitions_total{to="half_open"}"#).await, 0.0);
    h.stop().await;
}

#[tokio::test]
async fn a_destination_refusing_connections_opens_its_circuit_and_another_origin_is_not_affected() {
    let h = worker(2, "60s", "5m").await;
    let refusing = format!("http://{}", closed_addr());
    let (healthy, healthy_origin) = Switchable::start(200).await;

    for i in 0..2 {
        let (result, _) = run(&h, &format!("refused-{i}"), Phase::DuringCall, &format!("{refusing}/x")).await;
        assert_eq!(result["error"]["kind"], "connect", "{result}");
    }
    let (open, _) = run(&h, "open", Phase::DuringCall, &format!("{refusing}/x")).await;
    let (other, _) = run(&h, "other", Phase::DuringCall, &format!("{healthy_origin}/x")).await;

    assert_circuit_open(&open, &refusing);
    assert_eq!(other["outcome"], "succeeded", "{other}");
    assert_eq!(healthy.requests(), 1);
    assert_eq!(h.metric("authrelay_circuits_open").await, 1.0);
    h.stop().await;
}

#[tokio::test]
async fn post_call_jobs_wait_for_an_open_circuit_without_spending_attempts_and_succeed_after_one_probe() {
    let h = worker(2, "1s", "2s").await;
    let (target, origin) = Switchable::start(503).await;
    let url = format!("{origin}/webhook");
    for i in 0..2 {
        let (result, _) = run(&h, &format!("opening-{i}"), Phase::PostCall, &url).await;
        assert_eq!(result["error"]["kind"], "http_status", "{result}");
    }
    // The target recovers; its answers take a while, so a second request
    // during the probe would show.
    target.answer(200);
    target.delay_ms.store(300, Ordering::SeqCst);
    let opened_at = Instant::now();
    let waiting: Vec<Value> =
        (0..5).map(|i| job(&format!("waiting-{i}"), Phase::PostCall).to(&url).max_attempts(1)).collect();

    h.broker.publish_all(&waiting).await;

    let deferred = r#"authrelay_jobs_deferred_total{phase="post_call",reason="circuit_open"}"#;
    h.metric_reaches(deferred, 5.0, WAIT).await;
    assert_eq!(target.requests(), 2, "nothing is sent while the circuit is open");
    let tally = h.results.all_answered(&ids_of(&waiting), WAIT).await;
    let results: Vec<Value> =
        h.results.results().into_iter().filter(|r| r["job_id"].as_str().unwrap().starts_with("waiting-")).collect();
    let arrivals = target.arrivals();
    let (probe, next) = (arrivals[2], arrivals[3]);
    println!(
        "post-call behind an open circuit: {tally}; probe {:?} after opening, next request {:?} after the probe",
        probe - opened_at,
        next - probe
    );
    for result in &results {
        assert_eq!(result["outcome"], "succeeded", "{result}");
        assert_eq!(result["attempts"], 1, "waiting spent no attempt (max_attempts is 1): {result}");
    }
    assert_eq!(target.requests(), 2 + 5, "one request per job, none lost to the open circuit");
    assert!(probe - opened_at >= Duration::from_millis(700), "the probe went {:?} after opening", probe - opened_at);
    assert!(next - probe >= Duration::from_millis(300), "a second request went while the probe was out");
    assert_eq!(h.metric(r#"authrelay_circuit_transitions_total{to="half_open"}"#).await, 1.0);
    assert_eq!(h.metric(r#"authrelay_circuit_transitions_total{to="closed"}"#).await, 1.0);
    assert_eq!(h.metric("authrelay_circuits_open").await, 0.0);
    assert_eq!(h.metric(r#"authrelay_jobs_total{outcome="failed",phase="post_call"}"#).await, 2.0);
    h.stop().await;
}

#[tokio::test]
async fn a_4xx_never_opens_the_circuit_and_a_success_resets_the_run_of_failures() {
    let h = worker(3, "60s", "5m").await;
    let (target, origin) = Switchable::start(404).await;
    let url = format!("{origin}/x");
    let mut n = 0;
    let mut send = async |status: u16| {
        target.answer(status);
        n += 1;
        run(&h, &format!("job-{n}"), Phase::DuringCall, &url).await.0
    };

    for _ in 0..6 {
        assert_eq!(send(404).await["error"]["kind"], "http_status");
    }
    for status in [503, 503, 200, 503, 503] {
        let result = send(status).await;
        assert_ne!(result["error"]["kind"], "circuit_open", "{result}");
    }
    let third_in_a_row = send(503).await;
    let refused = send(200).await;

    assert_eq!(third_in_a_row["error"]["kind"], "http_status", "{third_in_a_row}");
    assert_circuit_open(&refused, &origin);
    assert_eq!(target.requests(), 12);
    assert_eq!(h.metric(r#"authrelay_circuit_transitions_total{to="open"}"#).await, 1.0);
    eventually(WAIT, "the open circuit is on /metrics", async || {
        (h.metric("authrelay_circuits_open").await == 1.0).then_some(())
    })
    .await;
    h.stop().await;
}
