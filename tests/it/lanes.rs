//! Which lanes a process runs (`--lanes`, `AUTHRELAY_LANES`), and the post-call
//! lane giving way while live jobs run (live calls first, contract §9).

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::targets::Target;
use authrelay_testkit::{JobExt as _, TestApp, TestBroker, TestEnv, eventually, job};

use crate::{WAIT, authrelay};

/// Post-call requests take this long at their target, so that a backlog lasts.
const POST_CALL_TIME: Duration = Duration::from_millis(40);

#[tokio::test]
async fn a_process_run_with_lanes_during_call_runs_during_call_jobs_and_leaves_post_call_jobs_queued() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let results = broker.tap().await;
    let (post, live) = (Target::start(Duration::ZERO).await, Target::start(Duration::ZERO).await);
    let process = authrelay(&env).serve(&["run", "--roles", "worker", "--lanes", "during_call"]).await;

    broker.publish_job(&job("later", Phase::PostCall).to(&post.url())).await;
    broker.publish_job(&job("live", Phase::DuringCall).to(&live.url())).await;
    let result = results.next(WAIT).await;
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("live"), Some("succeeded")), "{result}");
    results.no_more(Duration::from_secs(2)).await;
    assert_eq!(post.most_in_flight(), 0, "only the during-call job reached its target");
    let post_call = broker.names.phase_queue(Phase::PostCall);
    assert_eq!(broker.message_count(&post_call).await, 1, "the post-call job waits in its queue");
    assert_eq!(process.metric(r#"authrelay_lane_concurrency{phase="during_call"}"#).await, 64.0);
    assert_eq!(process.metric(r#"authrelay_lane_concurrency{phase="post_call"}"#).await, 0.0);
    let log = process.stop(Duration::from_secs(30));
    assert!(!log.contains("panicked"), "{log}");

    // A process with every lane (AUTHRELAY_LANES names them all) takes the job that waited.
    let everything = authrelay(&env)
        .env("AUTHRELAY_LANES", "pre_call,during_call,post_call")
        .serve(&["run", "--roles", "worker"])
        .await;
    let result = results.next(WAIT).await;
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("later"), Some("succeeded")), "{result}");
    everything.stop(Duration::from_secs(30));
}

#[tokio::test]
async fn an_unknown_or_empty_lane_list_ends_the_process_with_one_line_naming_the_value() {
    let env = TestEnv::new();
    let bin = authrelay(&env);
    let out = bin.output(&["run", "--lanes", "during_call,postcall"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("`postcall`") && first.contains("--lanes"), "{stderr}");

    let out = bin.clone().env("AUTHRELAY_LANES", " , ").output(&["run"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTHRELAY_LANES") && stderr.contains("names no phase"), "{stderr}");
}

#[tokio::test]
async fn while_live_jobs_run_the_post_call_lane_shrinks_to_its_floor_and_grows_back_after() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_POST_CALL_CONCURRENCY", "8")
        .set("AUTHRELAY_LIVE_FIRST_FLOOR", "2")
        .set("AUTHRELAY_LIVE_FIRST_GROW_EVERY", "10ms");
    let app = TestApp::start(env, Roles { worker: true, api: false }).await;
    app.ready_within(200, WAIT).await;

    // Undisturbed, the post-call lane runs all 8 at once.
    let batch = |tag: &str, target: &Target| -> Vec<_> {
        (0..32).map(|i| job(&format!("{tag}-{i}"), Phase::PostCall).to(&target.url())).collect()
    };
    let free = Target::start(POST_CALL_TIME).await;
    app.broker.publish_all(&batch("free", &free)).await;
    app.results.take(32, WAIT).await;
    assert_eq!(free.most_in_flight(), 8);

    // Two during-call jobs held at their target until released: each halves the lane
    // (8 → 4 → 2, the floor), and meanwhile no more than that run at once.
    let live = Target::start(Duration::ZERO).await;
    live.hold();
    for id in ["live-1", "live-2"] {
        app.broker.publish_job(&job(id, Phase::DuringCall).to(&live.url())).await;
    }
    live.in_flight_reaches(2, WAIT).await;
    assert_eq!(app.metric(r#"authrelay_lane_concurrency{phase="post_call"}"#).await, 2.0);
    let throttled_target = Target::start(POST_CALL_TIME).await;
    app.broker.publish_all(&batch("throttled", &throttled_target)).await;
    let throttled = app.results.take(32, WAIT).await;
    assert_eq!(live.in_flight(), 2, "the batch ran while the live jobs were held");
    assert!(throttled.iter().all(|r| r["outcome"] == "succeeded"), "the backlog still drains");
    let most = throttled_target.most_in_flight();
    assert!((1..=2).contains(&most), "post-call requests at once while live jobs ran: {most}");

    // Once the live jobs are done, the lane grows back to its full concurrency.
    live.release();
    for live in app.results.take(2, WAIT).await {
        assert_eq!(live["outcome"], "succeeded", "{live}");
    }
    app.metric_reaches(r#"authrelay_lane_concurrency{phase="post_call"}"#, 8.0, WAIT).await;
    app.stop().await;
}

/// The prefetch of each consumer on `queue`, as the broker reports it (`None`
/// when `rabbitmqctl`, which comes with the broker, cannot tell now).
async fn consumer_prefetches(queue: &str) -> Option<Vec<u16>> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_consumers", "--quiet", "--no-table-headers", "queue_name", "prefetch_count"])
        .output()
        .await
        .ok()
        .filter(|out| out.status.success())?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| *name == queue)
        .map(|(_, prefetch)| prefetch.trim().parse().ok())
        .collect()
}

/// Waits until the broker lists exactly these prefetches for `queue`'s consumers.
async fn consumers_reach(queue: &str, prefetches: &[u16]) {
    eventually(WAIT, &format!("{queue}'s consumers at prefetch {prefetches:?}"), async || {
        (consumer_prefetches(queue).await.as_deref() == Some(prefetches)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn while_live_jobs_run_the_post_call_consumer_reaches_less_deep_into_its_queue_and_loses_nothing() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_POST_CALL_PREFETCH", "20")
        .set("AUTHRELAY_POST_CALL_CONCURRENCY", "2")
        .set("AUTHRELAY_LIVE_FIRST_FLOOR", "1")
        .set("AUTHRELAY_LIVE_FIRST_PREFETCH", "4");
    let app = TestApp::start(env, Roles { worker: true, api: false }).await;
    app.ready_within(200, WAIT).await;
    let post_call = app.broker.names.phase_queue(Phase::PostCall);
    let prefetch_gauge = r#"authrelay_lane_prefetch{phase="post_call"}"#;

    // A backlog that takes seconds to drain (40 ms a request, at most 2 at once).
    let post = Target::start(POST_CALL_TIME).await;
    let backlog: Vec<_> = (0..400).map(|i| job(&format!("b-{i}"), Phase::PostCall).to(&post.url())).collect();
    app.broker.publish_all(&backlog).await;
    consumers_reach(&post_call, &[20]).await;
    assert_eq!(app.metric(prefetch_gauge).await, 20.0, "undisturbed: the lane's own prefetch");

    // A live job held at its target: the broker now sees one consumer, at the shallow prefetch.
    let live = Target::start(Duration::ZERO).await;
    live.hold();
    app.broker.publish_job(&job("live", Phase::DuringCall).to(&live.url())).await;
    consumers_reach(&post_call, &[4]).await;
    assert_eq!(app.metric(prefetch_gauge).await, 4.0);
    assert_eq!(live.in_flight(), 1, "the live job is still held");

    // Once it is done, the lane goes back to its own prefetch while the backlog still drains
    // (a lane changes its prefetch only as it takes jobs).
    live.release();
    consumers_reach(&post_call, &[20]).await;
    assert_eq!(app.metric(prefetch_gauge).await, 20.0);

    // Every job ran exactly once across the re-subscriptions.
    let results = app.results.take(401, Duration::from_secs(60)).await;
    let ids: std::collections::BTreeSet<_> = results.iter().map(|r| r["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 401, "a job's result came twice");
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"));
    app.results.no_more(Duration::from_secs(1)).await;
    assert_eq!(post.repeated_requests(), 0, "each post-call job reached its target once");
    app.stop().await;
}
