//! The servers authrelay depends on, cut away through proxies the test owns:
//! RabbitMQ cut while jobs are mid-request or results are being confirmed
//! (the real binary as a child process), PostgreSQL cut while jobs need an
//! uncached profile (the app in process). The promise: no job is lost, every
//! lane resumes soon after the server returns, nothing stays unacked.
//!
//! Child-process tests take turns ([`timed_turn`]); each prints its figures
//! (`cargo test --test it broker_and_database_outages:: -- --nocapture`).

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::targets::Target;
use authrelay_testkit::{
    JobExt as _, Process, ResultTap, Tally, TcpProxy, TestApp, TestBroker, TestEnv, deadline_in, ids_of, job,
    timed_turn,
};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{WAIT, authrelay};

// ---------------------------------------------------------------------------
// The broker cut away from the real process
// ---------------------------------------------------------------------------

/// A child process reaching RabbitMQ through a proxy the test can cut, with a
/// bearer profile its jobs use (so reconnects show in the profile cache).
struct BehindProxy {
    proxy: TcpProxy,
    broker: TestBroker,
    tap: ResultTap,
    target: Target,
    process: Process,
    profile: String,
    _env: TestEnv,
}

impl BehindProxy {
    async fn start(settings: &[(&str, String)]) -> Self {
        let proxy = TcpProxy::to_broker().await;
        let mut env = TestEnv::new();
        env.broker_through(&proxy);
        let broker = TestBroker::new(env.names()).await;
        let tap = broker.tap().await;
        let target = Target::start(Duration::from_millis(10)).await;
        let process = authrelay(&env).envs(settings).serve(&["run"]).await;
        let crm = json!({"name": "CRM", "type": "bearer", "config": {"token": "crm-token-0123456789"}});
        let profile = process.create_profile("acme", crm).await;
        Self { proxy, broker, tap, target, process, profile, _env: env }
    }

    /// `n` jobs per phase, with a far deadline (a redelivered live-call job must not expire).
    fn batch(&self, name: &str, n: usize) -> Vec<Value> {
        let far = deadline_in(Duration::from_secs(600));
        let mut jobs = Vec::new();
        for phase in Phase::ALL {
            for i in 0..n {
                let j = job(&format!("{name}-{phase}-{i:03}"), phase).to(&self.target.url());
                jobs.push(j.profile(&self.profile).with(json!({"deadline": far})));
            }
        }
        jobs
    }

    /// Restores the proxy and publishes a probe job per lane; returns how long `/readyz`
    /// took to be 200 again, how long each lane (pre, during, post) took to publish a
    /// result again, and the probes.
    async fn restore(&self, within: Duration) -> (Duration, Vec<Duration>, Vec<Value>) {
        self.proxy.restore();
        let restored = Instant::now();
        let ready = self.process.ready_within(200, within).await;
        let probes = self.batch("probe", 1);
        self.broker.publish_all(&probes).await;
        let mut resumed = Vec::new();
        for phase in Phase::ALL {
            resumed.push(self.tap.first_of_phase_after(phase, restored, within).await);
        }
        (ready, resumed, probes)
    }

    /// Waits until every job sent has a result, then stops the process with SIGTERM.
    async fn finish(mut self, sent: &[Value]) -> Tally {
        let ids = ids_of(sent);
        let tally = self.tap.all_answered(&ids, Duration::from_secs(90)).await;
        self.process.terminate();
        let status = self.process.exit_within(Duration::from_secs(40)).await;
        assert!(status.success(), "{status}");
        self.broker.assert_all_queues_empty().await;
        tally
    }
}

