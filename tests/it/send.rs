//! `authrelay send`: one job published with `reply_to`, its result printed,
//! the outcome as exit code (0 succeeded, 1 any other outcome, 2 no result).

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use authrelay::job::Phase;
use authrelay::queue::connect::connect;
use authrelay::queue::rpc::{Answer, call};
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::{closed_addr, silent_server};
use authrelay_testkit::{Binary, JobExt as _, TestBroker, TestEnv, job};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::authrelay;

/// Runs `authrelay send …` to its end, with `stdin` on its standard input.
async fn send(bin: &Binary, args: &[&str], stdin: Option<&Value>) -> Output {
    let mut command = tokio::process::Command::from(bin.command(args));
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(job) = stdin {
        input.write_all(job.to_string().as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("send ends").unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout; stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `job` to a file in the environment's directory; returns its path.
fn job_file(env: &TestEnv, job: &Value) -> String {
    let path = env.state_dir.0.join(format!("job-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, job.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_succeeds_prints_its_result_and_exits_0() {
    let app = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/lookup"))
        .and(header("authorization", "Bearer send-token-0123456789"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"contact": 42})))
        .expect(1)
        .mount(&target)
        .await;
    let profile = app
        .create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "send-token-0123456789"}}))
        .await;
    let j = job("send-ok", Phase::DuringCall).to(&format!("{}/lookup", target.uri())).profile(&profile);

    let out = send(&authrelay(&app.env), &["send", &job_file(&app.env, &j)], None).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("send-ok"), Some("succeeded")));
    assert_eq!(result["response"]["body"], json!({"contact": 42}));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("send-token-0123456789"));
    // The result also went to the results exchange, as for any job.
    assert_eq!(app.results.next(crate::WAIT).await["job_id"], "send-ok");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_fails_prints_its_result_and_exits_1() {
    let app = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/missing")).respond_with(ResponseTemplate::new(404)).mount(&target).await;
    let j = job("send-404", Phase::PreCall).to(&format!("{}/missing", target.uri()));

    let out = send(&authrelay(&app.env), &["send", &job_file(&app.env, &j)], None).await;

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!((result["outcome"].as_str(), result["error"]["kind"].as_str()), (Some("failed"), Some("http_status")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_from_standard_input_gets_a_generated_job_id_and_the_phase_of_the_flag() {
    let app = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(204)).expect(1).mount(&target).await;
    let mut j = job("unused", Phase::PostCall).to(&format!("{}/ok", target.uri()));
    let fields = j.as_object_mut().unwrap();
    fields.remove("job_id");
    fields.remove("phase");

    let out = send(&authrelay(&app.env), &["send", "--phase", "post_call", "-"], Some(&j)).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = stdout_json(&out);
    let id = result["job_id"].as_str().expect("a job id");
    assert!(uuid::Uuid::try_parse(id).is_ok(), "a generated id: {id}");
    assert!(stderr(&out).contains(id), "the generated id is named on stderr: {}", stderr(&out));
    assert_eq!(result["phase"], "post_call");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_worker_send_gives_up_after_its_timeout_and_exits_2() {
    let env = TestEnv::new();
    let _topology = TestBroker::new(env.names()).await; // declared, but nobody consumes
    let j = job("send-nobody", Phase::DuringCall).to("http://127.0.0.1:9/never");

    let started = Instant::now();
    let out = send(&authrelay(&env), &["send", "--timeout", "1500ms", &job_file(&env, &j)], None).await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("no result for job send-nobody within 1.5s"), "{err}");
}

#[tokio::test]
async fn the_library_call_answers_timed_out_when_no_reply_comes() {
    let env = TestEnv::new();
    let _topology = TestBroker::new(env.names()).await;
    let connection = connect(&authrelay_testkit::AMQP_URL.to_owned().into()).await.unwrap();
    let body = job("rpc-nobody", Phase::PreCall).to("http://127.0.0.1:9/").to_string();

    let answer = call(&connection, &env.names(), Phase::PreCall, body.as_bytes(), Duration::from_millis(300)).await;

    assert_eq!(answer.unwrap(), Answer::TimedOut);
    // The job waits on its queue for a worker.
    assert_eq!(TestBroker::new(env.names()).await.message_count(&env.names().phase_queue(Phase::PreCall)).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_topology_send_says_what_to_start_and_exits_2() {
    let env = TestEnv::new(); // nothing declared under its prefix
    let j = job("send-no-topology", Phase::DuringCall).to("http://127.0.0.1:9/");

    let out = send(&authrelay(&env), &["send", &job_file(&env, &j)], None).await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let exchange = env.names().actions_exchange();
    assert!(err.contains(&format!("the exchange `{exchange}` does not exist")), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "one error line: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_one_line_and_exit_2_within_the_timeout() {
    let env = TestEnv::new();
    let bin = authrelay(&env).env("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{}/%2f", closed_addr()));
    let j = job("send-no-broker", Phase::DuringCall).to("http://127.0.0.1:9/");

    let started = Instant::now();
    let out = send(&bin, &["send", "--timeout", "1s", &job_file(&env, &j)], None).await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: cannot reach RabbitMQ at 127.0.0.1:"), "{err}");
    assert!(!last.contains("guest:guest"), "no credentials in the message: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_never_speaks_amqp_holds_send_no_longer_than_its_timeout() {
    let env = TestEnv::new();
    let silent = silent_server().await;
    let bin = authrelay(&env).env("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{silent}/%2f"));
    let j = job("send-silent-broker", Phase::DuringCall).to("http://127.0.0.1:9/");

    let started = Instant::now();
    let out = send(&bin, &["send", "--timeout", "1s", &job_file(&env, &j)], None).await;

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Not the 15 s a whole AMQP handshake may take at start-up.
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(stderr(&out).contains("cannot reach RabbitMQ"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phase_that_disagrees_with_the_job_is_refused_before_anything_is_sent() {
    let env = TestEnv::new();
    let j = job("send-conflict", Phase::PostCall).to("http://127.0.0.1:9/");

    let out = send(&authrelay(&env), &["send", "--phase", "during_call", &job_file(&env, &j)], None).await;

    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the job's phase is `post_call` but --phase says `during_call`"), "{}", stderr(&out));
}
