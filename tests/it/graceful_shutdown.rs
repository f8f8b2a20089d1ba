//! Graceful shutdown of the app in process: in-flight jobs finish within the
//! grace period, jobs that never started go back to their queue, and so do
//! unfinished ones once the grace is over. None is lost or reported twice.

use std::collections::BTreeSet;
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::{JobExt as _, TestApp, TestEnv, eventually, job};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

/// What a shutdown left behind.
struct AfterShutdown {
    /// Jobs that reached the target before or during the shutdown.
    started: usize,
    /// Job ids with a result.
    reported: BTreeSet<String>,
    /// Job ids back on (or still on) the post-call queue.
    waiting: BTreeSet<String>,
    /// From cancelling the app to its task ending.
    took: Duration,
}

/// Publishes 20 post-call jobs to a target that answers after `target_delay`,
/// cancels the app as soon as the first requests arrive, waits for it to end,
/// and checks that every job either got exactly one result or is on its queue.
async fn shut_down_under_load(mut env: TestEnv, target_delay: Duration, grace: Duration) -> AfterShutdown {
    env.set("AUTHRELAY_SHUTDOWN_GRACE", format!("{}ms", grace.as_millis()));
    let mut h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/slow")).respond_with(ResponseTemplate::new(200).set_delay(target_delay)).mount(&target).await;
    let ids: BTreeSet<String> = (0..20).map(|i| format!("drain-{i}")).collect();
    for id in &ids {
        h.broker.publish_job(&job(id, Phase::PostCall).to(&format!("{}/slow", target.uri()))).await;
    }
    eventually(WAIT, "the target receives a request", async || {
        (!target.received_requests().await.unwrap().is_empty()).then_some(())
    })
    .await;

    h.shutdown.cancel();
    let stopping = tokio::time::Instant::now();
    let ended = tokio::time::timeout(grace + Duration::from_secs(5), &mut h.handle).await;
    let took = stopping.elapsed();

    let ended = ended.expect("the app did not stop");
    assert!(ended.expect("the app task did not panic").is_ok(), "the app ended with an error");
    let started = target.received_requests().await.unwrap().len();
    // The app has ended: every result it published is on its way to the tap, ahead of the flush.
    h.results.flush(WAIT).await;
    let results = h.results.results();
    let reported: BTreeSet<String> = results.iter().map(|r| r["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reported.len(), results.len(), "a job was reported twice: {results:?}");
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{results:?}");
    let waiting: BTreeSet<String> = h
        .broker
        .drain(&h.broker.names.phase_queue(Phase::PostCall))
        .await
        .iter()
        .map(|m| m.json()["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        reported.is_disjoint(&waiting),
        "reported and still queued: {:?}",
        reported.intersection(&waiting).collect::<Vec<_>>()
    );
    let accounted: BTreeSet<String> = reported.union(&waiting).cloned().collect();
    assert_eq!(accounted, ids, "jobs lost: {:?}", ids.difference(&accounted).collect::<Vec<_>>());
    AfterShutdown { started, reported, waiting, took }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_jobs_within_the_grace_period_and_loses_none() {
    let grace = Duration::from_secs(10);

    let after = shut_down_under_load(TestEnv::new(), Duration::from_secs(1), grace).await;

    assert!(after.took < grace, "stopping took {:?}", after.took);
    assert_eq!(after.reported.len(), after.started, "every job that reached the target reported its result");
}

#[tokio::test]
async fn shutdown_returns_jobs_that_never_started_to_their_queue() {
    let mut env = TestEnv::new();
    // 4 run; the others wait in the prefetch buffer when the shutdown comes.
    env.set("AUTHRELAY_POST_CALL_CONCURRENCY", "4");

    let after = shut_down_under_load(env, Duration::from_secs(1), Duration::from_secs(10)).await;

    assert!(after.started <= 4, "{} jobs ran at once", after.started);
    assert_eq!(after.reported.len(), after.started, "the running jobs finished and reported");
    assert!(after.waiting.len() >= 16, "only {} jobs back on the queue", after.waiting.len());
}

#[tokio::test]
async fn shutdown_past_the_grace_period_returns_unfinished_jobs_to_their_queue() {
    let grace = Duration::from_millis(500);

    let after = shut_down_under_load(TestEnv::new(), Duration::from_secs(5), grace).await;

    assert!(after.took < grace + Duration::from_millis(1500), "stopping took {:?} with a {grace:?} grace", after.took);
    assert!(after.reported.is_empty(), "no job could finish: {:?}", after.reported);
    assert_eq!(after.waiting.len(), 20);
}
