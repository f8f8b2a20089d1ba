//! The performance benchmark: authrelay's real worker against a bare pipeline
//! built from the same crates, on loopback, with ratios measured in one run.
//!
//! ```text
//! cargo bench --bench pipeline -- full     # the numbers for the README (release build)
//! cargo bench --bench pipeline -- drain    # throughput and CPU only (release build)
//! cargo bench --bench pipeline -- backlog  # live calls while a post-call backlog drains (release build)
//! cargo test --bench pipeline -- quick     # a smoke run in the debug build (CI)
//! ```
//!
//! Cargo builds the `authrelay` binary of the same profile first and the bench
//! runs that (`AUTHRELAY_BENCH_BIN=/path/to/authrelay` runs another build
//! instead). It needs PostgreSQL and RabbitMQ as the tests do, and sets up
//! through the test harness (`authrelay-testkit`): everything it creates (a
//! database, queues behind a random prefix) is removed at the end. Output: a
//! Markdown table on stdout and `bench-results.json` (`bench-results-drain.json`
//! in drain mode, `bench-results-backlog.json` in backlog mode), in the package's directory.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use authrelay::config::DatabaseConfig;
use authrelay::crypto::KeyRing;
use authrelay::db::Database;
use authrelay::job::Phase;
use authrelay::profile::{Actor, NewProfile, ProfileStore};
use authrelay::queue::settle::result_properties;
use authrelay_testkit::{AMQP_URL, Binary, Process, TestBroker, TestEnv, json_props};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use secrecy::SecretString;
use serde_json::{Value, json};

/// The allocator the `authrelay` binary uses, so that the bare pipeline (this
/// binary) is compared on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-bearer-token-0123456789";

#[derive(Debug, Clone, Copy)]
struct Sizes {
    drain_jobs: usize,
    /// Drain rounds per pipeline; the medians are reported.
    rounds: usize,
    latency_seconds: f64,
    burst_jobs: usize,
    memory_jobs: usize,
    /// Also measure prefetch 50/200/1000 and two worker processes.
    scaling: bool,
    /// The drain rounds only (throughput and CPU), to compare builds quickly.
    drain_only: bool,
    /// Post-call jobs in the backlog scenario (0: not run).
    backlog_jobs: usize,
    /// How long during-call jobs are sent at [`LIVE_RATE`] in the backlog scenario.
    backlog_live_seconds: f64,
    /// The backlog scenario only.
    backlog_only: bool,
}

