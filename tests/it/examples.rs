//! The producer examples in `examples/` (Python with pika, Node with
//! amqplib) against the real broker and the app: each publishes a job with
//! `reply_to`, awaits its result and exits by its outcome. `scripts/test`
//! installs pika and `examples/node`'s packages when they are missing.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use authrelay_testkit::AMQP_URL;
use authrelay_testkit::app::{TestApp, spawn_worker};
use serde_json::{Value, json};
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program script` with the app's broker and prefix, and `TARGET_URL` etc.
async fn run_example(app: &TestApp, program: &str, script: &str, vars: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(program);
    command
        .arg(repo().join(script))
        .current_dir(repo())
        .env("AUTHRELAY_AMQP_URL", AMQP_URL)
        .env("AUTHRELAY_AMQP_PREFIX", &app.env.vars["AUTHRELAY_AMQP_PREFIX"])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("the example ends").unwrap()
}

/// The app, a target that wants the profile's token, and the variables that point an example at them.
async fn app_and_target() -> (TestApp, MockServer, Vec<(&'static str, String)>) {
    let app = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/v1/ping"))
        .and(header("authorization", "Bearer example-token-0123456789"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"pong": true})))
        .mount(&target)
        .await;
    let profile = app
        .create_profile(
            "acme",
            json!({"name": "Ping", "type": "bearer", "config": {"token": "example-token-0123456789"}}),
        )
        .await;
    let vars = vec![
        ("TARGET_URL", format!("{}/v1/ping", target.uri())),
        ("AUTH_PROFILE_ID", profile),
        ("WORKSPACE_ID", "acme".to_owned()),
    ];
    (app, target, vars)
}

/// The example succeeded, printed the result of the job it sent, and the
/// app published that result to the results exchange too.
async fn assert_answered(app: &TestApp, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {stderr}", String::from_utf8_lossy(&out.stdout));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the result as JSON on stdout");
    assert_eq!(printed["outcome"], "succeeded", "{printed}");
    assert_eq!(printed["response"]["body"], json!({"pong": true}));
    let published = app.results.next(WAIT).await;
    assert_eq!(published["job_id"], printed["job_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_publishes_a_job_and_prints_its_result() {
    let importable = std::process::Command::new("python3").args(["-c", "import pika"]).status();
    assert!(
        importable.is_ok_and(|s| s.success()),
        "the Python example needs pika: run scripts/test (or pip install pika)"
    );
    let (app, _target, vars) = app_and_target().await;

    let out = run_example(&app, "python3", "examples/python/producer.py", &vars).await;

    assert_answered(&app, &out).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_example_publishes_a_job_and_prints_its_result() {
    assert!(
        repo().join("examples/node/node_modules/amqplib").is_dir(),
        "the Node example needs amqplib: run scripts/test (or npm ci --prefix examples/node)"
    );
    let (app, _target, vars) = app_and_target().await;

    let out = run_example(&app, "node", "examples/node/producer.mjs", &vars).await;

    assert_answered(&app, &out).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_example_exits_1_when_the_job_fails() {
    let (app, _target, mut vars) = app_and_target().await;
    vars[0].1 = vars[0].1.replace("/v1/ping", "/v1/missing");

    let out = run_example(&app, "python3", "examples/python/producer.py", &vars).await;

    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["outcome"], "failed");
    app.stop().await;
}
