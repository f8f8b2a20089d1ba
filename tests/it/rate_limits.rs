//! A profile's limits, from the target's side (contract §9): the rate the
//! target sees with 1, 2 and 4 worker processes, concurrency across
//! processes, a 429's pause for every job of the profile (in every process),
//! live jobs that get no turn before their deadline, and a post-call backlog
//! that waits in delay queues with its turns reserved.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::app::Admin;
use authrelay_testkit::targets::{Target, serve};
use authrelay_testkit::{JobExt as _, Process, TestBroker, TestEnv, eventually, ids_of, job, lazy};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{WAIT, authrelay};

/// A target that notes when each request arrived and, while told to, answers
/// 429 with `Retry-After`.
#[derive(Clone)]
struct Clocked {
    addr: SocketAddr,
    state: Arc<ClockedState>,
}

struct ClockedState {
    arrivals: Mutex<Vec<(Instant, String)>>,
    /// Answer the next this-many requests with 429 and this `Retry-After`.
    refuse: Mutex<(u32, u64)>,
}

impl Clocked {
    async fn start() -> Self {
        let state = Arc::new(ClockedState { arrivals: Mutex::default(), refuse: Mutex::new((0, 0)) });
        let answer = {
            let state = state.clone();
            move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let job = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    state.arrivals.lock().unwrap().push((Instant::now(), job));
                    let mut refuse = state.refuse.lock().unwrap();
                    if refuse.0 > 0 {
                        refuse.0 -= 1;
                        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", refuse.1.to_string())])
                            .into_response();
                    }
                    StatusCode::OK.into_response()
                }
            }
        };
        let router = axum::Router::new().fallback(answer);
        Self { addr: serve(router).await, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn refuse_next(&self, n: u32, retry_after_s: u64) {
        *self.state.refuse.lock().unwrap() = (n, retry_after_s);
    }

    fn arrivals(&self) -> Vec<(Instant, String)> {
        self.state.arrivals.lock().unwrap().clone()
    }

    /// Requests that arrived in `[from, from + window)`.
    fn count_between(&self, from: Instant, window: Duration) -> usize {
        self.arrivals().iter().filter(|(at, _)| *at >= from && *at < from + window).count()
    }

    /// The most requests that arrived within any `window`.
    fn densest(&self, window: Duration) -> usize {
        let at: Vec<Instant> = self.arrivals().iter().map(|(at, _)| *at).collect();
        at.iter().map(|start| at.iter().filter(|t| **t >= *start && **t < *start + window).count()).max().unwrap_or(0)
    }
}

/// An API process and `workers` worker processes on one environment; returns
/// once every worker counts the whole fleet.
async fn fleet(env: &TestEnv, workers: usize, extra: &[(&str, String)]) -> (Process, Vec<Process>) {
    let api = authrelay(env).serve(&["run", "--roles", "api"]).await;
    let mut processes = Vec::new();
    for _ in 0..workers {
        processes.push(authrelay(env).envs(extra).serve(&["run", "--roles", "worker"]).await);
    }
    for worker in &processes {
        let what = lazy(|| format!("a worker counts {workers} worker processes"));
        eventually(Duration::from_secs(20), what, async || {
            (worker.metric("authrelay_fleet_workers").await == workers as f64).then_some(())
        })
        .await;
    }
    (api, processes)
}

async fn limited_profile(api: &Admin, name: &str, limits: Value) -> String {
    api.create_profile(
        "acme",
        json!({"name": name, "type": "bearer", "config": {"token": "limited-token-0123456789"}, "limits": limits}),
    )
    .await
}

async fn stop_all(processes: impl IntoIterator<Item = Process>) {
    for mut process in processes {
        process.terminate();
        assert!(process.exit_within(WAIT).await.success());
    }
}