/// During-call jobs per second in the backlog scenario (the issue's measurement).
const LIVE_RATE: f64 = 100.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` adds `--bench` after the mode.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("bare") => bare::run(&args[1..]).await,
        Some("full") | None => {
            bench(Sizes {
                drain_jobs: 20_000,
                rounds: 3,
                latency_seconds: 10.0,
                burst_jobs: 1000,
                memory_jobs: 10_000,
                scaling: true,
                drain_only: false,
                backlog_jobs: 60_000,
                backlog_live_seconds: 8.0,
                backlog_only: false,
            })
            .await
        }
        Some("quick") => {
            bench(Sizes {
                drain_jobs: 600,
                rounds: 1,
                latency_seconds: 2.0,
                burst_jobs: 200,
                memory_jobs: 150,
                scaling: false,
                drain_only: false,
                backlog_jobs: 1500,
                backlog_live_seconds: 1.0,
                backlog_only: false,
            })
            .await
        }
        Some("drain") => {
            bench(Sizes {
                drain_jobs: 20_000,
                rounds: 3,
                latency_seconds: 0.0,
                burst_jobs: 0,
                memory_jobs: 0,
                scaling: false,
                drain_only: true,
                backlog_jobs: 0,
                backlog_live_seconds: 0.0,
                backlog_only: false,
            })
            .await
        }
        Some("backlog") => {
            bench(Sizes {
                drain_jobs: 0,
                rounds: 3,
                latency_seconds: 0.0,
                burst_jobs: 0,
                memory_jobs: 0,
                scaling: false,
                drain_only: false,
                backlog_jobs: 60_000,
                backlog_live_seconds: 8.0,
                backlog_only: true,
            })
            .await
        }
        Some(other) => bail!("unknown mode `{other}`: use full, quick, drain or backlog"),
    }
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; 100 ticks/s on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident set size (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The upstream: a minimal HTTP server in its own runtime and thread, so it
/// does not share the measuring runtime's threads.
mod upstream {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    #[derive(Default)]
    pub struct Counters {
        pub token_requests: AtomicU64,
        pub requests: AtomicU64,
    }

    pub fn start() -> (SocketAddr, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let c = counters.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let big: Arc<Vec<u8>> = Arc::new(vec![b'x'; 1024 * 1024]);
                let app = Router::new()
                    .route("/ok", get(ok).post(ok))
                    .route(
                        "/big",
                        get(move || {
                            let big = big.clone();
                            async move { big.as_ref().clone() }
                        }),
                    )
                    .route("/token", post(token))
                    .with_state(c);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        (rx.recv().unwrap(), counters)
    }

    async fn ok(State(c): State<Arc<Counters>>, _headers: HeaderMap) -> impl IntoResponse {
        let started = Instant::now();
        c.requests.fetch_add(1, Ordering::Relaxed);
        let body = format!(r#"{{"ok":true,"handled_us":{}}}"#, started.elapsed().as_micros());
        ([("content-type", "application/json")], body)
    }

    async fn token(State(c): State<Arc<Counters>>) -> impl IntoResponse {
        let n = c.token_requests.fetch_add(1, Ordering::SeqCst);
        axum::Json(
            json!({"access_token": format!("bench-access-token-{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
    }
}

/// The bare pipeline: consume → HTTP request → confirmed publish → ack, with
/// none of authrelay's work. Run as a child process so its CPU is its own.
/// Same prefetch and concurrency as the worker it is compared with, the same
/// HTTP request per job, and a result message of the same shape.
mod bare {
    use super::*;

    pub async fn run(args: &[String]) -> anyhow::Result<()> {
        let arg = |i: usize| args.get(i).cloned().context("usage: bare QUEUE RESULTS_EXCHANGE PREFETCH CONCURRENCY N");
        let (queue, exchange) = (arg(0)?, arg(1)?);
        let prefetch: u16 = arg(2)?.parse()?;
        let concurrency: usize = arg(3)?.parse()?;
        let n: usize = arg(4)?.parse()?;
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
        let consume = conn.create_channel().await?;
        consume.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let publish = conn.create_channel().await?;
        publish.confirm_select(ConfirmSelectOptions::default()).await?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut consumer = consume
            .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        while done.load(Ordering::SeqCst) < n as u64 {
            let slot = slots.clone().acquire_owned().await?;
            let Some(delivery) = consumer.next().await else { break };
            let delivery = delivery?;
            let (http, publish, exchange, done) = (http.clone(), publish.clone(), exchange.clone(), done.clone());
            tasks.spawn(async move {
                let job: Value = serde_json::from_slice(&delivery.data).unwrap_or_default();
                let (result, routing_key) = run_job(&http, &job).await;
                let properties = result_properties(job["job_id"].as_str().unwrap_or_default());
                let confirm = publish
                    .basic_publish(
                        exchange.as_str().into(),
                        routing_key.as_str().into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &serde_json::to_vec(&result).unwrap(),
                        properties,
                    )
                    .await;
                if let Ok(confirm) = confirm {
                    let _ = confirm.await;
                }
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                done.fetch_add(1, Ordering::SeqCst);
                drop(slot);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Sends the job's request and builds a result of the contract's shape (the
    /// same fields and AMQP properties as authrelay's), so the broker and the
    /// results consumer carry the same message for both pipelines and the
    /// comparison measures what authrelay adds, not the size of the contract's
    /// result. Nothing is validated, resolved, decrypted or redacted, and only
    /// what the bench's own jobs use is read: GET, URL, query and headers (no
    /// method, body or timeout; a failed request is reported without an error).
    async fn run_job(http: &reqwest::Client, job: &Value) -> (Value, String) {
        let started_at = chrono::Utc::now();
        let (status, headers, body) = match request(http, &job["request"]).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers: serde_json::Map<String, Value> = response
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into()))
                    .collect();
                (status, headers, response.bytes().await.unwrap_or_default())
            }
            Err(_) => (0, Default::default(), Default::default()),
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into());
        let outcome = if (200..300).contains(&status) { "succeeded" } else { "failed" };
        let finished_at = chrono::Utc::now();
        let result = json!({
            "job_id": job["job_id"], "workspace_id": job["workspace_id"], "phase": job["phase"],
            "action_id": job["action_id"], "call_id": job["call_id"], "outcome": outcome, "attempts": 1,
            "response": {"status": status, "headers": headers, "body": body, "body_truncated": false},
            "error": null, "auth_profile_id": job["auth_profile_id"], "auth_profile_version": 1,
            "started_at": started_at, "finished_at": finished_at,
            "duration_ms": (finished_at - started_at).num_milliseconds(),
        });
        (result, format!("{}.{outcome}", job["phase"].as_str().unwrap_or_default()))
    }

    /// The request the job describes (URL, query, headers) with the bench's
    /// bearer token: the upstream gets the same requests from both pipelines.
    fn request(http: &reqwest::Client, request: &Value) -> reqwest::RequestBuilder {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut builder = http.get(request["url"].as_str().unwrap_or_default()).bearer_auth(TOKEN);
        if let Some(query) = request["query"].as_object() {
            builder = builder.query(&query.iter().map(|(k, v)| (k.as_str(), text(v))).collect::<Vec<_>>());
        }
        for (name, value) in request["headers"].as_object().into_iter().flatten() {
            builder = builder.header(name.as_str(), text(value));
        }
        builder
    }
}

struct Env {
    /// The database, AMQP prefix and state directory, removed when it goes.
    test_env: TestEnv,
    broker: TestBroker,
    results: lapin::Consumer,
    store: ProfileStore,
    upstream: SocketAddr,
    counters: Arc<upstream::Counters>,
    /// The worker: the `authrelay` binary of this build, or the one `AUTHRELAY_BENCH_BIN` names.
    worker_bin: Binary,
}

impl Env {
    async fn new() -> anyhow::Result<Self> {
        // Not a test: a full run rightly takes longer than a test binary's watchdog allows.
        let test_env = TestEnv::without_watchdog();
        let settings = DatabaseConfig {
            url: SecretString::from(test_env.db.url()),
            ca_file: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(10),
        };
        let (_db, pool) = Database::prepare(&settings).await?;
        let store = ProfileStore::new(pool, Arc::new(KeyRing::parse(&test_env.vars["AUTHRELAY_MASTER_KEYS"])?));
        let broker = TestBroker::new(test_env.names()).await;
        let channel = &broker.channel;
        let results_queue = format!("{}.bench-results", broker.names.prefix);
        channel
            .queue_declare(results_queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await?;
        TestBroker::bind(channel, &results_queue, &broker.names.results_exchange(), "#").await;
        let results = TestBroker::consume(channel, &results_queue).await;
        let (upstream, counters) = upstream::start();
        let binary = std::env::var_os("AUTHRELAY_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_authrelay")));
        let worker_bin = Binary::new(binary, &test_env);
        Ok(Self { test_env, broker, results, store, upstream, counters, worker_bin })
    }

    async fn profile(&self, name: &str, auth_type: &str, config: Value) -> anyhow::Result<String> {
        let p = self
            .store
            .create(
                &Actor("bench".into()),
                "bench",
                NewProfile { name: name.into(), auth_type: auth_type.into(), config, limits: serde_json::Value::Null },
            )
            .await?;
        Ok(p.id.to_string())
    }

    /// The jobs a profile's health counts as succeeded (last 24 h), as the workers wrote it.
    async fn health_succeeded(&self, profile: &str) -> anyhow::Result<u64> {
        let id = profile.parse()?;
        let health = self.store.health("bench", &[id]).await?;
        Ok(health.get(&id).map_or(0, |h| h.last_24h.succeeded))
    }

    fn job(&self, id: &str, phase: Phase, profile: &str, path: &str) -> Vec<u8> {
        // About 500 bytes, like a typical action.
        serde_json::to_vec(&json!({
            "job_id": id, "workspace_id": "bench", "phase": phase.as_str(), "action_id": "crm-contact-lookup",
            "call_id": "call-0000000000000000", "auth_profile_id": profile,
            "request": {"method": "GET", "url": format!("http://{}{path}?source=voice&campaign=benchmark", self.upstream),
                        "headers": {"Accept": "application/json", "X-Request-Source": "authrelay-bench"},
                        "query": {"limit": "10", "fields": "id,name,phone,email,company,owner,stage,updated_at"}, "timeout_ms": 5000},
            "max_attempts": 1
        }))
        .expect("job serializes")
    }

    async fn publish_many(&self, exchange: &str, routing_key: &str, bodies: Vec<Vec<u8>>) -> anyhow::Result<()> {
        let props = json_props();
        let mut confirms = Vec::with_capacity(bodies.len());
        for body in &bodies {
            confirms.push(
                self.broker
                    .channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions::default(),
                        body,
                        props.clone(),
                    )
                    .await?,
            );
        }
        for c in confirms {
            c.await?;
        }
        Ok(())
    }

    /// Waits for `n` results and parses them.
    async fn collect(&mut self, n: usize, wait: Duration) -> anyhow::Result<Vec<(Instant, Value)>> {
        parse_results(self.collect_raw(n, wait).await?)
    }

    /// Waits for `n` results, taking only a timestamp and the bytes of each:
    /// the measuring client must not compete for the CPU with what it measures.
    async fn collect_raw(&mut self, n: usize, wait: Duration) -> anyhow::Result<Vec<(Instant, Vec<u8>)>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut arrivals = Vec::with_capacity(n);
        while arrivals.len() < n {
            let next = tokio::time::timeout_at(deadline, self.results.next())
                .await
                .with_context(|| format!("only {} of {n} results arrived", arrivals.len()))?
                .context("results consumer closed")??;
            arrivals.push((Instant::now(), next.data));
        }
        Ok(arrivals)
    }

    fn bare_queue(&self) -> String {
        format!("{}.bare", self.broker.names.prefix)
    }

    /// The bare pipeline (this binary) as a child process, consuming `n` jobs from the bare queue.
    fn bare(&self, prefetch: u16, concurrency: usize, n: usize) -> anyhow::Result<Process> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args([
            "bare",
            &self.bare_queue(),
            &self.broker.names.results_exchange(),
            &prefetch.to_string(),
            &concurrency.to_string(),
            &n.to_string(),
        ]);
        Ok(Process::spawn(command, None))
    }

    /// An `authrelay run --roles worker` process on a port of its own. The
    /// bench's own `AUTHRELAY_LIVE_FIRST*` variables are passed on, to compare
    /// settings (`AUTHRELAY_LIVE_FIRST=off cargo bench --bench pipeline -- backlog`).
    fn worker(&self, extra: &[(&str, String)]) -> Process {
        let passed: Vec<(String, String)> = std::env::vars().filter(|(k, _)| passed_to_workers(k)).collect();
        let passed: Vec<(&str, String)> = passed.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        self.worker_bin.clone().envs(&passed).envs(extra).spawn(&["run", "--roles", "worker"])
    }

    /// Removes the bench's own queues; the test environment removes the rest
    /// (its database, exchanges and queues) when it is dropped.
    async fn cleanup(self) {
        for q in [format!("{}.bench-results", self.broker.names.prefix), self.bare_queue()] {
            if let Ok(ch) = self.broker.conn.create_channel().await {
                let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
                let _ = ch.close(200, "".into()).await;
            }
        }
        drop(self.store);
        drop(self.broker);
        drop(self.test_env);
    }
}

/// Stops a worker or the bare pipeline as an operator would (SIGTERM; SIGKILL
/// if it is still running after 30 s), and shows what it logged. Any way out
/// of the bench (an error, a panic) kills them instead: a failed run must not
/// leave a consumer behind on the broker.
fn stop(process: Process) {
    let log = process.stop(Duration::from_secs(30));
    if !log.trim().is_empty() {
        eprintln!("{}", log.trim_end());
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Drain {
    jobs_per_s: f64,
    /// CPU of the pipeline's own process(es) per job (ms).
    cpu_ms_per_job: f64,
    /// Where the rest of the machine's CPU went, per job (ms): the drain is
    /// bound by the whole machine's CPU when everything shares a few cores.
    /// None when RabbitMQ does not run on this machine (its CPU is then in "rest").
    broker_cpu_ms_per_job: Option<f64>,
    bench_cpu_ms_per_job: f64,
    machine_cpu_ms_per_job: f64,
}

impl Drain {
    /// The median of each measure on its own.
    fn median(rounds: &[Drain]) -> Drain {
        let each = |f: fn(&Drain) -> f64| median(rounds.iter().map(f).collect());
        Drain {
            jobs_per_s: each(|d| d.jobs_per_s),
            cpu_ms_per_job: each(|d| d.cpu_ms_per_job),
            broker_cpu_ms_per_job: rounds
                .iter()
                .map(|d| d.broker_cpu_ms_per_job)
                .collect::<Option<Vec<f64>>>()
                .map(median),
            bench_cpu_ms_per_job: each(|d| d.bench_cpu_ms_per_job),
            machine_cpu_ms_per_job: each(|d| d.machine_cpu_ms_per_job),
        }
    }
}

/// CPU time used so far: by the pipeline under test, by RabbitMQ (when it runs
/// on this machine), by this process (the upstream and the results client),
/// and by the whole machine.
struct Cpu {
    pipeline: Duration,
    /// None when RabbitMQ does not run on this machine.
    broker: Option<Duration>,
    bench: Duration,
    machine: Duration,
}

impl Cpu {
    fn since(&self, start: &Cpu) -> Cpu {
        Cpu {
            pipeline: self.pipeline.saturating_sub(start.pipeline),
            broker: self.broker.zip(start.broker).map(|(now, then)| now.saturating_sub(then)),
            bench: self.bench.saturating_sub(start.bench),
            machine: self.machine.saturating_sub(start.machine),
        }
    }
}

/// The local RabbitMQ node's process: the Erlang VM (`beam.smp`) that booted
/// `rabbit`. None when the broker runs elsewhere (another host, a container).
fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let boots_rabbit = args.windows(3).any(|w| w == [b"-s".as_slice(), b"rabbit", b"boot"]);
        (comm.trim() == "beam.smp" && boots_rabbit).then_some(pid)
    })
}

/// CPU time all cores spent busy (not idle, waiting for I/O or stolen by the hypervisor), from /proc/stat.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).take(8).filter_map(|t| t.parse().ok()).collect();
    let busy: u64 = ticks.iter().enumerate().filter(|(i, _)| ![3, 4, 7].contains(i)).map(|(_, t)| t).sum();
    // 100 ticks per second on Linux.
    Duration::from_millis(busy * 10)
}

/// The middle value (the upper one of an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Debug, Default, serde::Serialize)]
struct Latency {
    rate_per_s: f64,
    /// p50, p99, max of the time added (ms).
    authrelay_ms: [f64; 3],
    bare_ms: [f64; 3],
    /// authrelay's own part: job taken → result ready, minus the upstream's time.
    inside_ms: [f64; 3],
    /// p50, p99, max of each round; the figures above are their medians.
    authrelay_rounds: Vec<[f64; 3]>,
    bare_rounds: Vec<[f64; 3]>,
    /// authrelay's p99 − the bare pipeline's (ms; target at a tenth of peak ≤ 0.5).
    p99_minus_bare_ms: f64,
    /// authrelay's p99 ÷ the bare pipeline's (target at half of peak ≤ 1.1).
    p99_ratio: f64,
    /// Where the time goes: p50 and p99 (ms) of publish → taken, taken → result
    /// ready (minus the upstream), result ready → received; medians of rounds.
    authrelay_segments_ms: Segments,
    bare_segments_ms: Segments,
}

/// The median of each of p50, p99 and max on its own, over rounds.
fn median_each(rounds: &[[f64; 3]]) -> [f64; 3] {
    std::array::from_fn(|i| median(rounds.iter().map(|r| r[i]).collect()))
}

#[derive(Debug, serde::Serialize)]
struct Scaling {
    label: String,
    drain: Drain,
}

fn drain_stats(received: &[(Instant, Value)], cpu: Cpu) -> Drain {
    let first = received.first().map(|r| r.0).unwrap();
    let last = received.last().map(|r| r.0).unwrap();
    let n = (received.len() - 1).max(1) as f64;
    let per_job = |d: Duration| d.as_secs_f64() * 1000.0 / n;
    Drain {
        jobs_per_s: n / (last - first).as_secs_f64().max(1e-6),
        cpu_ms_per_job: per_job(cpu.pipeline),
        broker_cpu_ms_per_job: cpu.broker.map(per_job),
        bench_cpu_ms_per_job: per_job(cpu.bench),
        machine_cpu_ms_per_job: per_job(cpu.machine),
    }
}

async fn bench(sizes: Sizes) -> anyhow::Result<()> {
    let mut env = Env::new().await?;
    let outcome = scenarios(&mut env, sizes).await;
    env.cleanup().await;
    let report = outcome?;
    print_report(&report);
    // A drain-only or backlog-only run does not overwrite a full run's figures.
    let file = match (sizes.drain_only, sizes.backlog_only) {
        (true, _) => "bench-results-drain.json",
        (_, true) => "bench-results-backlog.json",
        _ => "bench-results.json",
    };
    std::fs::write(file, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {file}");
    Ok(())
}

#[derive(Debug, Default, serde::Serialize)]
struct Report {
    sizes: String,
    worker: Drain,
    bare: Drain,
    worker_rounds: Vec<Drain>,
    bare_rounds: Vec<Drain>,
    throughput_ratio: f64,
    cpu_ratio: f64,
    /// At half of the peak, then at a tenth of it.
    latency: [Latency; 2],
    burst_jobs: usize,
    burst_token_requests: u64,
    burst_p99_ms: f64,
    /// The same burst on another cold profile, spread over 3 worker processes.
    fleet_burst_token_requests: u64,
    fleet_burst_p99_ms: f64,
    memory_jobs: usize,
    memory_peak_rss_mib: f64,
    scaling: Vec<Scaling>,
    /// The drain with signing profiles (HMAC, SigV4) against bearer, same rounds.
    signing: Vec<SigningCost>,
    /// Live calls while a post-call backlog drains on the same worker.
    backlog: Option<Backlog>,
}

/// During-call latency at [`LIVE_RATE`] on an idle worker and while a post-call
/// backlog drains on it, and the backlog's drain rate without and with that
/// live traffic; rounds alternate, medians reported.
#[derive(Debug, Default, serde::Serialize)]
struct Backlog {
    jobs: usize,
    live_rate_per_s: f64,
    live_seconds: f64,
    /// During-call added latency p50, p99, max (ms): idle worker, then with the backlog.
    idle_ms: [f64; 3],
    with_backlog_ms: [f64; 3],
    /// The backlog drained alone, then while live traffic ran (jobs/s).
    undisturbed_jobs_per_s: f64,
    with_live_jobs_per_s: f64,
    /// with_backlog p99 ÷ idle p99 (target ≤ 2).
    p99_ratio: f64,
    /// with_live ÷ undisturbed drain rate (target ≥ 0.5).
    drain_ratio: f64,
    idle_rounds: Vec<[f64; 3]>,
    with_backlog_rounds: Vec<[f64; 3]>,
    undisturbed_rounds: Vec<f64>,
    with_live_rounds: Vec<f64>,
    /// Live jobs per round sent after the backlog had drained (left out of `with_backlog_ms`).
    live_jobs_after_backlog: Vec<usize>,
    /// Where the live jobs' time goes (see [`Segments`]), idle and with the backlog; medians of rounds.
    idle_segments_ms: Segments,
    with_backlog_segments_ms: Segments,
}

/// What signing every request costs: a drain with a signing profile, as ratios to bearer's.
#[derive(Debug, Default, serde::Serialize)]
struct SigningCost {
    label: String,
    drain: Drain,
    rounds: Vec<Drain>,
    throughput_vs_bearer: f64,
    cpu_vs_bearer: f64,
}

/// `n` during-call jobs published at once on a cold OAuth profile named
/// `name`, to the workers running now: token requests, and the p99 from
/// publish to result (ms).
async fn oauth_burst(env: &mut Env, name: &str, n: usize) -> anyhow::Result<(u64, f64)> {
    let oauth = env
        .profile(
            name,
            "oauth2_client_credentials",
            json!({"client_id": "bench", "client_secret": "bench-client-secret-0123", "token_endpoint": format!("http://{}/token", env.upstream)}),
        )
        .await?;
    eprintln!("burst: {n} during-call jobs on the cold OAuth profile {name}");
    let before = env.counters.token_requests.load(Ordering::SeqCst);
    let jobs: Vec<Vec<u8>> =
        (0..n).map(|i| env.job(&format!("{name}-{i}"), Phase::DuringCall, &oauth, "/ok")).collect();
    let start = Instant::now();
    env.publish_many(&env.broker.names.actions_exchange(), "during_call", jobs).await?;
    let received = env.collect(n, Duration::from_secs(120)).await?;
    let mut lat: Vec<f64> = received.iter().map(|(t, _)| (*t - start).as_secs_f64() * 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    if let Some((_, bad)) = received.iter().find(|(_, r)| r["outcome"] != "succeeded") {
        bail!("a burst job did not succeed: {bad}");
    }
    Ok((env.counters.token_requests.load(Ordering::SeqCst) - before, percentile(&lat, 99.0)))
}

async fn scenarios(env: &mut Env, sizes: Sizes) -> anyhow::Result<Report> {
    let mut report = Report { sizes: format!("{sizes:?}"), ..Default::default() };
    let bearer = env.profile("bench-bearer", "bearer", json!({"token": TOKEN})).await?;
    if sizes.backlog_only {
        report.backlog = Some(backlog(env, &bearer, sizes).await?);
        return Ok(report);
    }
    let n = sizes.drain_jobs;
    // A quorum queue like the phase queues, so both pipelines pay the same broker costs.
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), lapin::types::AMQPValue::LongString("quorum".into()));
    env.broker
        .channel
        .queue_declare(
            env.bare_queue().as_str().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            quorum,
        )
        .await?;

    // Signing profiles: each request signed in its attempt (the drain's target does not check).
    let signing_profiles = [
        (
            "hmac (standard_webhooks)",
            env.profile("bench-hmac", "hmac", json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "scheme": "standard_webhooks"}))
                .await?,
        ),
        (
            "aws_sigv4",
            env.profile(
                "bench-sigv4",
                "aws_sigv4",
                json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                       "region": "eu-west-1", "service": "execute-api"}),
            )
            .await?,
        ),
    ];

    // Rounds alternate the pipelines, so drift on the machine (other load,
    // CPU frequency, the broker's own housekeeping) weighs on all alike.
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let mut signed: Vec<Vec<Drain>> = signing_profiles.iter().map(|_| Vec::new()).collect();
    for round in 0..sizes.rounds {
        eprintln!("drain round {}/{}: {n} post-call jobs through authrelay", round + 1, sizes.rounds);
        ours.push(drain_authrelay(env, &format!("d{round}-"), n, &bearer, 1, &[]).await?);
        eprintln!("drain round {}/{}: {n} jobs through the bare pipeline", round + 1, sizes.rounds);
        bare.push(drain_bare(env, &format!("b{round}-"), n, &bearer, 64, 32).await?);
        for (i, (label, profile)) in signing_profiles.iter().enumerate() {
            eprintln!("drain round {}/{}: {n} post-call jobs signed with {label}", round + 1, sizes.rounds);
            signed[i].push(drain_authrelay(env, &format!("s{i}r{round}-"), n, profile, 1, &[]).await?);
        }
    }
    report.worker = Drain::median(&ours);
    report.bare = Drain::median(&bare);
    report.worker_rounds = ours;
    report.bare_rounds = bare;
    report.throughput_ratio = report.worker.jobs_per_s / report.bare.jobs_per_s;
    report.cpu_ratio = report.worker.cpu_ms_per_job / report.bare.cpu_ms_per_job;
    for ((label, _), rounds) in signing_profiles.iter().zip(signed) {
        let drain = Drain::median(&rounds);
        report.signing.push(SigningCost {
            label: (*label).to_owned(),
            throughput_vs_bearer: drain.jobs_per_s / report.worker.jobs_per_s,
            cpu_vs_bearer: drain.cpu_ms_per_job / report.worker.cpu_ms_per_job,
            drain,
            rounds,
        });
    }
    if sizes.drain_only {
        return Ok(report);
    }

    // Latency, during-call lane: at half the measured peak (the target) and at a
    // tenth of it (a machine with headroom), jobs straight to the queue as the
    // bare pipeline gets its jobs.
    let mut worker = env.worker(&[]);
    worker.wait_ready(Duration::from_secs(60)).await;
    let during_queue = env.broker.names.phase_queue(Phase::DuringCall);
    for (share, slot) in [(0.5, 0usize), (0.1, 1)] {
        let rate = (report.worker.jobs_per_s * share).max(1.0);
        let count = (rate * sizes.latency_seconds).ceil() as usize;
        // Rounds alternate like the drain's: one run's p99 hangs on a few stalls.
        let (mut ours, mut theirs, mut inside) = (Vec::new(), Vec::new(), Vec::new());
        let (mut our_parts, mut their_parts) = (Vec::new(), Vec::new());
        for round in 0..sizes.rounds {
            let of = format!("{}/{}", round + 1, sizes.rounds);
            eprintln!("latency round {of}: {count} during-call jobs at {rate:.0}/s through authrelay");
            let (added, own, parts) =
                latency(env, &bearer, count, rate, &format!("l{slot}r{round}-"), "", &during_queue).await?;
            ours.push(added);
            inside.extend(own);
            our_parts.push(parts);
            eprintln!("latency round {of}: the same through the bare pipeline");
            let bare_jobs = env.bare(128, 64, count)?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let bare_queue = env.bare_queue();
            let (added, _, parts) =
                latency(env, &bearer, count, rate, &format!("bl{slot}r{round}-"), "", &bare_queue).await?;
            theirs.push(added);
            their_parts.push(parts);
            stop(bare_jobs);
        }
        let (authrelay_ms, bare_ms) = (median_each(&ours), median_each(&theirs));
        report.latency[slot] = Latency {
            rate_per_s: rate,
            p99_minus_bare_ms: authrelay_ms[1] - bare_ms[1],
            p99_ratio: authrelay_ms[1] / bare_ms[1].max(1e-9),
            authrelay_ms,
            bare_ms,
            authrelay_segments_ms: median_segments(&our_parts),
            bare_segments_ms: median_segments(&their_parts),
            inside_ms: median_each(&inside),
            authrelay_rounds: ours,
            bare_rounds: theirs,
        };
    }

    // OAuth burst on a cold profile: one worker process, then three.
    let burst = sizes.burst_jobs;
    report.burst_jobs = burst;
    (report.burst_token_requests, report.burst_p99_ms) = oauth_burst(env, "bench-oauth", burst).await?;
    stop(worker);
    let mut fleet: Vec<Process> = (0..3).map(|_| env.worker(&[])).collect();
    for worker in &mut fleet {
        worker.wait_ready(Duration::from_secs(60)).await;
    }
    (report.fleet_burst_token_requests, report.fleet_burst_p99_ms) =
        oauth_burst(env, "bench-oauth-fleet", burst).await?;
    fleet.into_iter().for_each(stop);

    // Memory: large responses, capped in results.
    let m = sizes.memory_jobs;
    eprintln!("memory: {m} post-call jobs with 1 MiB responses");
    let jobs: Vec<Vec<u8>> = (0..m).map(|i| env.job(&format!("m{i}"), Phase::PostCall, &bearer, "/big")).collect();
    env.publish_many(&env.broker.names.actions_exchange(), "post_call", jobs).await?;
    let worker = env.worker(&[("AUTHRELAY_MAX_RESPONSE_BYTES", "65536".into())]);
    let pid = worker.pid();
    let received = env.collect(m, Duration::from_secs(900)).await?;
    report.memory_jobs = m;
    report.memory_peak_rss_mib = peak_rss_mib(pid);
    if let Some((_, bad)) = received.iter().find(|(_, r)| r["response"]["body_truncated"] != true) {
        bail!("a 1 MiB response was not capped: {}", bad["job_id"]);
    }
    stop(worker);

    // How cost grows with work in flight and with a second worker process.
    if sizes.scaling {
        for prefetch in [50u16, 200, 1000] {
            eprintln!("scaling: {n} jobs, prefetch {prefetch}");
            let settings = [
                ("AUTHRELAY_POST_CALL_PREFETCH", prefetch.to_string()),
                ("AUTHRELAY_POST_CALL_CONCURRENCY", (prefetch / 2).to_string()),
            ];
            let drain = drain_authrelay(env, &format!("p{prefetch}-"), n, &bearer, 1, &settings).await?;
            report.scaling.push(Scaling { label: format!("1 worker, prefetch {prefetch}"), drain });
        }
        eprintln!("scaling: {n} jobs, 2 worker processes");
        let drain = drain_authrelay(env, "w2-", n, &bearer, 2, &[]).await?;
        report.scaling.push(Scaling { label: "2 workers, default prefetch (64) each".into(), drain });
    }
    if sizes.backlog_jobs > 0 {
        report.backlog = Some(backlog(env, &bearer, sizes).await?);
    }
    Ok(report)
}

/// Live calls first: during-call jobs at [`LIVE_RATE`] on an idle worker, and
/// while the same worker drains a pre-filled post-call backlog; the backlog
/// drained alone, and while that live traffic runs.
async fn backlog(env: &mut Env, profile: &str, sizes: Sizes) -> anyhow::Result<Backlog> {
    let (n, seconds) = (sizes.backlog_jobs, sizes.backlog_live_seconds);
    let count = (LIVE_RATE * seconds).ceil() as usize;
    let during_queue = env.broker.names.phase_queue(Phase::DuringCall);
    let mut b = Backlog { jobs: n, live_rate_per_s: LIVE_RATE, live_seconds: seconds, ..Default::default() };
    let (mut idle_segments, mut with_segments) = (Vec::new(), Vec::new());
    for round in 0..sizes.rounds {
        let of = format!("{}/{}", round + 1, sizes.rounds);
        eprintln!("backlog round {of}: {n} post-call jobs drained alone");
        let alone = drain_authrelay(env, &format!("ba{round}-"), n, profile, 1, &[]).await?;
        b.undisturbed_rounds.push(alone.jobs_per_s);

        eprintln!("backlog round {of}: {count} during-call jobs at {LIVE_RATE:.0}/s on an idle worker");
        let mut worker = env.worker(&[]);
        worker.wait_ready(Duration::from_secs(60)).await;
        let idle = live_alone(env, profile, count, &format!("bi{round}-"), &during_queue).await;
        stop(worker);
        let (idle, idle_parts) = idle?;
        b.idle_rounds.push(idle);
        idle_segments.push(idle_parts);

        eprintln!("backlog round {of}: the same while {n} post-call jobs drain on that worker");
        let tag = format!("bb{round}-");
        let jobs: Vec<Vec<u8>> =
            (0..n).map(|i| env.job(&format!("{tag}{i}"), Phase::PostCall, profile, "/ok")).collect();
        env.publish_many(&env.broker.names.actions_exchange(), "post_call", jobs).await?;
        let mut worker = env.worker(&[]);
        worker.wait_ready(Duration::from_secs(60)).await;
        let both = live_with_backlog(env, profile, count, n, &format!("bl{round}-"), &tag, &during_queue).await;
        stop(worker);
        let (live_ms, drain_rate, after, parts) = both?;
        with_segments.push(parts);
        b.with_backlog_rounds.push(live_ms);
        b.with_live_rounds.push(drain_rate);
        b.live_jobs_after_backlog.push(after);
    }
    b.idle_ms = median_each(&b.idle_rounds);
    b.idle_segments_ms = median_segments(&idle_segments);
    b.with_backlog_segments_ms = median_segments(&with_segments);
    b.with_backlog_ms = median_each(&b.with_backlog_rounds);
    b.undisturbed_jobs_per_s = median(b.undisturbed_rounds.clone());
    b.with_live_jobs_per_s = median(b.with_live_rounds.clone());
    b.p99_ratio = b.with_backlog_ms[1] / b.idle_ms[1].max(1e-9);
    b.drain_ratio = b.with_live_jobs_per_s / b.undisturbed_jobs_per_s.max(1e-9);
    Ok(b)
}

/// The call platform's live side: a connection of its own publishes
/// during-call jobs and receives their results (a queue bound to
/// `during_call.*`), as a platform's live-call service would, apart from
/// whoever drains the post-call results. (Sharing the bench's one connection,
/// a live job's publish and result queued behind thousands of backlog results
/// in the bench itself, which is not authrelay's time.)
struct LivePath {
    _connection: Connection,
    channel: lapin::Channel,
    results: lapin::Consumer,
}

impl LivePath {
    async fn open(env: &Env) -> anyhow::Result<Self> {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let results_exchange = env.broker.names.results_exchange();
        let queue = TestBroker::private_queue(&channel, Some((&results_exchange, "during_call.*"))).await;
        let results = TestBroker::consume(&channel, queue.as_str()).await;
        Ok(Self { _connection: connection, channel, results })
    }

    /// Sends `bodies` at [`LIVE_RATE`] and collects as many results: when each
    /// was sent, and each result with its arrival.
    async fn run(
        &mut self,
        bodies: Vec<Vec<u8>>,
        during_queue: &str,
    ) -> anyhow::Result<(Vec<Instant>, Vec<(Instant, Vec<u8>)>)> {
        let count = bodies.len();
        let mut sender = send_at_rate(self.channel.clone(), bodies, LIVE_RATE, "", during_queue);
        let mut sent_at: Option<Vec<Instant>> = None;
        let mut arrivals = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while arrivals.len() < count {
            tokio::select! {
                sent = &mut sender, if sent_at.is_none() => sent_at = Some(sent??),
                next = tokio::time::timeout_at(deadline, self.results.next()) => match next {
                    Ok(Some(Ok(d))) => arrivals.push((Instant::now(), d.data)),
                    Ok(_) => bail!("the live results consumer closed"),
                    Err(_) => bail!("live: only {} of {count} results", arrivals.len()),
                },
            }
        }
        let sent_at = match sent_at {
            Some(sent_at) => sent_at,
            None => sender.await??,
        };
        Ok((sent_at, arrivals))
    }
}

/// `count` during-call jobs at [`LIVE_RATE`] on an idle worker, over the live
/// path: their p50/p99/max added latency (ms) and where it goes.
async fn live_alone(
    env: &mut Env,
    profile: &str,
    count: usize,
    tag: &str,
    during_queue: &str,
) -> anyhow::Result<([f64; 3], Segments)> {
    let bodies: Vec<Vec<u8>> =
        (0..count).map(|i| env.job(&format!("{tag}{i}"), Phase::DuringCall, profile, "/ok")).collect();
    let mut path = LivePath::open(env).await?;
    let clock = (Instant::now(), chrono::Utc::now());
    let (sent_at, arrivals) = path.run(bodies, during_queue).await?;
    // The bench's own results queue got them too: take them out of the way.
    env.collect_raw(count, Duration::from_secs(600)).await?;
    let received = parse_results(arrivals)?;
    if let Some((_, bad)) = received.iter().find(|(_, r)| r["outcome"] != "succeeded") {
        bail!("a live job did not succeed: {bad}");
    }
    let added = added_latency(&received, tag, &sent_at);
    Ok((spread(&added), segments(&received, tag, &sent_at, clock)))
}

/// `count` during-call jobs at [`LIVE_RATE`] (tagged `live_tag`, over the live
/// path) while the `n` post-call jobs already queued (tagged `backlog_tag`)
/// drain. Returns the live jobs' p50/p99/max added latency (ms) over those sent
/// while the backlog was still draining, the backlog's drain rate while live
/// jobs were being sent (jobs/s), and how many live jobs were sent after the
/// backlog had drained.
async fn live_with_backlog(
    env: &mut Env,
    profile: &str,
    count: usize,
    n: usize,
    live_tag: &str,
    backlog_tag: &str,
    during_queue: &str,
) -> anyhow::Result<([f64; 3], f64, usize, Segments)> {
    let bodies: Vec<Vec<u8>> =
        (0..count).map(|i| env.job(&format!("{live_tag}{i}"), Phase::DuringCall, profile, "/ok")).collect();
    let mut path = LivePath::open(env).await?;
    let clock = (Instant::now(), chrono::Utc::now());
    // The bench's results queue gets every result, live ones included.
    let (live, all) =
        tokio::join!(path.run(bodies, during_queue), env.collect_raw(count + n, Duration::from_secs(600)));
    let ((sent_at, live_arrivals), all) = (live?, all?);
    let received = parse_results(all)?;
    let is_backlog = |r: &Value| r["job_id"].as_str().is_some_and(|id| id.starts_with(backlog_tag));
    if let Some((_, bad)) = received.iter().find(|(_, r)| r["outcome"] != "succeeded") {
        bail!("a backlog-scenario job did not succeed: {bad}");
    }
    let backlog_done: Vec<Instant> = received.iter().filter(|(_, r)| is_backlog(r)).map(|(at, _)| *at).collect();
    let (first_sent, last_sent) = (sent_at[0], sent_at[sent_at.len() - 1]);
    let backlog_end = backlog_done.iter().copied().max().unwrap_or(last_sent);
    // The drain rate over the time live jobs were being sent (or until the backlog was done).
    let window_end = backlog_end.min(last_sent);
    let in_window = backlog_done.iter().filter(|at| **at >= first_sent && **at <= window_end).count();
    let drain_rate = in_window as f64 / (window_end - first_sent).as_secs_f64().max(1e-6);
    let live = parse_results(live_arrivals)?;
    let during: Vec<(Instant, Value)> =
        live.into_iter().filter(|(_, r)| sent_index(r, live_tag).is_some_and(|i| sent_at[i] <= backlog_end)).collect();
    let after = count - during.len();
    let added = added_latency(&during, live_tag, &sent_at);
    if added.is_empty() {
        bail!("backlog: the backlog drained before any live job was sent; make it larger");
    }
    Ok((spread(&added), drain_rate, after, segments(&during, live_tag, &sent_at, clock)))
}

/// p50, p99 and max of sorted values.
fn spread(sorted: &[f64]) -> [f64; 3] {
    [percentile(sorted, 50.0), percentile(sorted, 99.0), sorted.last().copied().unwrap_or(0.0)]
}

/// Which of the jobs tagged `tag` a result answers.
fn sent_index(r: &Value, tag: &str) -> Option<usize> {
    r["job_id"].as_str()?.strip_prefix(tag)?.parse().ok()
}

/// Publish → result time minus the upstream's own handling time (ms), sorted,
/// of each result whose job is one of `sent_at`'s.
fn added_latency(received: &[(Instant, Value)], tag: &str, sent_at: &[Instant]) -> Vec<f64> {
    let mut added: Vec<f64> = received
        .iter()
        .filter_map(|(at, r)| {
            let sent_at = sent_at.get(sent_index(r, tag)?)?;
            let upstream_us = handled_us(&r["response"]["body"])?;
            Some((*at - *sent_at).as_secs_f64() * 1000.0 - upstream_us / 1000.0)
        })
        .collect();
    added.sort_by(f64::total_cmp);
    added
}

/// Publishes `bodies` at `rate` per second on a task of its own; returns when
/// each was published. It keeps its schedule and catches up after a stall
/// rather than skipping sends, so the offered rate holds; it does not wait for
/// confirms, so it keeps its pace.
fn send_at_rate(
    channel: lapin::Channel,
    bodies: Vec<Vec<u8>>,
    rate: f64,
    exchange: &str,
    routing_key: &str,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<Instant>>> {
    let (exchange, routing_key) = (exchange.to_owned(), routing_key.to_owned());
    let interval = Duration::from_secs_f64(1.0 / rate);
    tokio::spawn(async move {
        let props = json_props();
        let mut sent_at = Vec::with_capacity(bodies.len());
        let mut next_send = tokio::time::Instant::now();
        for body in &bodies {
            tokio::time::sleep_until(next_send).await;
            sent_at.push(Instant::now());
            drop(
                channel
                    .basic_publish(
                        exchange.as_str().into(),
                        routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        body,
                        props.clone(),
                    )
                    .await?,
            );
            next_send += interval;
        }
        anyhow::Ok(sent_at)
    })
}

/// `n` post-call jobs pre-filled, then drained by `workers` authrelay
/// processes; the clock and the CPU count start at the first result. Health
/// is on, as in production: the profile's health must count every job once
/// the workers have stopped (they flush on the way out).
async fn drain_authrelay(
    env: &mut Env,
    tag: &str,
    n: usize,
    profile: &str,
    workers: usize,
    settings: &[(&str, String)],
) -> anyhow::Result<Drain> {
    let counted_before = env.health_succeeded(profile).await?;
    let jobs: Vec<Vec<u8>> = (0..n).map(|i| env.job(&format!("{tag}{i}"), Phase::PostCall, profile, "/ok")).collect();
    env.publish_many(&env.broker.names.actions_exchange(), "post_call", jobs).await?;
    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(env.worker(settings));
    }
    let pids: Vec<u32> = children.iter().map(Process::pid).collect();
    let drain = measure_drain(env, n, &pids).await;
    children.into_iter().for_each(stop);
    let counted = env.health_succeeded(profile).await? - counted_before;
    if drain.is_ok() && counted < n as u64 {
        bail!("the profile's health counted {counted} of the {n} drained jobs");
    }
    drain
}

/// The same through the bare pipeline.
async fn drain_bare(
    env: &mut Env,
    tag: &str,
    n: usize,
    profile: &str,
    prefetch: u16,
    concurrency: usize,
) -> anyhow::Result<Drain> {
    let jobs: Vec<Vec<u8>> = (0..n).map(|i| env.job(&format!("{tag}{i}"), Phase::PostCall, profile, "/ok")).collect();
    env.publish_many("", &env.bare_queue(), jobs).await?;
    let child = env.bare(prefetch, concurrency, n)?;
    let drain = measure_drain(env, n, &[child.pid()]).await;
    stop(child);
    drain
}

async fn measure_drain(env: &mut Env, n: usize, pids: &[u32]) -> anyhow::Result<Drain> {
    let mut received = env.collect(1, Duration::from_secs(120)).await?;
    let broker = broker_pid();
    let cpu = || Cpu {
        pipeline: pids.iter().map(|pid| cpu_time(*pid)).sum(),
        broker: broker.map(cpu_time),
        bench: cpu_time(std::process::id()),
        machine: machine_busy(),
    };
    let start = cpu();
    let rest = env.collect_raw(n - 1, Duration::from_secs(600)).await?;
    let used = cpu().since(&start);
    received.extend(parse_results(rest)?);
    let drain = drain_stats(&received, used);
    if let Some((_, bad)) = received.iter().find(|(_, r)| r["outcome"] != "succeeded") {
        bail!("a drain job did not succeed: {bad}");
    }
    Ok(drain)
}

/// Publishes `count` jobs at `rate` per second; returns p50/p99/max of
/// publish→result time minus the upstream's own handling time, in ms.
///
/// The measuring client must not be what is measured: bodies are built before
/// the clock starts, the sender runs on its own task (it keeps its schedule and
/// catches up after a stall rather than skipping sends, so the offered rate
/// holds; latency runs from each actual publish), and the receiver only takes a
/// timestamp and keeps the bytes; results are parsed after the run.
async fn latency(
    env: &mut Env,
    profile: &str,
    count: usize,
    rate: f64,
    tag: &str,
    exchange: &str,
    routing_key: &str,
) -> anyhow::Result<([f64; 3], Option<[f64; 3]>, Segments)> {
    let bodies: Vec<Vec<u8>> =
        (0..count).map(|i| env.job(&format!("{tag}{i}"), Phase::DuringCall, profile, "/ok")).collect();
    // Results carry wall-clock times (the pipelines' own clocks are this machine's): one pair to convert.
    let clock = (Instant::now(), chrono::Utc::now());
    let mut sender = send_at_rate(env.broker.channel.clone(), bodies, rate, exchange, routing_key);
    let mut sent_at: Option<Vec<Instant>> = None;
    let mut arrivals: Vec<(Instant, Vec<u8>)> = Vec::with_capacity(count);
    let wait = Duration::from_secs_f64(count as f64 / rate) + Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + wait;
    let collected: anyhow::Result<()> = async {
        while arrivals.len() < count {
            tokio::select! {
                // A failed send is the error to report, not the results that never came.
                sent = &mut sender, if sent_at.is_none() => sent_at = Some(sent??),
                next = tokio::time::timeout_at(deadline, env.results.next()) => match next {
                    Ok(Some(Ok(d))) => arrivals.push((Instant::now(), d.data)),
                    Ok(_) => bail!("results consumer closed"),
                    Err(_) => bail!("latency: only {} of {count} results", arrivals.len()),
                },
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = collected {
        sender.abort();
        return Err(e);
    }
    let sent_at = match sent_at {
        Some(sent_at) => sent_at,
        None => sender.await??,
    };
    let received = parse_results(arrivals)?;
    let added = added_latency(&received, tag, &sent_at);
    if added.len() < count {
        bail!("latency: {} of {count} results were not this run's successful jobs", count - added.len());
    }
    let end_to_end = spread(&added);
    // authrelay's results say when it took the job and when the result was
    // ready: its own time, without the broker's queueing (the bare pipeline's do not).
    let mut inside: Vec<f64> = received
        .iter()
        .filter_map(|(_, r)| {
            let at = |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str()?).ok();
            let upstream_us = handled_us(&r["response"]["body"])?;
            let span = at("finished_at")? - at("started_at")?;
            Some(span.num_microseconds()? as f64 / 1000.0 - upstream_us / 1000.0)
        })
        .collect();
    inside.sort_by(f64::total_cmp);
    let inside =
        (!inside.is_empty()).then(|| [percentile(&inside, 50.0), percentile(&inside, 99.0), *inside.last().unwrap()]);
    let segments = segments(&received, tag, &sent_at, clock);
    Ok((end_to_end, inside, segments))
}

/// p50 and p99 (ms) of three parts of each job's time: publish → taken by the
/// pipeline (`started_at`; broker and delivery), taken → result ready
/// (`finished_at`, minus the upstream's own time), result ready → received by
/// the bench (confirmed publish, routing, delivery). Both pipelines' results
/// carry those times, so this says in which part authrelay's extra time goes.
type Segments = [[f64; 2]; 3];

fn segments(
    received: &[(Instant, Value)],
    tag: &str,
    sent_at: &[Instant],
    clock: (Instant, chrono::DateTime<chrono::Utc>),
) -> Segments {
    let wall =
        |at: Instant| clock.1 + chrono::Duration::from_std(at.saturating_duration_since(clock.0)).unwrap_or_default();
    let ms = |d: chrono::Duration| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
    let mut parts: [Vec<f64>; 3] = Default::default();
    for (arrived, r) in received {
        let at =
            |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str()?).ok().map(|t| t.with_timezone(&chrono::Utc));
        let (Some(sent), Some(started), Some(finished), Some(upstream_us)) = (
            sent_index(r, tag).and_then(|i| sent_at.get(i)),
            at("started_at"),
            at("finished_at"),
            handled_us(&r["response"]["body"]),
        ) else {
            continue;
        };
        parts[0].push(ms(started - wall(*sent)));
        parts[1].push(ms(finished - started) - upstream_us / 1000.0);
        parts[2].push(ms(wall(*arrived) - finished));
    }
    parts.map(|mut part| {
        part.sort_by(f64::total_cmp);
        [percentile(&part, 50.0), percentile(&part, 99.0)]
    })
}

/// The median of each figure on its own, over rounds.
fn median_segments(rounds: &[Segments]) -> Segments {
    std::array::from_fn(|i| std::array::from_fn(|j| median(rounds.iter().map(|r| r[i][j]).collect())))
}

fn parse_results(arrivals: Vec<(Instant, Vec<u8>)>) -> anyhow::Result<Vec<(Instant, Value)>> {
    arrivals.into_iter().map(|(at, data)| Ok((at, serde_json::from_slice(&data)?))).collect()
}

/// The upstream's own handling time, from a result's response body (JSON, or JSON as text).
fn handled_us(body: &Value) -> Option<f64> {
    body["handled_us"].as_f64().or_else(|| {
        body.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()).and_then(|v| v["handled_us"].as_f64())
    })
}

fn print_report(r: &Report) {
    let parts = |s: &Segments| s.iter().map(|[p50, p99]| format!("{p50:.2}/{p99:.2}")).collect::<Vec<_>>().join(" · ");
    println!("| measure | authrelay | bare pipeline | ratio / target |");
    println!("|---|---|---|---|");
    if r.worker.jobs_per_s > 0.0 {
        print_drain(r);
    }
    for (l, what) in r.latency.iter().zip(["half of peak", "a tenth of peak"]) {
        if l.rate_per_s == 0.0 {
            continue; // not measured (drain mode)
        }
        let [a, b] = [l.authrelay_ms, l.bare_ms];
        let target = if what == "half of peak" {
            format!("p99 {:.2} × bare (≤ 1.1)", l.p99_ratio)
        } else {
            format!("p99 {:+.2} ms vs bare (≤ +0.5)", l.p99_minus_bare_ms)
        };
        println!(
            "| during-call added latency p50 / p99 / max (ms, median of rounds), {what} ({:.0}/s) | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {target} |",
            l.rate_per_s, a[0], a[1], a[2], b[0], b[1], b[2]
        );
        let i = l.inside_ms;
        println!(
            "| … of which inside authrelay (job taken → result ready), {what} | {:.2} / {:.2} / {:.2} | – | – |",
            i[0], i[1], i[2]
        );
        println!(
            "| … p50/p99 of publish → taken · taken → result ready (minus upstream) · result ready → received, {what} | {} | {} | – |",
            parts(&l.authrelay_segments_ms),
            parts(&l.bare_segments_ms)
        );
    }
    if let Some(b) = &r.backlog {
        let [i, w] = [b.idle_ms, b.with_backlog_ms];
        println!(
            "| during-call added latency p50 / p99 / max (ms) at {:.0}/s: idle worker vs while {} post-call jobs drain on it | {:.2} / {:.2} / {:.2} vs {:.2} / {:.2} / {:.2} | – | p99 {:.2} × idle (≤ 2) |",
            b.live_rate_per_s, b.jobs, i[0], i[1], i[2], w[0], w[1], w[2], b.p99_ratio
        );
        println!(
            "| backlog drain (jobs/s): alone vs while the live jobs run | {:.0} vs {:.0} | – | {:.2} (≥ 0.5) |",
            b.undisturbed_jobs_per_s, b.with_live_jobs_per_s, b.drain_ratio
        );
        println!(
            "| … live p50/p99 of publish → taken · taken → result ready (minus upstream) · result ready → received: idle vs with the backlog | {} vs {} | – | – |",
            parts(&b.idle_segments_ms),
            parts(&b.with_backlog_segments_ms)
        );
    }
    print_extras(r);
}

/// The drain rows of the table.
fn print_drain(r: &Report) {
    println!(
        "| drain throughput (jobs/s, median of rounds) | {:.0} | {:.0} | {:.2} (≥ 0.9) |",
        r.worker.jobs_per_s, r.bare.jobs_per_s, r.throughput_ratio
    );
    println!(
        "| CPU per job (ms) | {:.3} | {:.3} | {:.2} (≤ 1.3) |",
        r.worker.cpu_ms_per_job, r.bare.cpu_ms_per_job, r.cpu_ratio
    );
    let split = |d: &Drain| {
        let broker = d.broker_cpu_ms_per_job.unwrap_or(0.0);
        // /proc counts in 10 ms ticks: the parts can add up to a little more than the whole.
        let rest = (d.machine_cpu_ms_per_job - d.cpu_ms_per_job - broker - d.bench_cpu_ms_per_job).max(0.0);
        let broker = d.broker_cpu_ms_per_job.map_or("n/a (not local)".into(), |b| format!("{b:.3}"));
        format!(
            "{:.3} + {broker} + {:.3} + {rest:.3} = {:.3}",
            d.cpu_ms_per_job, d.bench_cpu_ms_per_job, d.machine_cpu_ms_per_job
        )
    };
    println!(
        "| whole machine CPU per job (ms): pipeline + broker + bench (upstream, client) + rest = all | {} | {} | {:.2} |",
        split(&r.worker),
        split(&r.bare),
        r.worker.machine_cpu_ms_per_job / r.bare.machine_cpu_ms_per_job
    );
    for cost in &r.signing {
        println!(
            "| drain signed with {} (jobs/s; CPU ms per job) | {:.0}; {:.3} | – | {:.2} × bearer's throughput; {:.2} × its CPU |",
            cost.label, cost.drain.jobs_per_s, cost.drain.cpu_ms_per_job, cost.throughput_vs_bearer, cost.cpu_vs_bearer
        );
    }
}

/// The burst, memory and scaling rows, and the rounds behind the medians.
fn print_extras(r: &Report) {
    if r.burst_jobs > 0 {
        println!("| OAuth burst: token requests for {} jobs | {} | – | = 1 |", r.burst_jobs, r.burst_token_requests);
        println!("| OAuth burst p99 (ms) | {:.1} | – | – |", r.burst_p99_ms);
        println!(
            "| OAuth burst on 3 worker processes: token requests for {} jobs | {} | – | = 1 |",
            r.burst_jobs, r.fleet_burst_token_requests
        );
        println!("| OAuth burst on 3 worker processes p99 (ms) | {:.1} | – | – |", r.fleet_burst_p99_ms);
        println!(
            "| peak RSS, {} jobs with 1 MiB responses (MiB) | {:.1} | – | ≤ 256 |",
            r.memory_jobs, r.memory_peak_rss_mib
        );
    }
    if !r.scaling.is_empty() {
        println!();
        println!("| scaling (post-call drain) | jobs/s | CPU per job (ms) |");
        println!("|---|---|---|");
        for s in &r.scaling {
            println!("| {} | {:.0} | {:.3} |", s.label, s.drain.jobs_per_s, s.drain.cpu_ms_per_job);
        }
    }
    let rounds = |d: &[Drain]| d.iter().map(|d| format!("{:.0}", d.jobs_per_s)).collect::<Vec<_>>().join(", ");
    println!();
    if !r.worker_rounds.is_empty() {
        println!(
            "Drain rounds (jobs/s): authrelay {}; bare {}. Medians above.",
            rounds(&r.worker_rounds),
            rounds(&r.bare_rounds)
        );
    }
    let p99s = |rounds: &[[f64; 3]]| rounds.iter().map(|r| format!("{:.1}", r[1])).collect::<Vec<_>>().join(", ");
    for (l, what) in r.latency.iter().zip(["half of peak", "a tenth of peak"]).filter(|(l, _)| l.rate_per_s > 0.0) {
        println!(
            "Latency p99 rounds (ms), {what}: authrelay {}; bare {}.",
            p99s(&l.authrelay_rounds),
            p99s(&l.bare_rounds)
        );
    }
    if let Some(b) = &r.backlog {
        let rates = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
        println!(
            "Backlog rounds: live p99 (ms) idle {}; with the backlog {}. Drain (jobs/s) alone {}; with live jobs {}. Live jobs sent after the backlog had drained (left out): {:?}.",
            p99s(&b.idle_rounds),
            p99s(&b.with_backlog_rounds),
            rates(&b.undisturbed_rounds),
            rates(&b.with_live_rounds),
            b.live_jobs_after_backlog
        );
    }
}

/// Settings of the bench's environment that reach its workers, for A/B runs:
/// live-first, the post-call lane's prefetch and concurrency, tokio's threads.
fn passed_to_workers(name: &str) -> bool {
    name.starts_with("AUTHRELAY_LIVE_FIRST")
        || name.starts_with("AUTHRELAY_POST_CALL_")
        || name == "TOKIO_WORKER_THREADS"
}
