//! The worker under test: the real app with every role, its own database and
//! AMQP prefix, and a `TestBroker` to publish jobs and read results.

use std::time::Duration;

use authrelay::app::Roles;
use serde_json::{Value, json};

use super::amqp::TestBroker;
use super::{TestApp, TestEnv, spawn_app_with};

pub const WAIT: Duration = Duration::from_secs(15);

pub struct Harness {
    pub app: TestApp,
    pub broker: TestBroker,
}

/// Starts the app with `env` (retry jitter off, so timings are exact).
pub async fn start_with(mut env: TestEnv) -> Harness {
    env.set("AUTHRELAY_RETRY_JITTER", "0");
    let prefix = env.vars["AUTHRELAY_AMQP_PREFIX"].clone();
    // Declared before the app starts, so the results queue is bound from the first job.
    let broker = TestBroker::new(&prefix).await;
    let app = spawn_app_with(env, Roles::ALL).await;
    Harness { app, broker }
}

pub async fn start() -> Harness {
    start_with(TestEnv::new()).await
}

/// A job of workspace `acme`.
pub fn job(id: &str, phase: &str, request: Value) -> Value {
    json!({"job_id": id, "workspace_id": "acme", "phase": phase, "action_id": "crm-lookup", "call_id": "call-1", "request": request})
}

/// `job` with more top-level fields.
pub fn with(mut job: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        job[k] = v.clone();
    }
    job
}
