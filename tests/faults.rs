//! Faults: the worker process killed or stopped under load, the broker and the
//! database cut away through proxies the test owns, targets and token
//! endpoints that misbehave. The promise under test: every job gets a result
//! (duplicates allowed, counted), none is lost, nothing stays unacked, no
//! secret leaks, and every bad target ends in the right outcome within the
//! job's deadline.
//!
//! Process-level tests run the real `authrelay run` binary as a child process
//! and take turns (`SERIAL`), so their timings do not disturb one another. Each
//! prints its figures (`cargo test --test faults -- --nocapture`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay::queue::topology::DELAY_TIERS;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{SecondsFormat, Utc};
use common::amqp::TestBroker;
use common::proxy::TcpProxy;
use common::{TestApp, TestEnv, spawn_app_with};
use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

/// Child-process tests take turns: they load the machine and measure time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// The binary as a child process
// ---------------------------------------------------------------------------

/// `authrelay run` as a child process; SIGKILLed when dropped, so a failing
/// test leaves nothing running.
struct Process {
    child: std::process::Child,
    addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
    token: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `authrelay run` with the test's environment plus `extra`, and waits until `/readyz` is 200.
    async fn start(env: &TestEnv, extra: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = env.state_dir.0.join(format!("authrelay-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authrelay"));
        command
            .arg("run")
            .current_dir(&env.state_dir.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env.vars)
            .env("AUTHRELAY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("AUTHRELAY_LOG", "warn")
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = command.spawn().expect("the binary starts");
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let token = env.vars["AUTHRELAY_ADMIN_TOKEN"].clone();
        let mut process = Self { child, addr: ([127, 0, 0, 1], port).into(), log, http, token };
        let deadline = Instant::now() + Duration::from_secs(60);
        while process.ready().await != Some(200) {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("authrelay exited during start ({status}): {}", process.log_tail());
            }
            assert!(Instant::now() < deadline, "authrelay never became ready: {}", process.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        process
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn ready(&self) -> Option<u16> {
        self.http.get(self.url("/readyz")).send().await.ok().map(|r| r.status().as_u16())
    }

    async fn ready_within(&self, status: u16, within: Duration) -> Duration {
        let started = Instant::now();
        while self.ready().await != Some(status) {
            if started.elapsed() > within {
                let checks = match self.http.get(self.url("/readyz")).send().await {
                    Ok(response) => response.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                panic!("/readyz never answered {status} within {within:?}: {checks}\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        metric_in(&text, series)
    }

    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -s {signal} failed");
    }

    /// SIGKILL, and reap it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to end; panics after `within`.
    async fn exit_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running {within:?} later: {}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn metric_in(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------
// Targets, results and queues
// ---------------------------------------------------------------------------

/// A target on 127.0.0.1 that answers 200 after a delay (changeable while it
/// runs), can hold every request at a gate, and counts requests per job.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    state: Arc<TargetState>,
}

struct TargetState {
    delay_ms: AtomicU64,
    in_flight: AtomicUsize,
    hits: Mutex<HashMap<String, u32>>,
    gate: watch::Sender<bool>,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn slow_answer(State(state): State<Arc<TargetState>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    *state.hits.lock().unwrap().entry(id).or_default() += 1;
    let _counted = InFlight::enter(&state);
    let mut gate = state.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    tokio::time::sleep(Duration::from_millis(state.delay_ms.load(Ordering::SeqCst))).await;
    StatusCode::OK
}

/// Counts a request in flight until it is answered or dropped (the client hung up).
struct InFlight(Arc<TargetState>);

impl InFlight {
    fn enter(state: &Arc<TargetState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Target {
    async fn start(delay: Duration) -> Self {
        let state = Arc::new(TargetState {
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            in_flight: AtomicUsize::new(0),
            hits: Mutex::default(),
            gate: watch::Sender::new(true),
        });
        let router = axum::Router::new().fallback(slow_answer).with_state(state.clone());
        Self { addr: serve(router).await, state }
    }

    fn url(&self) -> String {
        format!("http://{}/work", self.addr)
    }

    fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn hold(&self) {
        self.state.gate.send_replace(false);
    }

    fn release(&self) {
        self.state.gate.send_replace(true);
    }

    /// Requests beyond the first, over all jobs.
    fn repeated_requests(&self) -> u32 {
        self.state.hits.lock().unwrap().values().map(|n| n - 1).sum()
    }

    async fn drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.in_flight() > 0 {
            assert!(Instant::now() < deadline, "{} requests still open at the target", self.in_flight());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn in_flight_reaches(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.in_flight() < n {
            assert!(Instant::now() < deadline, "only {} of {n} requests arrived at the target", self.in_flight());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every result published while it is open, with when it arrived, collected in the background.
struct ResultTap {
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
    _channel: lapin::Channel,
}

impl ResultTap {
    async fn open(broker: &TestBroker) -> Self {
        let channel = broker.conn.create_channel().await.unwrap();
        let queue = TestBroker::private_queue(&channel, Some((&broker.names.results_exchange(), "#"))).await;
        let mut consumer = channel
            .basic_consume(
                queue.clone(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let result: Value = serde_json::from_slice(&delivery.data).expect("a result is JSON");
                sink.lock().unwrap().push((Instant::now(), result));
            }
        });
        Self { seen, _channel: channel }
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn results(&self) -> Vec<Value> {
        self.seen.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    async fn count_reaches(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.len() < n {
            assert!(Instant::now() < deadline, "{} results of {n} expected within {within:?}", self.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every id has a result, then tallies.
    async fn all_answered(&self, ids: &BTreeSet<String>, within: Duration) -> Tally {
        let deadline = Instant::now() + within;
        loop {
            let tally = Tally::of(ids, &self.results());
            if tally.lost == 0 {
                return tally;
            }
            assert!(Instant::now() < deadline, "{tally}: jobs without a result after {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long after `since` the first result of `phase` arrived.
    async fn first_of_phase_after(&self, phase: Phase, since: Instant, within: Duration) -> Duration {
        loop {
            let first = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|(at, r)| *at >= since && r["phase"] == phase.as_str())
                .map(|(at, _)| *at - since);
            if let Some(after) = first {
                return after;
            }
            assert!(since.elapsed() < within, "the {phase} lane published nothing within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Results against jobs sent.
#[derive(Debug)]
struct Tally {
    sent: usize,
    results: usize,
    duplicates: usize,
    lost: usize,
    outcomes: BTreeMap<String, usize>,
}

impl Tally {
    fn of(ids: &BTreeSet<String>, results: &[Value]) -> Self {
        let ours: Vec<&Value> =
            results.iter().filter(|r| r["job_id"].as_str().is_some_and(|id| ids.contains(id))).collect();
        let answered: BTreeSet<&str> = ours.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
        let mut outcomes = BTreeMap::new();
        for r in &ours {
            *outcomes.entry(r["outcome"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        Self {
            sent: ids.len(),
            results: ours.len(),
            duplicates: ours.len() - answered.len(),
            lost: ids.len() - answered.len(),
            outcomes,
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, results {}, duplicates {}, lost {}, outcomes {:?}",
            self.sent, self.results, self.duplicates, self.lost, self.outcomes
        )
    }
}

/// Messages on a queue (0 when it does not exist).
async fn depth(broker: &TestBroker, queue: &str) -> u32 {
    let channel = broker.conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let count =
        channel.queue_declare(queue.into(), passive, FieldTable::default()).await.map_or(0, |q| q.message_count());
    let _ = channel.close(200, "".into()).await;
    count
}

/// Asserts that no message waits anywhere: phase queues, delay queues, parked jobs.
async fn assert_all_queues_empty(broker: &TestBroker) {
    let mut queues = vec![broker.names.failed_queue()];
    for phase in Phase::ALL {
        queues.push(broker.names.phase_queue(phase));
        queues.extend(DELAY_TIERS.iter().map(|(tier, _)| broker.names.delay_queue(phase, tier)));
    }
    // Acks sent just before the process ended may still be on their way: wait briefly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for queue in queues {
        loop {
            let held = depth(broker, &queue).await;
            if held == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{queue} still holds {held} messages");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn job(id: &str, phase: Phase, url: &str) -> Value {
    json!({"job_id": id, "workspace_id": "acme", "phase": phase.as_str(), "action_id": "a", "request": {"url": url}})
}

fn deadline_in(after: Duration) -> String {
    (Utc::now() + chrono::Duration::from_std(after).unwrap()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Publishes jobs a hundred at a time, each confirmed.
async fn publish_all(broker: &TestBroker, jobs: &[Value]) {
    for chunk in jobs.chunks(100) {
        futures_util::future::join_all(chunk.iter().map(|j| broker.publish_job(j))).await;
    }
}

fn ids_of(jobs: &[Value]) -> BTreeSet<String> {
    jobs.iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
}

// ---------------------------------------------------------------------------
// The worker process killed, stopped, cut off from the broker
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_batch_loses_none_of_1000_jobs() {
    let _turn = SERIAL.lock().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let tap = ResultTap::open(&broker).await;
    let target = Target::start(Duration::from_millis(30)).await;
    let jobs: Vec<Value> = (0..1000).map(|i| job(&format!("kill-{i:04}"), Phase::PostCall, &target.url())).collect();
    let ids = ids_of(&jobs);
    let settings = [("AUTHRELAY_POST_CALL_CONCURRENCY", "16".to_owned())];
    publish_all(&broker, &jobs).await;

    let mut first = Process::start(&env, &settings).await;
    tap.count_reaches(250, Duration::from_secs(30)).await;
    first.kill();
    let at_kill = tap.len();
    let mut second = Process::start(&env, &settings).await;
    let tally = tap.all_answered(&ids, Duration::from_secs(60)).await;
    second.signal("TERM");
    let status = second.exit_within(Duration::from_secs(30)).await;

    println!("kill -9 after {at_kill} results: {tally}; repeated target requests {}", target.repeated_requests());
    assert!(at_kill < ids.len(), "the kill came after the batch was done");
    assert_eq!(tally.lost, 0, "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&tally.results), "{tally}");
    assert!(status.success(), "{status}");
    assert_all_queues_empty(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_jobs_in_flight_finishes_them_all_and_exits_0_within_the_grace() {
    let _turn = SERIAL.lock().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let tap = ResultTap::open(&broker).await;
    let target = Target::start(Duration::from_secs(2)).await;
    let grace = Duration::from_secs(10);
    let settings = [
        ("AUTHRELAY_POST_CALL_CONCURRENCY", "200".to_owned()),
        ("AUTHRELAY_POST_CALL_PREFETCH", "200".to_owned()),
        ("AUTHRELAY_SHUTDOWN_GRACE", "10s".to_owned()),
    ];
    let mut process = Process::start(&env, &settings).await;
    let jobs: Vec<Value> = (0..200).map(|i| job(&format!("term-{i:03}"), Phase::PostCall, &target.url())).collect();
    let ids = ids_of(&jobs);
    publish_all(&broker, &jobs).await;
    target.in_flight_reaches(200, WAIT).await;

    process.signal("TERM");
    let stopping = Instant::now();
    let status = process.exit_within(grace + Duration::from_secs(5)).await;
    let took = stopping.elapsed();

    let tally = tap.all_answered(&ids, Duration::from_secs(5)).await;
    println!("SIGTERM with 200 in flight: {status} after {took:?}; {tally}");
    assert_eq!(status.code(), Some(0), "{}", process.log_tail());
    assert!(took < grace, "stopping took {took:?} with a {grace:?} grace");
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&200), "{tally}");
    assert_all_queues_empty(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_requeues_unfinished_jobs_which_a_restart_completes() {
    let _turn = SERIAL.lock().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let tap = ResultTap::open(&broker).await;
    let target = Target::start(Duration::from_secs(5)).await;
    let grace = Duration::from_secs(1);
    let settings = [
        ("AUTHRELAY_POST_CALL_CONCURRENCY", "50".to_owned()),
        ("AUTHRELAY_POST_CALL_PREFETCH", "50".to_owned()),
        ("AUTHRELAY_SHUTDOWN_GRACE", "1s".to_owned()),
    ];
    let mut process = Process::start(&env, &settings).await;
    let jobs: Vec<Value> = (0..50).map(|i| job(&format!("late-{i:02}"), Phase::PostCall, &target.url())).collect();
    let ids = ids_of(&jobs);
    publish_all(&broker, &jobs).await;
    target.in_flight_reaches(50, WAIT).await;

    process.signal("TERM");
    let stopping = Instant::now();
    let status = process.exit_within(grace + Duration::from_secs(5)).await;
    let took = stopping.elapsed();
    let requeued = depth(&broker, &broker.names.phase_queue(Phase::PostCall)).await;
    let results_before_restart = tap.len();
    target.set_delay(Duration::from_millis(10));
    let restarted = Process::start(&env, &settings).await;
    let tally = tap.all_answered(&ids, WAIT).await;
    drop(restarted);

    println!("SIGTERM past a 1 s grace: {status} after {took:?}; {requeued} requeued; after a restart: {tally}");
    assert_eq!(status.code(), Some(0), "{}", process.log_tail());
    assert!(took < grace + Duration::from_secs(2), "stopping took {took:?} with a {grace:?} grace");
    assert_eq!((results_before_restart, requeued), (0, 50), "every unfinished job went back to its queue");
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
}

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
        let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
        let env = TestEnv::new();
        let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
        let tap = ResultTap::open(&broker).await;
        let target = Target::start(Duration::from_millis(10)).await;
        let mut settings = settings.to_vec();
        settings.push(("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{}/%2f", proxy.addr)));
        let process = Process::start(&env, &settings).await;
        let profile = create_profile(&process, "acme").await;
        Self { proxy, broker, tap, target, process, profile, _env: env }
    }

    /// `n` jobs per phase, with a far deadline (a redelivered live-call job must not expire).
    fn batch(&self, name: &str, n: usize) -> Vec<Value> {
        let far = deadline_in(Duration::from_secs(600));
        let mut jobs = Vec::new();
        for phase in Phase::ALL {
            for i in 0..n {
                let mut j = job(&format!("{name}-{phase}-{i:03}"), phase, &self.target.url());
                j["deadline"] = json!(far);
                jobs.push(with_profile(j, &self.profile));
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
        publish_all(&self.broker, &probes).await;
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
        self.process.signal("TERM");
        let status = self.process.exit_within(Duration::from_secs(40)).await;
        assert!(status.success(), "{status}");
        assert_all_queues_empty(&self.broker).await;
        tally
    }
}

const MISSES: &str = r#"authrelay_profile_lookups_total{result="miss"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_jobs_are_mid_request_loses_none_and_every_lane_resumes_within_10s() {
    let _turn = SERIAL.lock().await;
    let b = BehindProxy::start(&[]).await;
    // Every lane's slots hold a request at the gate (32 + 64 + 32); more wait in prefetch buffers.
    b.target.hold();
    let jobs = b.batch("mid-request", 200);
    publish_all(&b.broker, &jobs).await;
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
    publish_all(&b.broker, &jobs).await;
    b.tap.count_reaches(300, WAIT).await;

    b.proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ready, resumed, probes) = b.restore(resume_within).await;
    let tally = b.finish(&[jobs, probes].concat()).await;
    (ready, resumed, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_results_are_being_confirmed_loses_no_job() {
    let _turn = SERIAL.lock().await;
    // Jobs caught settling by the cut hold their lane until the shutdown grace ends (see
    // the ignored test below); a 5 s grace keeps this test short.
    let settings = [("AUTHRELAY_SHUTDOWN_GRACE", "5s".to_owned())];

    let (ready, resumed, tally) = cut_mid_confirm(&settings, Duration::from_secs(20)).await;

    println!("broker cut mid-confirm (5 s grace): ready {ready:?} after restore, lanes resumed {resumed:?}; {tally}");
    assert_eq!(tally.lost, 0, "{tally}");
    assert_eq!(tally.outcomes.get("succeeded"), Some(&tally.results), "{tally}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_while_results_are_being_confirmed_lets_every_lane_resume_within_10s() {
    let _turn = SERIAL.lock().await;

    let (ready, resumed, tally) = cut_mid_confirm(&[], Duration::from_secs(10)).await;

    println!("broker cut mid-confirm: ready {ready:?} after restore, lanes resumed {resumed:?}; {tally}");
    assert_eq!(tally.lost, 0, "{tally}");
}

async fn create_profile(process: &Process, ws: &str) -> String {
    let created: Value = process
        .http
        .post(process.url(&format!("/v1/workspaces/{ws}/auth-profiles")))
        .bearer_auth(&process.token)
        .json(&json!({"name": "CRM", "type": "bearer", "config": {"token": "crm-token-0123456789"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().expect("created").to_owned()
}

// ---------------------------------------------------------------------------
// The database cut away
// ---------------------------------------------------------------------------

struct InProcess {
    app: TestApp,
    broker: TestBroker,
    tap: ResultTap,
}

async fn in_process(mut env: TestEnv) -> InProcess {
    env.set("AUTHRELAY_RETRY_JITTER", "0");
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let tap = ResultTap::open(&broker).await;
    let app = spawn_app_with(env, Roles::ALL).await;
    InProcess { app, broker, tap }
}

impl InProcess {
    async fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.app.get("/metrics").await;
        metric_in(body.as_str().expect("metrics are text"), series)
    }

    async fn ready_within(&self, status: u16, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.app.http.get(self.app.url("/readyz")).send().await.unwrap().status().as_u16();
            if now == status {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "/readyz never answered {status} within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The result of `id` and how long after `since` it arrived.
    async fn result_of(&self, id: &str, since: Instant, within: Duration) -> (Value, Duration) {
        loop {
            let found = self.tap.seen.lock().unwrap().iter().find(|(_, r)| r["job_id"] == id).cloned();
            if let Some((at, result)) = found {
                return (result, at.saturating_duration_since(since));
            }
            assert!(since.elapsed() < within, "no result for {id} within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metric_reaches(&self, series: &str, n: f64, within: Duration) {
        let started = Instant::now();
        while self.metric(series).await < n {
            assert!(started.elapsed() < within, "{series} = {} never reached {n}", self.metric(series).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn ok_target() -> MockServer {
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    target
}

fn with_profile(mut j: Value, profile: &str) -> Value {
    j["auth_profile_id"] = json!(profile);
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_needing_an_uncached_profile_wait_out_a_database_outage_and_then_complete() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut env = TestEnv::new();
    let proxied = format!("postgres://postgres@{}/{}", proxy.addr, env.db.name);
    env.set("AUTHRELAY_DATABASE_URL", proxied).set("AUTHRELAY_DATABASE_RETRY_DELAY", "1s");
    let h = in_process(env).await;
    let target = ok_target().await;
    let url = format!("{}/ok", target.uri());
    let bearer = |token: &str| json!({"name": token, "type": "bearer", "config": {"token": token}});
    let cold = h.app.create_profile("acme", bearer("cold-token-0123456789")).await;
    let warm = h.app.create_profile("acme", bearer("warm-token-0123456789")).await;
    h.broker.publish_job(&with_profile(job("warm-before", Phase::PostCall, &url), &warm)).await;
    assert_eq!(h.result_of("warm-before", Instant::now(), WAIT).await.0["outcome"], "succeeded");
    h.ready_within(200, WAIT).await;
    let delayed = "authrelay_jobs_delayed_database_unavailable_total";

    proxy.cut();
    let cut = Instant::now();
    h.ready_within(503, Duration::from_secs(10)).await;
    let (status, error) = h.app.get(&format!("/v1/workspaces/acme/auth-profiles/{cold}")).await;
    assert_eq!((status, error["error"].as_str()), (503, Some("database_unavailable")), "{error}");
    let waiting: Vec<Value> =
        (0..20).map(|i| with_profile(job(&format!("cold-{i:02}"), Phase::PostCall, &url), &cold)).collect();
    publish_all(&h.broker, &waiting).await;
    let mut live = with_profile(job("cold-live-call", Phase::DuringCall, &url), &cold);
    live["deadline"] = json!(deadline_in(Duration::from_millis(2500)));
    h.broker.publish_job(&live).await;
    h.broker.publish_job(&with_profile(job("warm-during", Phase::PostCall, &url), &warm)).await;

    let (warm_during, _) = h.result_of("warm-during", cut, Duration::from_secs(10)).await;
    let (expired, _) = h.result_of("cold-live-call", cut, Duration::from_secs(10)).await;
    h.metric_reaches(delayed, 21.0, Duration::from_secs(10)).await;
    let during_outage = Tally::of(&ids_of(&waiting), &h.tap.results());
    let parked_during_outage = depth(&h.broker, &h.broker.names.failed_queue()).await;
    let outage = cut.elapsed();
    proxy.restore();
    let restored = Instant::now();
    let ready_after = h.ready_within(200, Duration::from_secs(20)).await;
    let tally = h.tap.all_answered(&ids_of(&waiting), Duration::from_secs(30)).await;
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
    assert_all_queues_empty(&h.broker).await;
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Slow and hostile targets
// ---------------------------------------------------------------------------

/// Targets that misbehave at the HTTP level, and how many body bytes they managed to send.
struct BadTargets {
    addr: SocketAddr,
    streamed: Arc<AtomicU64>,
}

impl BadTargets {
    async fn start() -> Self {
        let streamed = Arc::new(AtomicU64::new(0));
        let endless = |status: StatusCode, streamed: Arc<AtomicU64>| {
            move || async move {
                let chunk = Bytes::from(vec![b'a'; 16 * 1024]);
                let body = futures_util::stream::repeat(()).map(move |()| {
                    streamed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    Ok::<_, Infallible>(chunk.clone())
                });
                (status, Body::from_stream(body))
            }
        };
        let drip = || async {
            let body = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, Infallible>(Bytes::from_static(b"a")), ()))
            });
            Body::from_stream(body)
        };
        let router = axum::Router::new()
            .route("/endless", axum::routing::get(endless(StatusCode::OK, streamed.clone())))
            .route("/endless-503", axum::routing::get(endless(StatusCode::SERVICE_UNAVAILABLE, streamed.clone())))
            .route("/drip", axum::routing::get(drip));
        Self { addr: serve(router).await, streamed }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the target stops sending (nobody reads any more); returns the bytes sent.
    async fn settled_bytes(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        let mut last = self.streamed.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.streamed.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            assert!(Instant::now() < deadline, "the endless body is still being read");
            last = now;
        }
    }
}

/// A TCP server on 127.0.0.1 that treats every connection with `behave`.
async fn raw_server<F, Fut>(behave: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(behave(socket));
        }
    });
    addr
}

/// Accepts and never says a word (holds the connection for a minute).
async fn silent_server() -> SocketAddr {
    raw_server(|socket| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    })
    .await
}

/// Sends a status line and then header lines forever.
async fn endless_headers_server() -> SocketAddr {
    raw_server(|mut socket| async move {
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = format!("X-Pad: {}\r\n", "h".repeat(1000));
        while socket.write_all(line.as_bytes()).await.is_ok() {}
    })
    .await
}

fn assert_failed(result: &Value, kind: &str, attempts: u64) {
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], kind, "{result}");
    assert_eq!(result["attempts"], attempts, "{result}");
}

#[tokio::test]
async fn a_target_that_drips_its_body_is_cut_at_the_deadline_or_the_attempt_timeout() {
    let h = in_process(TestEnv::new()).await;
    let targets = BadTargets::start().await;
    let mut by_deadline = job("drip-deadline", Phase::DuringCall, &targets.url("/drip"));
    by_deadline["deadline"] = json!(deadline_in(Duration::from_millis(1500)));
    let mut by_timeout = job("drip-timeout", Phase::DuringCall, &targets.url("/drip"));
    by_timeout["request"]["timeout_ms"] = json!(300);
    by_timeout["max_attempts"] = json!(2);
    let published = Instant::now();

    h.broker.publish_job(&by_deadline).await;
    h.broker.publish_job(&by_timeout).await;

    let (cut, cut_after) = h.result_of("drip-deadline", published, WAIT).await;
    let (timed_out, timed_out_after) = h.result_of("drip-timeout", published, WAIT).await;
    println!("dripping body: deadline_exceeded after {cut_after:?}, timeout ×2 after {timed_out_after:?}");
    assert_failed(&cut, "deadline_exceeded", 1);
    assert!(cut_after < Duration::from_millis(1500), "the result came {cut_after:?} after publishing (deadline 1.5 s)");
    assert_failed(&timed_out, "timeout", 2);
    assert!(timed_out_after < Duration::from_secs(2), "{timed_out_after:?}");
    h.app.stop().await;
}

#[tokio::test]
async fn a_target_that_never_answers_or_hangs_up_ends_the_job_within_its_deadline() {
    let h = in_process(TestEnv::new()).await;
    let silent = silent_server().await;
    let hangs_up = raw_server(|socket| async move { drop(socket) }).await;
    let mut by_deadline = job("silent-deadline", Phase::DuringCall, &format!("http://{silent}/x"));
    by_deadline["deadline"] = json!(deadline_in(Duration::from_millis(1500)));
    let mut by_timeout = job("silent-timeout", Phase::DuringCall, &format!("http://{silent}/x"));
    by_timeout["request"]["timeout_ms"] = json!(300);
    let hang_up = job("hang-up", Phase::DuringCall, &format!("http://{hangs_up}/x"));
    let published = Instant::now();

    for j in [&by_deadline, &by_timeout, &hang_up] {
        h.broker.publish_job(j).await;
    }

    let (cut, cut_after) = h.result_of("silent-deadline", published, WAIT).await;
    let (timed_out, timed_out_after) = h.result_of("silent-timeout", published, WAIT).await;
    let (hung_up, hung_up_after) = h.result_of("hang-up", published, WAIT).await;
    println!(
        "silent target: deadline_exceeded after {cut_after:?}, timeout ×2 after {timed_out_after:?}; hang-up after {hung_up_after:?}"
    );
    assert_failed(&cut, "deadline_exceeded", 1);
    assert!(cut_after < Duration::from_millis(1500), "{cut_after:?}");
    assert_failed(&timed_out, "timeout", 2);
    assert!(timed_out_after < Duration::from_secs(2), "{timed_out_after:?}");
    assert_failed(&hung_up, "connect", 2);
    assert!(hung_up_after < Duration::from_secs(2), "{hung_up_after:?}");
    h.app.stop().await;
}

#[tokio::test]
async fn an_endless_body_is_truncated_at_the_cap_and_the_job_ends() {
    let mut env = TestEnv::new();
    let cap = 64 * 1024;
    env.set("AUTHRELAY_MAX_RESPONSE_BYTES", cap.to_string());
    let h = in_process(env).await;
    let targets = BadTargets::start().await;
    let published = Instant::now();

    h.broker.publish_job(&job("endless-200", Phase::DuringCall, &targets.url("/endless"))).await;
    let (ok, ok_after) = h.result_of("endless-200", published, WAIT).await;
    h.broker.publish_job(&job("endless-503", Phase::DuringCall, &targets.url("/endless-503"))).await;
    let (failed, failed_after) = h.result_of("endless-503", published, WAIT).await;
    let sent = targets.settled_bytes().await;

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
    h.app.stop().await;
}

#[tokio::test]
async fn endless_response_headers_end_the_attempt_long_before_the_deadline() {
    let h = in_process(TestEnv::new()).await;
    let server = endless_headers_server().await;
    let published = Instant::now();

    h.broker.publish_job(&job("endless-headers", Phase::DuringCall, &format!("http://{server}/x"))).await;

    let (result, after) = h.result_of("endless-headers", published, WAIT).await;
    println!("endless headers: {} after {after:?}", result["error"]);
    assert_eq!(result["outcome"], "failed", "{result}");
    assert!(result["error"]["retryable"].as_bool().is_some(), "{result}");
    assert!(after < Duration::from_secs(4), "{after:?} (deadline 5 s)");
    h.app.stop().await;
}

/// Answers the token request with a fresh token each time, and counts requests.
struct Tokens(Arc<AtomicUsize>);

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("access-{n}-0123456789"), "expires_in": 3600}))
    }
}

fn oauth_config(endpoint: &str) -> Value {
    json!({"client_id": "cid", "client_secret": "client-secret-0123456789", "token_endpoint": endpoint})
}

#[tokio::test]
async fn an_api_answering_401_forever_costs_each_of_20_concurrent_jobs_exactly_one_token_refetch() {
    let h = in_process(TestEnv::new()).await;
    let idp = MockServer::start().await;
    let token_requests = Arc::new(AtomicUsize::new(0));
    Mock::given(path("/token")).respond_with(Tokens(token_requests.clone())).mount(&idp).await;
    let api = MockServer::start().await;
    Mock::given(path("/me")).respond_with(ResponseTemplate::new(401)).mount(&api).await;
    let profile = h
        .app
        .create_profile(
            "acme",
            json!({"name": "IdP", "type": "oauth2_client_credentials", "config": oauth_config(&format!("{}/token", idp.uri()))}),
        )
        .await;
    let jobs: Vec<Value> = (0..20)
        .map(|i| {
            with_profile(
                job(&format!("unauthorized-{i:02}"), Phase::DuringCall, &format!("{}/me", api.uri())),
                &profile,
            )
        })
        .collect();
    let published = Instant::now();

    publish_all(&h.broker, &jobs).await;

    let tally = h.tap.all_answered(&ids_of(&jobs), WAIT).await;
    let took = published.elapsed();
    let mut per_job: BTreeMap<String, usize> = BTreeMap::new();
    for request in api.received_requests().await.unwrap() {
        let id = request.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned();
        *per_job.entry(id).or_default() += 1;
    }
    let token_requests = token_requests.load(Ordering::SeqCst);
    println!(
        "401 forever, 20 jobs: {tally}; API requests per job {:?}; token requests {token_requests}; {took:?}",
        per_job.values().collect::<BTreeSet<_>>()
    );
    assert_eq!((tally.lost, tally.duplicates), (0, 0), "{tally}");
    for result in h.tap.results() {
        assert_failed(&result, "http_status", 2);
        assert_eq!(result["response"]["status"], 401, "{result}");
    }
    assert_eq!(per_job.len(), 20);
    assert!(per_job.values().all(|n| *n == 2), "each job: the request, one refetch, one retry: {per_job:?}");
    assert!((2..=21).contains(&token_requests), "{token_requests} token requests");
    assert!(took < Duration::from_secs(5), "{took:?}");
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Token endpoint trouble
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_endpoint_trouble_fails_the_job_with_token_request_failed_and_the_right_retryability() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_REQUEST_TIMEOUT", "1s");
    let h = in_process(env).await;
    let api = MockServer::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let idp = MockServer::start().await;
    let replies = [
        (
            "slow",
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "late-0123456789"}))
                .set_delay(Duration::from_secs(3)),
        ),
        ("html", ResponseTemplate::new(200).set_body_raw("<html><body>Sign in to continue</body></html>", "text/html")),
        (
            "refusal",
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": "invalid_client", "error_description": "unknown client"})),
        ),
        ("busy", ResponseTemplate::new(200).set_body_json(json!({"error": "temporarily_unavailable"}))),
        ("error-500", ResponseTemplate::new(500).set_body_json(json!({"error": "server_error"}))),
        ("status-401", ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}))),
    ];
    for (name, reply) in replies.iter().cloned() {
        Mock::given(path(format!("/{name}"))).respond_with(reply).mount(&idp).await;
    }
    // (case, token endpoint, retryable, attempts)
    let mut cases = vec![("down".to_owned(), format!("http://{closed}/token"), true, 2)];
    for (name, retryable) in [
        ("slow", true),
        ("html", false),
        ("refusal", false),
        ("busy", true),
        ("error-500", true),
        ("status-401", false),
    ] {
        cases.push((name.to_owned(), format!("{}/{name}", idp.uri()), retryable, if retryable { 2 } else { 1 }));
    }
    let published = Instant::now();
    for (name, endpoint, _, _) in &cases {
        let config = json!({"name": name, "type": "oauth2_client_credentials", "config": oauth_config(endpoint)});
        let profile = h.app.create_profile("acme", config).await;
        let j = with_profile(job(&format!("token-{name}"), Phase::DuringCall, &format!("{}/api", api.uri())), &profile);
        h.broker.publish_job(&j).await;
    }

    let mut figures = Vec::new();
    for (name, _, retryable, attempts) in &cases {
        let (result, after) = h.result_of(&format!("token-{name}"), published, WAIT).await;
        figures.push(format!("{name}: {after:?}"));
        assert_failed(&result, "token_request_failed", *attempts);
        assert_eq!(result["error"]["retryable"], *retryable, "{name}: {result}");
        assert!(after < Duration::from_secs(5), "{name}: {after:?} (deadline 5 s)");
        assert!(!result.to_string().contains("client-secret-0123456789"), "{result}");
    }
    println!("token endpoint trouble, results after: {}", figures.join(", "));
    assert!(api.received_requests().await.unwrap().is_empty(), "no API request without a token");
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), cases.len() as u32, WAIT).await;
    assert!(parked.iter().all(|p| p.header("x-authrelay-error-kind").as_deref() == Some("token_request_failed")));
    h.app.stop().await;
}

#[tokio::test]
async fn a_token_reply_without_expires_in_works_and_is_kept_for_the_default_lifetime() {
    let h = in_process(TestEnv::new()).await;
    let idp = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "no-expiry-0123456789", "token_type": "bearer"})),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/api"))
        .and(wiremock::matchers::header("authorization", "Bearer no-expiry-0123456789"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&api)
        .await;
    let config = json!({"name": "p", "type": "oauth2_client_credentials", "config": oauth_config(&format!("{}/token", idp.uri()))});
    let profile = h.app.create_profile("acme", config).await;
    let url = format!("{}/api", api.uri());

    h.broker.publish_job(&with_profile(job("first", Phase::DuringCall, &url), &profile)).await;
    let (first, _) = h.result_of("first", Instant::now(), WAIT).await;
    h.broker.publish_job(&with_profile(job("second", Phase::DuringCall, &url), &profile)).await;
    let (second, _) = h.result_of("second", Instant::now(), WAIT).await;

    assert_eq!((first["outcome"].as_str(), second["outcome"].as_str()), (Some("succeeded"), Some("succeeded")));
    h.app.stop().await;
}

#[tokio::test]
async fn jobs_against_a_failing_token_endpoint_do_not_hammer_it() {
    let h = in_process(TestEnv::new()).await;
    let api = MockServer::start().await;
    let idp = MockServer::start().await;
    Mock::given(path("/token")).respond_with(ResponseTemplate::new(503)).mount(&idp).await;
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let refusing = raw_server(move |socket| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { drop(socket) }
    })
    .await;
    let mut jobs = Vec::new();
    for (name, endpoint) in [("503", format!("{}/token", idp.uri())), ("hangs-up", format!("http://{refusing}/token"))]
    {
        let config = json!({"name": name, "type": "oauth2_client_credentials", "config": oauth_config(&endpoint)});
        let profile = h.app.create_profile("acme", config).await;
        jobs.extend((0..40).map(|i| {
            with_profile(job(&format!("{name}-{i:02}"), Phase::DuringCall, &format!("{}/api", api.uri())), &profile)
        }));
    }
    let published = Instant::now();

    publish_all(&h.broker, &jobs).await;

    let tally = h.tap.all_answered(&ids_of(&jobs), WAIT).await;
    let took = published.elapsed();
    let token_requests = idp.received_requests().await.unwrap().len();
    let token_connections = connections.load(Ordering::SeqCst);
    println!(
        "80 jobs on 2 failing token endpoints in {took:?}: {tally}; token requests: 503 → {token_requests}, hang-up → {token_connections} connections"
    );
    assert_eq!(tally.lost, 0, "{tally}");
    assert!(h.tap.results().iter().all(|r| r["error"]["kind"] == "token_request_failed"));
    assert!(token_requests <= 2, "{token_requests} requests to a 503 token endpoint for 40 jobs");
    assert!(token_connections <= 2, "{token_connections} connections to a hanging-up token endpoint for 40 jobs");
    assert!(api.received_requests().await.unwrap().is_empty());
    h.app.stop().await;
}

// ---------------------------------------------------------------------------
// Memory under hostile targets, in the real process
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_across_batches_against_endless_and_dripping_targets() {
    let _turn = SERIAL.lock().await;
    let env = TestEnv::new();
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let tap = ResultTap::open(&broker).await;
    let targets = BadTargets::start().await;
    let settings = [("AUTHRELAY_MAX_RESPONSE_BYTES", (256 * 1024).to_string())];
    let process = Process::start(&env, &settings).await;
    let batch = |n: usize| -> Vec<Value> {
        (0..100)
            .map(|i| {
                let (kind, url) =
                    if i % 4 == 0 { ("drip", targets.url("/drip")) } else { ("endless", targets.url("/endless")) };
                let mut j = job(&format!("mem{n}-{kind}-{i:03}"), Phase::PostCall, &url);
                j["request"]["timeout_ms"] = json!(500);
                j["max_attempts"] = json!(1);
                j
            })
            .collect()
    };
    let started = process.rss_kib();

    let first = batch(1);
    publish_all(&broker, &first).await;
    let first_tally = tap.all_answered(&ids_of(&first), Duration::from_secs(60)).await;
    let after_first = process.rss_kib();
    let second = batch(2);
    publish_all(&broker, &second).await;
    let second_tally = tap.all_answered(&ids_of(&second), Duration::from_secs(60)).await;
    let after_second = process.rss_kib();
    let streamed = targets.settled_bytes().await;

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
