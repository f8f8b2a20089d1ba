//! Targets that misbehave at the HTTP level — dripping, silent, hanging up,
//! endless bodies or headers — end each job in the right outcome within its
//! deadline, and the real process's memory stays flat against them. Every
//! target is a server of the test's own on 127.0.0.1; each test prints its
//! figures (`cargo test --test it misbehaving_targets:: -- --nocapture`).

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{BadTargets, endless_headers_server, hang_up_server, silent_server};
use authrelay_testkit::{JobExt as _, TestApp, TestBroker, TestEnv, ids_of, job, timed_turn};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{WAIT, authrelay};

/// The result is a failure of `kind` after `attempts` attempts.
pub(crate) fn assert_failed(result: &Value, kind: &str, attempts: u64) {
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], kind, "{result}");
    assert_eq!(result["attempts"], attempts, "{result}");
}

#[tokio::test]
async fn a_target_that_drips_its_body_is_cut_at_the_deadline_or_the_attempt_timeout() {
    let h = spawn_worker().await;
    let targets = BadTargets::start().await;
    let by_deadline =
        job("drip-deadline", Phase::DuringCall).to(&targets.url("/drip")).deadline_in(Duration::from_millis(1500));
    let mut by_timeout = job("drip-timeout", Phase::DuringCall).to(&targets.url("/drip"));
    by_timeout["request"]["timeout_ms"] = json!(300);
    by_timeout["max_attempts"] = json!(2);
    let published = Instant::now();

    h.broker.publish_job(&by_deadline).await;
    h.broker.publish_job(&by_timeout).await;

    let (cut, cut_after) = h.results.of("drip-deadline", published, WAIT).await;
    let (timed_out, timed_out_after) = h.results.of("drip-timeout", published, WAIT).await;
    println!("dripping body: deadline_exceeded after {cut_after:?}, timeout ×2 after {timed_out_after:?}");
    assert_failed(&cut, "deadline_exceeded", 1);
    assert!(cut_after < Duration::from_millis(1500), "the result came {cut_after:?} after publishing (deadline 1.5 s)");
    assert_failed(&timed_out, "timeout", 2);
    assert!(timed_out_after < Duration::from_secs(2), "{timed_out_after:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_target_that_never_answers_or_hangs_up_ends_the_job_within_its_deadline() {
    let h = spawn_worker().await;
    let silent = silent_server().await;
    let hangs_up = hang_up_server().await;
    let by_deadline = job("silent-deadline", Phase::DuringCall)
        .to(&format!("http://{silent}/x"))
        .deadline_in(Duration::from_millis(1500));
    let mut by_timeout = job("silent-timeout", Phase::DuringCall).to(&format!("http://{silent}/x"));
    by_timeout["request"]["timeout_ms"] = json!(300);
    let hang_up = job("hang-up", Phase::DuringCall).to(&format!("http://{hangs_up}/x"));
    let published = Instant::now();

    for j in [&by_deadline, &by_timeout, &hang_up] {
        h.broker.publish_job(j).await;
    }

    let (cut, cut_after) = h.results.of("silent-deadline", published, WAIT).await;
    let (timed_out, timed_out_after) = h.results.of("silent-timeout", published, WAIT).await;
    let (hung_up, hung_up_after) = h.results.of("hang-up", published, WAIT).await;
    println!(
        "silent target: deadline_exceeded after {cut_after:?}, timeout ×2 after {timed_out_after:?}; hang-up after {hung_up_after:?}"
    );
    assert_failed(&cut, "deadline_exceeded", 1);
    assert!(cut_after < Duration::from_millis(1500), "{cut_after:?}");
    assert_failed(&timed_out, "timeout", 2);
    assert!(timed_out_after < Duration::from_secs(2), "{timed_out_after:?}");
    assert_failed(&hung_up, "connect", 2);
    assert!(hung_up_after < Duration::from_secs(2), "{hung_up_after:?}");
    h.stop().await;
}

#[tokio::test]
async fn an_endless_body_is_truncated_at_the_cap_and_the_job_ends() {
    let mut env = TestEnv::new();
    let cap = 64 * 1024;
    env.set("AUTHRELAY_MAX_RESPONSE_BYTES", cap.to_string());
    let h = TestApp::start(env, Roles::ALL).await;
    let targets = BadTargets::start().await;
    let published = Instant::now();

    h.broker.publish_job(&job("endless-200", Phase::DuringCall).to(&targets.url("/endless"))).await;
    let (ok, ok_after) = h.results.of("endless-200", published, WAIT).await;
    h.broker.publish_job(&job("endless-503", Phase::DuringCall).to(&targets.url("/endless-503"))).await;
    let (failed, failed_after) = h.results.of("endless-503", published, WAIT).await;
    let sent = targets.settled_bytes(WAIT).await;

    println!(
        "endless bodies: 200 ended after {ok_after:?}, 503 ×2 after {failed_after:?}; the target got {sent} bytes out"
    );
    assert_eq!(ok["outcome"], "succeeded", "{ok:.300}");
    for result in [&ok, &failed] {
        assert_eq!(result["response"]["body_truncated"], true, "{result:.300}");
        let body = result["response"]["body"].as_str().expect("a cut body is text");
        assert!(!body.is_empty() && body.len() <= cap, "a body of {} bytes", body.len());
    }
    assert_failed(&failed, "http_status", 2);
    assert!(ok_after < Duration::from_secs(3), "{ok_after:?}");
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes were read from endless bodies");
    h.stop().await;
}

#[tokio::test]
async fn endless_response_headers_end_the_attempt_long_before_the_deadline() {
    let h = spawn_worker().await;
    let server = endless_headers_server().await;
    let published = Instant::now();

    h.broker.publish_job(&job("endless-headers", Phase::DuringCall).to(&format!("http://{server}/x"))).await;

    let (result, after) = h.results.of("endless-headers", published, WAIT).await;
    println!("endless headers: {} after {after:?}", result["error"]);
    assert_eq!(result["outcome"], "failed", "{result}");
    assert!(result["error"]["retryable"].as_bool().is_some(), "{result}");
    assert!(after < Duration::from_secs(4), "{after:?} (deadline 5 s)");
    h.stop().await;
}

/// Answers the token request with a fresh token each time, and counts requests.
// ---------------------------------------------------------------------------
// Memory under misbehaving targets, in the real process
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_across_batches_against_endless_and_dripping_targets() {
    let _turn = timed_turn().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let targets = BadTargets::start().await;
    let settings = [("AUTHRELAY_MAX_RESPONSE_BYTES", (256 * 1024).to_string())];
    let process = authrelay(&env).envs(&settings).serve(&["run"]).await;
    let batch = |n: usize| -> Vec<Value> {
        (0..100)
            .map(|i| {
                let (kind, url) =
                    if i % 4 == 0 { ("drip", targets.url("/drip")) } else { ("endless", targets.url("/endless")) };
                let mut j = job(&format!("mem{n}-{kind}-{i:03}"), Phase::PostCall).to(&url);
                j["request"]["timeout_ms"] = json!(500);
                j["max_attempts"] = json!(1);
                j
            })
            .collect()
    };
    let started = process.rss_kib();

    let first = batch(1);
    broker.publish_all(&first).await;
    let first_tally = tap.all_answered(&ids_of(&first), Duration::from_secs(60)).await;
    let after_first = process.rss_kib();
    let second = batch(2);
    broker.publish_all(&second).await;
    let second_tally = tap.all_answered(&ids_of(&second), Duration::from_secs(60)).await;
    let after_second = process.rss_kib();
    let streamed = targets.settled_bytes(WAIT).await;

    println!(
        "memory: {started} KiB at start, {after_first} KiB after 100 jobs, {after_second} KiB after 200 ({} MiB of endless bodies streamed); {first_tally}; {second_tally}",
        streamed / (1024 * 1024)
    );
    assert_eq!((first_tally.lost, second_tally.lost), (0, 0));
    assert!(after_second < started + 200 * 1024, "grew from {started} KiB to {after_second} KiB");
    assert!(
        after_second < after_first + 64 * 1024,
        "a second batch grew it from {after_first} KiB to {after_second} KiB"
    );
}
