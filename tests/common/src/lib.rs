//! The one test harness of authrelay, shared by the integration tests
//! (`tests/it`) and the benchmark (`benches/pipeline`).
//!
//! # Layout
//! - [`env`]: [`TestEnv`], a test's own corner of the shared servers: a
//!   database, an AMQP prefix and a state directory, all removed at the end,
//!   and the environment variables the app is configured from.
//! - [`app`]: [`TestApp`], the real app run in process (the one way to start it).
//! - [`process`]: [`Binary`] and [`Process`], the real binary as a child
//!   process with its output captured.
//! - [`broker`]: [`TestBroker`], publishing jobs and reading queues on the
//!   shared RabbitMQ; [`tap`]: [`ResultTap`], every result, by job id.
//! - [`contracts`]: every job, result, profile event and API answer the
//!   harness sees, validated against `schemas/` and `docs/openapi.json`.
//! - [`jobs`]: the job builder ([`job`] and [`JobExt`]).
//! - [`metrics`]: reading one series from `/metrics`.
//! - [`proxy`]: [`TcpProxy`], to cut or freeze the way to a server.
//! - [`targets`]: HTTP targets on 127.0.0.1 that are slow, count, or misbehave.
//! - [`idp`]: [`idp::AuthServer`], a real OAuth 2.0 authorization server and the API it protects.
//! - [`wait`]: [`eventually`], the one bounded wait.
//!
//! Every test binary that uses the harness gets a watchdog (see [`watchdog`])
//! and, with `AUTHRELAY_TEST_LOG=debug`, the app's own log lines.

pub mod app;
pub mod broker;
pub mod contracts;
pub mod env;
pub mod idp;
pub mod jobs;
pub mod metrics;
pub mod process;
pub mod proxy;
pub mod sigv4;
pub mod tap;
pub mod targets;
pub mod tls;
pub mod wait;

pub use app::TestApp;
pub use broker::{Taken, TestBroker, json_props};
pub use contracts::{EventTap, Message};
pub use env::{TempDir, TestDb, TestEnv, new_key};
pub use jobs::{JobExt, deadline_in, ids_of, job, set_path};
pub use metrics::metric;
pub use process::{Binary, Process, timed_turn};
pub use proxy::TcpProxy;
pub use tap::{ResultTap, Tally};
pub use wait::{eventually, lazy};

use std::time::Duration;

/// The PostgreSQL server every test uses (trust authentication).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The RabbitMQ server every test uses.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Where the shared servers listen, for proxies in front of them.
pub const PG_ADDR: &str = "127.0.0.1:5432";
pub const AMQP_ADDR: &str = "127.0.0.1:5672";

/// A test binary that runs longer than this is hung: a hang must fail CI with
/// a message, not use up its whole time. libtest has already named the test
/// ("has been running for over 60 seconds") by the time this fires.
const BINARY_BUDGET: Duration = Duration::from_secs(15 * 60);

/// How long a cleanup run from `Drop` may take.
const CLEANUP_WAIT: Duration = Duration::from_secs(30);

/// Starts (once per binary) a watchdog that aborts the binary after 15
/// minutes, and honours `AUTHRELAY_TEST_LOG` (e.g. `debug`) by showing the
/// app's own log lines on stderr. [`TestEnv::new`] calls it.
pub fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        if let Ok(filter) = std::env::var("AUTHRELAY_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        }
        std::thread::spawn(|| {
            std::thread::sleep(BINARY_BUDGET);
            eprintln!("test binary still running after {BINARY_BUDGET:?}: a test is hung; aborting");
            std::process::abort();
        });
    });
}

/// Runs a guard's cleanup to completion from `Drop`, which runs inside the
/// test's runtime: on a thread with a runtime of its own, and bounded, so a
/// server that stopped answering fails to clean up instead of hanging the test.
pub fn cleanup_on_own_runtime(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if rt.block_on(async { tokio::time::timeout(CLEANUP_WAIT, cleanup).await }).is_err() {
            eprintln!("test cleanup did not finish within {CLEANUP_WAIT:?}; something may be left behind");
        }
    })
    .join();
}

/// Tries `attempt` up to five times, 200 ms apart: a busy server must not
/// make a test leave something behind.
async fn retried<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> Option<T> {
    for _ in 0..5 {
        if let Some(done) = attempt().await {
            return Some(done);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
