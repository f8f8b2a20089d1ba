//! The worker process killed or stopped under load: the real `authrelay run`
//! binary as a child process, with jobs published to the real RabbitMQ and a
//! slow target on 127.0.0.1. The promise: every job gets a result
//! (duplicates allowed, counted), none is lost, nothing stays unacked.
//!
//! These tests take turns ([`timed_turn`]), so their timings do not disturb
//! one another. Each prints its figures
//! (`cargo test --test it process_faults:: -- --nocapture`).

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::targets::Target;
use authrelay_testkit::{JobExt as _, TestBroker, TestEnv, ids_of, job, timed_turn};
use serde_json::Value;
use tokio::time::Instant;

use crate::{WAIT, authrelay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_batch_loses_none_of_1000_jobs() {
    let _turn = timed_turn().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Target::start(Duration::from_millis(30)).await;
    let jobs: Vec<Value> = (0..1000).map(|i| job(&format!("kill-{i:04}"), Phase::PostCall).to(&target.url())).collect();
    let ids = ids_of(&jobs);
    let settings = [("AUTHRELAY_POST_CALL_CONCURRENCY", "16".to_owned())];
    broker.publish_all(&jobs).await;

    let mut first = authrelay(&env).envs(&settings).serve(&["run"]).await;
    tap.count_reaches(250, Duration::from_secs(30)).await;
    first.kill();
    let at_kill = tap.len();
    let mut second = authrelay(&env).envs(&settings).serve(&["run"]).await;
    let tally = tap.all_answered(&ids, Duration::from_secs(60)).await;
    second.terminate();
    let status = second.exit_within(Duration::from_secs(30)).await;

    println!("kill -9 after {at_kill} results: {tally}; repeated target requests {}", target.repeated_requests());
    assert!(at_kill < ids.len(), "the kill came after the batch was done");
    assert_eq!(tally.lost, 0, "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&tally.results), "{tally}");
    assert!(status.success(), "{status}");
    broker.assert_all_queues_empty().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_jobs_in_flight_finishes_them_all_and_exits_0_within_the_grace() {
    let _turn = timed_turn().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Target::start(Duration::from_secs(2)).await;
    let grace = Duration::from_secs(10);
    let settings = [
        ("AUTHRELAY_POST_CALL_CONCURRENCY", "200".to_owned()),
        ("AUTHRELAY_POST_CALL_PREFETCH", "200".to_owned()),
        ("AUTHRELAY_SHUTDOWN_GRACE", "10s".to_owned()),
    ];
    let mut process = authrelay(&env).envs(&settings).serve(&["run"]).await;
    let jobs: Vec<Value> = (0..200).map(|i| job(&format!("term-{i:03}"), Phase::PostCall).to(&target.url())).collect();
    let ids = ids_of(&jobs);
    broker.publish_all(&jobs).await;
    target.in_flight_reaches(200, WAIT).await;

    process.terminate();
    let stopping = Instant::now();
    let status = process.exit_within(grace + Duration::from_secs(5)).await;
    let took = stopping.elapsed();

    let tally = tap.all_answered(&ids, Duration::from_secs(5)).await;
    println!("SIGTERM with 200 in flight: {status} after {took:?}; {tally}");
    assert_eq!(status.code(), Some(0), "{}", process.log_tail());
    assert!(took < grace, "stopping took {took:?} with a {grace:?} grace");
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&200), "{tally}");
    broker.assert_all_queues_empty().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_requeues_unfinished_jobs_which_a_restart_completes() {
    let _turn = timed_turn().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Target::start(Duration::from_secs(5)).await;
    let grace = Duration::from_secs(1);
    let settings = [
        ("AUTHRELAY_POST_CALL_CONCURRENCY", "50".to_owned()),
        ("AUTHRELAY_POST_CALL_PREFETCH", "50".to_owned()),
        ("AUTHRELAY_SHUTDOWN_GRACE", "1s".to_owned()),
    ];
    let mut process = authrelay(&env).envs(&settings).serve(&["run"]).await;
    let jobs: Vec<Value> = (0..50).map(|i| job(&format!("late-{i:02}"), Phase::PostCall).to(&target.url())).collect();
    let ids = ids_of(&jobs);
    broker.publish_all(&jobs).await;
    target.in_flight_reaches(50, WAIT).await;

    process.terminate();
    let stopping = Instant::now();
    let status = process.exit_within(grace + Duration::from_secs(5)).await;
    let took = stopping.elapsed();
    let requeued = broker.message_count(&broker.names.phase_queue(Phase::PostCall)).await;
    let results_before_restart = tap.len();
    target.set_delay(Duration::from_millis(10));
    let restarted = authrelay(&env).envs(&settings).serve(&["run"]).await;
    let tally = tap.all_answered(&ids, WAIT).await;
    drop(restarted);

    println!("SIGTERM past a 1 s grace: {status} after {took:?}; {requeued} requeued; after a restart: {tally}");
    assert_eq!(status.code(), Some(0), "{}", process.log_tail());
    assert!(took < grace + Duration::from_secs(2), "stopping took {took:?} with a {grace:?} grace");
    assert_eq!((results_before_restart, requeued), (0, 50), "every unfinished job went back to its queue");
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
}