/// 20 requests per second for the fleet; pre-call jobs with a long deadline
/// wait in process for their turn. Over 10 s (after the first second) the
/// target sees 200 ± 10 %.
async fn the_rate_holds_for_a_fleet_of(workers: usize) {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Clocked::start().await;
    let (api, processes) = fleet(&env, workers, &[]).await;
    let id = limited_profile(&api, "CRM", json!({"rate_per_s": 20})).await;

    let jobs: Vec<Value> = (0..300)
        .map(|i| {
            job(&format!("r{workers}-{i:03}"), Phase::PreCall)
                .to(&target.url())
                .profile(&id)
                .deadline_in(Duration::from_secs(90))
        })
        .collect();
    broker.publish_all(&jobs).await;
    let tally = tap.all_answered(&ids_of(&jobs), Duration::from_secs(60)).await;
    assert_eq!(tally.outcomes.get("succeeded"), Some(&300), "{tally}");

    let first = target.arrivals().iter().map(|(at, _)| *at).min().unwrap();
    let seen = target.count_between(first + Duration::from_secs(1), Duration::from_secs(10));
    let busiest = target.densest(Duration::from_secs(1));
    println!("{workers} worker(s): {seen} requests in 10 s (limit 200), at most {busiest} in one second");
    assert!((180..=220).contains(&seen), "{workers} worker(s): {seen} requests in 10 s, not 200 ± 10 %");
    let throttled: f64 = {
        let mut sum = 0.0;
        for p in &processes {
            sum += p.metric(r#"authrelay_jobs_throttled_total{phase="pre_call"}"#).await;
        }
        sum
    };
    assert!(throttled > 0.0, "waiting jobs are counted as throttled");
    stop_all(processes.into_iter().chain([api])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_for_one_worker() {
    the_rate_holds_for_a_fleet_of(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_for_two_workers() {
    the_rate_holds_for_a_fleet_of(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_holds_for_four_workers() {
    the_rate_holds_for_a_fleet_of(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_two_workers() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Target::start(Duration::from_millis(150)).await;
    let (api, processes) = fleet(&env, 2, &[]).await;
    let id = limited_profile(&api, "Slow CRM", json!({"max_concurrency": 3})).await;
    let jobs: Vec<Value> =
        (0..30).map(|i| job(&format!("c-{i:02}"), Phase::PostCall).to(&target.url()).profile(&id)).collect();
    broker.publish_all(&jobs).await;
    let tally = tap.all_answered(&ids_of(&jobs), WAIT * 2).await;
    assert_eq!(tally.outcomes.get("succeeded"), Some(&30), "{tally}");
    println!("most requests in flight at once: {}", target.most_in_flight());
    assert!(target.most_in_flight() <= 3, "{} requests were in flight at once", target.most_in_flight());
    assert_eq!(target.most_in_flight(), 3, "the limit is used, not undershot");

    // Without limits the same jobs go wider: the limit is what held them.
    let open = api
        .create_profile("acme", json!({"name": "Open", "type": "bearer", "config": {"token": "open-token-0123456789"}}))
        .await;
    let jobs: Vec<Value> =
        (0..30).map(|i| job(&format!("o-{i:02}"), Phase::PostCall).to(&target.url()).profile(&open)).collect();
    broker.publish_all(&jobs).await;
    tap.all_answered(&ids_of(&jobs), WAIT).await;
    assert!(target.most_in_flight() > 3, "unlimited: {} at once", target.most_in_flight());
    stop_all(processes.into_iter().chain([api])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_every_job_of_the_profile_in_every_worker() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Clocked::start().await;
    let (api, processes) = fleet(&env, 2, &[]).await;
    let id = limited_profile(&api, "Busy CRM", Value::Null).await;
    let other = limited_profile(&api, "Other CRM", Value::Null).await;

    target.refuse_next(1, 5);
    let first = job("first", Phase::DuringCall).to(&target.url()).profile(&id).deadline_in(Duration::from_secs(15));
    broker.publish_job(&first).await;
    eventually(WAIT, "the first request is refused", async || (!target.arrivals().is_empty()).then_some(())).await;
    let refused_at = target.arrivals()[0].0;
    // The worker that got the 429 writes the pause at once; one beat later every worker has read it.
    let db = env.db.client().await;
    eventually(WAIT, "the pause is written for the fleet", async || {
        let rows = db.query("SELECT 1 FROM profile_pauses", &[]).await.unwrap();
        (!rows.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(authrelay::traffic::fleet::BEAT + Duration::from_millis(500)).await;
    let paused: Vec<Value> = (0..6)
        .map(|i| {
            job(&format!("paused-{i}"), Phase::DuringCall)
                .to(&target.url())
                .profile(&id)
                .deadline_in(Duration::from_secs(15))
        })
        .collect();
    let free = job("free", Phase::DuringCall).to(&target.url()).profile(&other);
    broker.publish_all(&paused).await;
    broker.publish_job(&free).await;
    let mut all = ids_of(&paused);
    all.insert("first".into());
    all.insert("free".into());
    let tally = tap.all_answered(&all, WAIT).await;
    assert_eq!(tally.outcomes.get("succeeded"), Some(&8), "{tally}");

    let arrivals = target.arrivals();
    let at = |job: &str| arrivals.iter().filter(|(_, j)| j == job).map(|(at, _)| *at - refused_at).collect::<Vec<_>>();
    assert!(at("free")[0] < Duration::from_secs(4), "another profile is not paused: {:?}", at("free"));
    for i in 0..6 {
        let when = at(&format!("paused-{i}"));
        assert!(when[0] >= Duration::from_millis(4900), "paused-{i} was sent {when:?} after the 429 (Retry-After: 5)");
    }
    let retried = at("first");
    assert!(retried.len() == 2 && retried[1] >= Duration::from_millis(4900), "{retried:?}");
    // Both workers held jobs back for the pause (the profile has no other limit to wait for).
    let mut held = Vec::new();
    for p in &processes {
        held.push(p.metric(r#"authrelay_jobs_throttled_total{phase="during_call"}"#).await);
    }
    assert!(held.iter().all(|n| *n > 0.0), "both workers waited out the pause: {held:?}");
    stop_all(processes.into_iter().chain([api])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_job_without_a_turn_before_its_deadline_fails_rate_limited_without_an_attempt() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Clocked::start().await;
    let (api, processes) = fleet(&env, 1, &[]).await;
    // One every 4 s, deadlines in 7 s: two jobs get a turn (at 0 and 4 s), two cannot (8 and 12 s).
    let id = limited_profile(&api, "One in four seconds", json!({"rate_per_s": 0.25})).await;
    let jobs: Vec<Value> = (0..4)
        .map(|i| {
            job(&format!("live-{i}"), Phase::DuringCall)
                .to(&target.url())
                .profile(&id)
                .deadline_in(Duration::from_secs(7))
        })
        .collect();
    broker.publish_all(&jobs).await;
    let tally = tap.all_answered(&ids_of(&jobs), WAIT).await;
    assert_eq!((tally.outcomes.get("succeeded"), tally.outcomes.get("failed")), (Some(&2), Some(&2)), "{tally}");
    assert_eq!(target.arrivals().len(), 2, "only the jobs with a turn reached the target");
    for result in tap.results().iter().filter(|r| r["outcome"] == "failed") {
        assert_eq!(result["error"]["kind"], "rate_limited", "{result}");
        assert_eq!(result["error"]["retryable"], false, "{result}");
        assert_eq!(result["attempts"], 0, "waiting uses no attempt: {result}");
    }
    let parked = broker.wait_for_messages(&env.names().failed_queue(), 2, WAIT).await;
    assert!(parked.iter().all(|m| m.header("x-authrelay-error-kind").as_deref() == Some("rate_limited")));
    let p = &processes[0];
    assert!(p.metric(r#"authrelay_jobs_throttled_total{phase="during_call"}"#).await >= 2.0);
    stop_all(processes.into_iter().chain([api])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_call_backlog_waits_in_delay_queues_with_its_turns_reserved() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let target = Clocked::start().await;
    let (api, processes) = fleet(&env, 1, &[("AUTHRELAY_MAX_IN_PROCESS_DELAY", "1s".to_owned())]).await;
    let id = limited_profile(&api, "Webhooks", json!({"rate_per_s": 4})).await;
    let jobs: Vec<Value> =
        (0..24).map(|i| job(&format!("hook-{i:02}"), Phase::PostCall).to(&target.url()).profile(&id)).collect();
    let started = Instant::now();
    broker.publish_all(&jobs).await;
    let tally = tap.all_answered(&ids_of(&jobs), Duration::from_secs(40)).await;
    let took = started.elapsed();
    assert_eq!(tally.outcomes.get("succeeded"), Some(&24), "{tally}");
    let p = &processes[0];
    let deferred = p.metric(r#"authrelay_jobs_deferred_total{phase="post_call",reason="rate_limited"}"#).await;
    let busiest = target.densest(Duration::from_secs(1));
    println!("24 jobs at 4/s took {took:?}; {deferred} waited in a delay queue; at most {busiest} in one second");
    let first = target.arrivals()[0].0;
    let offsets: Vec<u128> = target.arrivals().iter().map(|(at, _)| (*at - first).as_millis()).collect();
    println!("arrivals (ms after the first): {offsets:?}");
    assert!(deferred >= 10.0, "jobs beyond a second's wait wait in a delay queue ({deferred})");
    assert_eq!(target.arrivals().len(), 24, "one request per job: waiting spent no attempt");
    assert!(tap.results().iter().all(|r| r["attempts"] == 1));
    // The rate and a burst of 1, and one more for a request that arrived late on the loaded machine.
    assert!(busiest <= 6, "at most the rate in any second: {busiest}");
    assert!(took < Duration::from_secs(25), "the reserved turns keep the backlog moving: {took:?}");
    stop_all(processes.into_iter().chain([api])).await;
}