const MISSES: &str = r#"authrelay_profile_lookups_total{result="miss"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_jobs_are_mid_request_loses_none_and_every_lane_resumes_within_10s() {
    let _turn = timed_turn().await;
    // Live-first off: with live jobs held, the post-call lane would otherwise run only a few of its 32.
    let b = BehindProxy::start(&[("AUTHRELAY_LIVE_FIRST", "off".into())]).await;
    // Every lane's slots hold a request at the gate (32 + 64 + 32); more wait in prefetch buffers.
    b.target.hold();
    let jobs = b.batch("mid-request", 200);
    b.broker.publish_all(&jobs).await;
    b.target.in_flight_reaches(32 + 64 + 32, WAIT).await;
    let misses_before = b.process.metric(MISSES).await;

    b.proxy.cut();
    b.process.ready_within(503, Duration::from_secs(10)).await;
    // The held requests are answered while the broker is gone: every publish and ack for them fails.
    b.target.release();
    b.target.drained(WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // the outage lasts a little longer
    let (ready, resumed, probes) = b.restore(Duration::from_secs(10)).await;
    let misses_after = b.process.metric(MISSES).await;
    let target = b.target.clone();
    let tally = b.finish(&[jobs, probes].concat()).await;
    let repeated = target.repeated_requests();

    println!(
        "broker cut with 128 jobs mid-request: ready {ready:?} after restore, lanes resumed {resumed:?}; {tally}; {repeated} jobs ran twice"
    );
    assert_eq!(tally.lost, 0, "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&tally.results), "{tally}");
    assert!(repeated >= 128, "the jobs answered during the outage ran again: {repeated}");
    assert!(
        misses_after > misses_before,
        "the profile cache was dropped on reconnect ({misses_before} → {misses_after})"
    );
}

/// Cuts the broker while results flow at full speed, so publishes and acks are
/// in flight; restores after 1.5 s.
async fn cut_mid_confirm(settings: &[(&str, String)], resume_within: Duration) -> (Duration, Vec<Duration>, Tally) {
    let b = BehindProxy::start(settings).await;
    let jobs = b.batch("mid-confirm", 300);
    b.broker.publish_all(&jobs).await;
    b.tap.count_reaches(300, WAIT).await;

    b.proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ready, resumed, probes) = b.restore(resume_within).await;
    let tally = b.finish(&[jobs, probes].concat()).await;
    (ready, resumed, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_results_are_being_confirmed_loses_no_job() {
    let _turn = timed_turn().await;
    // Jobs caught settling by the cut hold their lane until the shutdown grace ends (see
    // the test below); a 5 s grace keeps this test short.
    let settings = [("AUTHRELAY_SHUTDOWN_GRACE", "5s".to_owned())];

    let (ready, resumed, tally) = cut_mid_confirm(&settings, Duration::from_secs(20)).await;

    println!("broker cut mid-confirm (5 s grace): ready {ready:?} after restore, lanes resumed {resumed:?}; {tally}");
    assert_eq!(tally.lost, 0, "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&tally.results), "{tally}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_results_are_being_confirmed_lets_every_lane_resume_within_10s() {
    let _turn = timed_turn().await;

    let (ready, resumed, tally) = cut_mid_confirm(&[], Duration::from_secs(10)).await;

    println!("broker cut mid-confirm: ready {ready:?} after restore, lanes resumed {resumed:?}; {tally}");
    assert_eq!(tally.lost, 0, "{tally}");
}

// ---------------------------------------------------------------------------
// The database cut away from the app
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_needing_an_uncached_profile_wait_out_a_database_outage_and_then_complete() {
    let proxy = TcpProxy::to_database().await;
    let mut env = TestEnv::new();
    env.database_through(&proxy).set("AUTHRELAY_DATABASE_RETRY_DELAY", "1s");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    let url = format!("{}/ok", target.uri());
    let bearer = |token: &str| json!({"name": token, "type": "bearer", "config": {"token": token}});
    let cold = h.create_profile("acme", bearer("cold-token-0123456789")).await;
    let warm = h.create_profile("acme", bearer("warm-token-0123456789")).await;
    h.broker.publish_job(&job("warm-before", Phase::PostCall).to(&url).profile(&warm)).await;
    assert_eq!(h.results.of("warm-before", Instant::now(), WAIT).await.0["outcome"], "succeeded");
    h.ready_within(200, WAIT).await;
    let delayed = "authrelay_jobs_delayed_database_unavailable_total";

    proxy.cut();
    let cut = Instant::now();
    h.ready_within(503, Duration::from_secs(10)).await;
    let (status, error) = h.get(&format!("/v1/workspaces/acme/auth-profiles/{cold}")).await;
    assert_eq!((status, error["error"].as_str()), (503, Some("database_unavailable")), "{error}");
    let waiting: Vec<Value> =
        (0..20).map(|i| job(&format!("cold-{i:02}"), Phase::PostCall).to(&url).profile(&cold)).collect();
    h.broker.publish_all(&waiting).await;
    let live =
        job("cold-live-call", Phase::DuringCall).to(&url).profile(&cold).deadline_in(Duration::from_millis(2500));
    h.broker.publish_job(&live).await;
    h.broker.publish_job(&job("warm-during", Phase::PostCall).to(&url).profile(&warm)).await;

    let (warm_during, _) = h.results.of("warm-during", cut, Duration::from_secs(10)).await;
    let (expired, _) = h.results.of("cold-live-call", cut, Duration::from_secs(10)).await;
    h.metric_reaches(delayed, 21.0, Duration::from_secs(10)).await;
    let during_outage = Tally::of(&ids_of(&waiting), &h.results.results());
    let parked_during_outage = h.broker.message_count(&h.broker.names.failed_queue()).await;
    let outage = cut.elapsed();
    proxy.restore();
    let restored = Instant::now();
    let ready_after = h.ready_within(200, Duration::from_secs(20)).await;
    let tally = h.results.all_answered(&ids_of(&waiting), Duration::from_secs(30)).await;
    let completed_after = restored.elapsed();
    let delays = h.metric(delayed).await;

    println!(
        "database cut for {outage:?}: 20 jobs delayed ({delays} delays), ready {ready_after:?} and all done {completed_after:?} after restore; {tally}"
    );
    assert_eq!(warm_during["outcome"], "succeeded", "a cached profile keeps working: {warm_during}");
    assert_eq!(expired["outcome"], "expired", "a live-call job whose deadline passed meanwhile: {expired}");
    assert_eq!(during_outage.results, 0, "nothing needing the database ended during the outage: {during_outage}");
    assert_eq!(parked_during_outage, 0, "nothing was parked");
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&20), "{tally}");
    let requests = target.received_requests().await.unwrap().len();
    assert_eq!(requests, 1 + 1 + 20, "each job reached the target once");
    h.broker.assert_all_queues_empty().await;
    h.stop().await;
}
