//! Hostile input: job messages no producer should send, and admin-API requests
//! no client should make. Each is refused with a clear error kind or status,
//! nothing crashes or stalls, nothing is stored, and the next valid job still
//! succeeds on the same lane.
//!
//! Jobs go through the real RabbitMQ (published straight to the phase queue, as
//! the contract allows); the only targets are wiremock servers on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use common::amqp::{TestBroker, json_props};
use common::{TestApp, TestEnv, spawn_app, spawn_app_with};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

struct Worker {
    app: TestApp,
    broker: TestBroker,
    target: MockServer,
}

async fn worker_with(mut env: TestEnv) -> Worker {
    env.set("AUTHRELAY_RETRY_JITTER", "0");
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let app = spawn_app_with(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&target)
        .await;
    Worker { app, broker, target }
}

async fn worker() -> Worker {
    worker_with(TestEnv::new()).await
}

fn job(id: &str, lane: Phase, url: &str) -> Value {
    json!({"job_id": id, "workspace_id": "acme", "phase": lane.as_str(), "action_id": "crm", "request": {"url": url}})
}

/// Sets `path` in a job (creating nothing: a missing parent leaves the job as is); `None` removes it.
fn set_path(root: &mut Value, path: &[&str], value: Option<Value>) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = root;
    for key in parents {
        node = node.get_mut(*key).expect("the parent exists in the base job");
    }
    let obj = node.as_object_mut().expect("the parent is an object");
    match value {
        Some(v) => obj.insert((*last).to_owned(), v),
        None => obj.remove(*last),
    };
}

impl Worker {
    fn ok_url(&self) -> String {
        format!("{}/ok", self.target.uri())
    }

    async fn publish_raw(&self, lane: Phase, body: &[u8], properties: BasicProperties) {
        self.broker.publish("", &self.broker.names.phase_queue(lane), body, properties).await;
    }

    async fn publish(&self, lane: Phase, message: &Value) {
        self.publish_raw(lane, &serde_json::to_vec(message).unwrap(), json_props()).await;
    }

    /// Publishes a valid job after the hostile ones, then collects `answered`
    /// results besides its own and `parked` parked messages. The valid job
    /// must succeed: the lane kept going.
    async fn settle(&mut self, lane: Phase, answered: usize, parked: u32) -> (Vec<Value>, Vec<common::amqp::Taken>) {
        let canary = format!("canary-{}", lane.as_str());
        self.publish(lane, &job(&canary, lane, &self.ok_url())).await;
        let mut results = self.broker.results(answered + 1, WAIT).await;
        let position = results.iter().position(|r| r["job_id"] == canary.as_str()).expect("the valid job was answered");
        let canary_result = results.remove(position);
        assert_eq!(canary_result["outcome"], "succeeded", "the lane kept going: {canary_result}");
        let parked = self.broker.wait_for_messages(&self.broker.names.failed_queue(), parked, WAIT).await;
        self.broker.no_more_results(Duration::from_millis(300)).await;
        (results, parked)
    }

    /// Job ids of the requests the target received.
    async fn requested(&self) -> BTreeSet<String> {
        let requests = self.target.received_requests().await.unwrap();
        requests
            .iter()
            .map(|r| r.headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default())
            .collect()
    }
}

fn kinds(parked: &[common::amqp::Taken]) -> Vec<String> {
    parked.iter().map(|p| p.header("x-authrelay-error-kind").unwrap_or_default()).collect()
}

fn assert_rejected_invalid(result: &Value) {
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], "invalid_job", "{result}");
    assert_eq!(result["attempts"], 0, "{result}");
}

#[tokio::test]
async fn messages_that_are_not_json_or_have_no_usable_job_id_are_parked_without_a_result() {
    let mut w = worker().await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"\xff\xfe\x00\x01binary".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"a job\"".to_vec(),
        b"42".to_vec(),
        br#"{"job_id": 7}"#.to_vec(),
        br#"{"job_id": ""}"#.to_vec(),
        br#"{"job_id": ["a"]}"#.to_vec(),
        format!(r#"{{"job_id": "{}"}}"#, "x".repeat(129)).into_bytes(),
        br#"{"job_id": "line\nbreak", "workspace_id": "acme"}"#.to_vec(),
        br#"{"workspace_id": "acme", "phase": "pre_call"}"#.to_vec(),
    ];

    for body in &bodies {
        w.publish_raw(Phase::PreCall, body, json_props()).await;
    }
    // Not even AMQP properties.
    w.publish_raw(Phase::PreCall, b"<xml/>", BasicProperties::default()).await;

    let (results, parked) = w.settle(Phase::PreCall, 0, bodies.len() as u32 + 1).await;
    assert!(results.is_empty(), "nothing can be answered: {results:?}");
    assert!(kinds(&parked).iter().all(|k| k == "invalid_job"), "{:?}", kinds(&parked));
    let parked_bodies: BTreeSet<Vec<u8>> = parked.iter().map(|p| p.body.clone()).collect();
    for body in &bodies {
        assert!(parked_bodies.contains(body), "{:?} was not parked unchanged", String::from_utf8_lossy(body));
    }
    assert!(parked.iter().all(|p| p.header("x-authrelay-error").is_some_and(|e| !e.is_empty())));
    assert_eq!(w.requested().await, BTreeSet::from(["canary-pre_call".to_owned()]));
    w.app.stop().await;
}

#[tokio::test]
async fn an_oversized_message_is_refused_as_invalid_job_and_the_lane_keeps_going() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_MAX_JOB_BYTES", "4096");
    let mut w = worker_with(env).await;
    let mut big = job("too-big", Phase::DuringCall, &w.ok_url());
    big["request"]["body"] = json!({"pad": "x".repeat(8 * 1024)});
    let mut huge = job("far-too-big", Phase::DuringCall, &w.ok_url());
    huge["request"]["body"] = json!({"pad": "y".repeat(4 * 1024 * 1024)});

    w.publish(Phase::DuringCall, &big).await;
    w.publish(Phase::DuringCall, &huge).await;
    w.publish_raw(Phase::DuringCall, &vec![b'z'; 1024 * 1024], json_props()).await;

    let (results, parked) = w.settle(Phase::DuringCall, 2, 3).await;
    for result in &results {
        assert_rejected_invalid(result);
        assert!(result["error"]["message"].as_str().unwrap().contains("limit is 4096"), "{result}");
    }
    let ids: BTreeSet<&str> = results.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["too-big", "far-too-big"]));
    assert!(kinds(&parked).iter().all(|k| k == "invalid_job"), "{:?}", kinds(&parked));
    assert_eq!(w.requested().await, BTreeSet::from(["canary-during_call".to_owned()]));
    w.app.stop().await;
}

#[tokio::test]
async fn deeply_nested_json_is_parked_without_crashing_the_worker() {
    let mut w = worker().await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    // A job whose body alone is 10,000 levels deep: too deep to read at all, so it cannot be identified.
    let deep_body = format!(
        r#"{{"job_id": "deep-body", "workspace_id": "acme", "phase": "post_call", "action_id": "a", "request": {{"url": "{}", "method": "POST", "body": {arrays}}}}}"#,
        w.ok_url()
    );
    // 100 levels is deep but readable: it runs.
    let mut shallow = job("nested-100", Phase::PostCall, &w.ok_url());
    shallow["request"]["method"] = json!("POST");
    shallow["request"]["body"] = serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();

    w.publish_raw(Phase::PostCall, arrays.as_bytes(), json_props()).await;
    w.publish_raw(Phase::PostCall, objects.as_bytes(), json_props()).await;
    w.publish_raw(Phase::PostCall, deep_body.as_bytes(), json_props()).await;
    w.publish(Phase::PostCall, &shallow).await;

    let (results, parked) = w.settle(Phase::PostCall, 1, 3).await;
    assert_eq!(
        (results[0]["job_id"].as_str(), results[0]["outcome"].as_str()),
        (Some("nested-100"), Some("succeeded"))
    );
    assert!(kinds(&parked).iter().all(|k| k == "invalid_job"), "{:?}", kinds(&parked));
    let why = parked[0].header("x-authrelay-error").unwrap();
    assert!(why.contains("recursion limit"), "{why}");
    assert_eq!(
        w.requested().await,
        BTreeSet::from(["canary-post_call".to_owned(), "nested-100".to_owned()]),
        "only the readable jobs ran"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn a_wrong_type_or_value_in_any_field_is_rejected_as_invalid_job_naming_the_field() {
    let mut w = worker().await;
    let lane = Phase::PostCall;
    let url = w.ok_url();
    // (field path, value or removal, what the error must name)
    let cases: Vec<(&[&str], Option<Value>, &str)> = vec![
        (&["workspace_id"], Some(json!(7)), "workspace_id"),
        (&["workspace_id"], None, "workspace_id"),
        (&["workspace_id"], Some(json!("")), "workspace_id"),
        (&["workspace_id"], Some(json!({"id": "acme"})), "workspace_id"),
        (&["workspace_id"], Some(json!("w".repeat(129))), "workspace_id"),
        (&["phase"], Some(json!(1)), "phase"),
        (&["phase"], Some(json!(["post_call"])), "phase"),
        (&["phase"], Some(json!("mid_call")), "phase"),
        (&["phase"], Some(json!("POST_CALL")), "phase"),
        (&["phase"], Some(json!("pre_call")), "phase"),
        (&["phase"], None, "phase"),
        (&["action_id"], Some(json!(true)), "action_id"),
        (&["action_id"], None, "action_id"),
        (&["call_id"], Some(json!(5)), "call_id"),
        (&["call_id"], Some(json!({})), "call_id"),
        (&["request"], Some(json!(url.clone())), "request"),
        (&["request"], Some(json!([])), "request"),
        (&["request"], None, "request"),
        (&["request", "method"], Some(json!(1)), "request.method"),
        (&["request", "method"], Some(json!("BREW")), "request.method"),
        (&["request", "method"], Some(json!("GET\r\nX: y")), "request.method"),
        (&["request", "url"], Some(json!(1)), "request.url"),
        (&["request", "url"], Some(json!([url.clone()])), "request.url"),
        (&["request", "url"], None, "request.url"),
        (&["request", "headers"], Some(json!("x-a: b")), "request.headers"),
        (&["request", "headers"], Some(json!([["x-a", "b"]])), "request.headers"),
        (&["request", "headers"], Some(json!({"x-a": {"b": 1}})), "request.headers"),
        (&["request", "headers"], Some(json!({"x-a": null})), "request.headers"),
        (&["request", "query"], Some(json!("a=b")), "request.query"),
        (&["request", "query"], Some(json!({"a": [1]})), "request.query"),
        (&["request", "form"], Some(json!("a=b")), "request.form"),
        (&["request", "form"], Some(json!({"a": {}})), "request.form"),
        (&["request", "timeout_ms"], Some(json!("1000")), "request.timeout_ms"),
        (&["request", "timeout_ms"], Some(json!(-1)), "request.timeout_ms"),
        (&["request", "timeout_ms"], Some(json!(0)), "request.timeout_ms"),
        (&["request", "timeout_ms"], Some(json!(1.5)), "request.timeout_ms"),
        (&["request", "timeout_ms"], Some(json!(1e12)), "request.timeout_ms"),
        (&["auth_profile_id"], Some(json!(1)), "auth_profile_id"),
        (&["auth_profile_id"], Some(json!("../../etc/passwd")), "auth_profile_id"),
        (&["auth_profile_id"], Some(json!({})), "auth_profile_id"),
        (&["inline_auth"], Some(json!("bearer")), "inline_auth"),
        (&["inline_auth"], Some(json!([])), "inline_auth"),
        (&["inline_auth"], Some(json!({"type": 1})), "inline_auth.type"),
        (&["inline_auth"], Some(json!({"type": "bearer", "token": 5})), "inline_auth.token"),
        (&["inline_auth"], Some(json!({"type": "bearer", "token": "t", "extra": 1})), "inline_auth.extra"),
        (&["deadline"], Some(json!(1_700_000_000)), "deadline"),
        (&["deadline"], Some(json!("tomorrow")), "deadline"),
        (&["deadline"], Some(json!({})), "deadline"),
        (&["max_attempts"], Some(json!("3")), "max_attempts"),
        (&["max_attempts"], Some(json!(0)), "max_attempts"),
        (&["max_attempts"], Some(json!(-1)), "max_attempts"),
        (&["max_attempts"], Some(json!(1000)), "max_attempts"),
        (&["max_attempts"], Some(json!(2.5)), "max_attempts"),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (i, (field, value, needle)) in cases.iter().enumerate() {
        let id = format!("wrong-{i}");
        let mut message = job(&id, lane, &url);
        message["call_id"] = json!("call-1");
        set_path(&mut message, field, value.clone());
        w.publish(lane, &message).await;
        expected.insert(id, (*needle, message));
    }
    // Both a body and a form.
    let mut both = job("body-and-form", lane, &url);
    both["request"]["body"] = json!({"a": 1});
    both["request"]["form"] = json!({"a": "1"});
    w.publish(lane, &both).await;
    expected.insert("body-and-form".into(), ("exclusive", both));

    let (results, parked) = w.settle(lane, expected.len(), expected.len() as u32).await;
    for result in &results {
        assert_rejected_invalid(result);
        let (needle, _) = &expected[result["job_id"].as_str().unwrap()];
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{}: `{message}` does not name {needle}", result["job_id"]);
    }
    let answered: BTreeSet<&str> = results.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
    assert_eq!(answered, expected.keys().map(String::as_str).collect::<BTreeSet<_>>());
    assert!(kinds(&parked).iter().all(|k| k == "invalid_job"), "{:?}", kinds(&parked));
    for p in &parked {
        let parked_job = p.json();
        let (_, sent) = &expected[parked_job["job_id"].as_str().unwrap()];
        assert_eq!(&parked_job, sent, "parked unchanged");
    }
    assert_eq!(w.requested().await, BTreeSet::from(["canary-post_call".to_owned()]), "no hostile job sent a request");
    w.app.stop().await;
}

#[tokio::test]
async fn header_names_and_values_with_line_breaks_or_framing_headers_are_rejected_before_any_request() {
    let mut w = worker().await;
    let lane = Phase::DuringCall;
    let headers = [
        json!({"X-A\r\nInjected": "v"}),
        json!({"X-A\nInjected": "v"}),
        json!({"X A": "v"}),
        json!({"": "v"}),
        json!({":authority": "evil"}),
        json!({"X-A": "v\r\nX-Injected: 1"}),
        json!({"X-A": "v\n"}),
        json!({"X-A": "v\r"}),
        json!({"X-A": "v\u{0}w"}),
        json!({"Host": "evil.example"}),
        json!({"HOST": "evil.example"}),
        json!({"Content-Length": "0"}),
        json!({"Transfer-Encoding": "chunked"}),
        json!({"Connection": "close"}),
        json!({"TE": "trailers"}),
        json!({"Upgrade": "websocket"}),
        json!({"Trailer": "x"}),
    ];
    for (i, h) in headers.iter().enumerate() {
        let mut message = job(&format!("header-{i}"), lane, &w.ok_url());
        message["request"]["headers"] = h.clone();
        w.publish(lane, &message).await;
    }

    let (results, parked) = w.settle(lane, headers.len(), headers.len() as u32).await;
    for result in &results {
        assert_rejected_invalid(result);
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains("request.headers"), "{message}");
        assert!(!message.contains('\r') && !message.contains('\n'), "the error echoes a line break: {message:?}");
    }
    assert!(kinds(&parked).iter().all(|k| k == "invalid_job"), "{:?}", kinds(&parked));
    assert_eq!(w.requested().await, BTreeSet::from(["canary-during_call".to_owned()]));
    w.app.stop().await;
}

#[tokio::test]
async fn urls_with_credentials_or_odd_schemes_are_rejected_before_any_request() {
    let mut w = worker().await;
    let lane = Phase::PreCall;
    let port = w.target.address().port();
    let invalid = [
        format!("http://user:hunter2-url-password@127.0.0.1:{port}/ok"),
        format!("http://user@127.0.0.1:{port}/ok"),
        format!("http://:hunter2-url-password@127.0.0.1:{port}/ok"),
        "file:///etc/passwd".to_owned(),
        format!("gopher://127.0.0.1:{port}/_GET%20/ok"),
        "javascript:alert(1)".to_owned(),
        "data:text/plain,hello".to_owned(),
        "ftp://127.0.0.1/".to_owned(),
        format!("ws://127.0.0.1:{port}/ok"),
        "mailto:a@example.com".to_owned(),
        "//127.0.0.1/ok".to_owned(),
        "/ok".to_owned(),
        "http://".to_owned(),
        "http://127.0.0.1:99999/".to_owned(),
        "http://[::1/".to_owned(),
        "".to_owned(),
    ];
    // Valid URLs that only reach this machine: the egress guard refuses them (only 127.0.0.1/32 is allowed).
    let blocked = [
        format!("http://127.0.0.2:{port}/ok"),
        format!("http://0.0.0.0:{port}/ok"),
        format!("http://[::]:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!("http://[::ffff:127.0.0.2]:{port}/ok"),
        format!("http://0x7f.0.0.2:{port}/ok"),
        format!("http://2130706434:{port}/ok"),
    ];
    for (i, url) in invalid.iter().enumerate() {
        w.publish(lane, &job(&format!("invalid-{i}"), lane, url)).await;
    }
    for (i, url) in blocked.iter().enumerate() {
        w.publish(lane, &job(&format!("blocked-{i}"), lane, url)).await;
    }

    let total = invalid.len() + blocked.len();
    let (results, parked) = w.settle(lane, total, total as u32).await;
    for result in &results {
        let id = result["job_id"].as_str().unwrap();
        assert_eq!(result["outcome"], "rejected", "{result}");
        let expected = if id.starts_with("invalid") { "invalid_job" } else { "destination_blocked" };
        assert_eq!(result["error"]["kind"], expected, "{result}");
        assert!(!result.to_string().contains("hunter2"), "the URL's password is echoed: {result}");
    }
    assert_eq!(parked.len(), total);
    for p in &parked {
        let error = p.header("x-authrelay-error").unwrap();
        assert!(!error.contains("hunter2"), "the URL's password is in the parked headers: {error}");
    }
    assert_eq!(w.requested().await, BTreeSet::from(["canary-pre_call".to_owned()]));
    w.app.stop().await;
}

/// A producer can set the headers authrelay uses for delayed retries. Nonsense
/// in them must not crash, stall or silence a job.
#[tokio::test]
async fn nonsense_in_authrelays_own_amqp_headers_neither_crashes_nor_silences_a_job() {
    let mut w = worker().await;
    let lane = Phase::PostCall;
    let cases: Vec<(&str, AMQPValue)> = vec![
        ("x-authrelay-attempts", AMQPValue::LongLongInt(-5)),
        ("x-authrelay-attempts", AMQPValue::LongString("many".into())),
        ("x-authrelay-attempts", AMQPValue::LongLongInt(i64::MAX)),
        ("x-authrelay-attempts", AMQPValue::Boolean(true)),
        ("x-authrelay-deadline", AMQPValue::LongString("not a time".into())),
        ("x-authrelay-deadline", AMQPValue::LongLongInt(12345)),
        ("x-authrelay-deadline", AMQPValue::LongString("9999-12-31T23:59:59Z".into())),
        ("x-authrelay-deadline-override", AMQPValue::LongString("yes".into())),
        ("x-authrelay-error-kind", AMQPValue::LongString("invalid_job".into())),
    ];
    for (i, (name, value)) in cases.iter().enumerate() {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from(*name), value.clone());
        let message = job(&format!("header-{i}"), lane, &w.ok_url());
        w.publish_raw(lane, &serde_json::to_vec(&message).unwrap(), json_props().with_headers(headers)).await;
    }

    let (results, parked) = w.settle(lane, cases.len(), 0).await;
    for result in &results {
        assert_eq!(result["outcome"], "succeeded", "{result}");
    }
    assert!(parked.is_empty());
    w.app.stop().await;
}

#[tokio::test]
async fn an_attempts_header_at_the_top_of_its_range_still_gets_a_result() {
    let mut w = worker().await;
    let lane = Phase::PostCall;
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("x-authrelay-attempts"), AMQPValue::LongLongInt(i64::from(u32::MAX)));
    let message = job("attempts-max", lane, &w.ok_url());

    w.publish_raw(lane, &serde_json::to_vec(&message).unwrap(), json_props().with_headers(headers)).await;

    let result = w.broker.next_result(WAIT).await;
    assert_eq!(result["job_id"], "attempts-max", "{result}");
    assert!(matches!(result["outcome"].as_str(), Some("succeeded" | "failed")), "{result}");
    w.app.stop().await;
}

// ---------------------------------------------------------------------------
// Deeply nested AMQP headers, against the real binary
// ---------------------------------------------------------------------------

/// `authrelay run` as a child process; killed when dropped.
struct Process {
    child: std::process::Child,
    port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_process(env: &TestEnv) -> Process {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(env.state_dir.0.join(format!("authrelay-{port}.log"))).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authrelay"));
    command
        .args(["run", "--roles", "worker"])
        .current_dir(&env.state_dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env.vars)
        .env("AUTHRELAY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTHRELAY_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut process = Process { child: command.spawn().expect("the binary starts"), port };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(process.child.try_wait().unwrap().is_none(), "authrelay exited during start");
        let ready = http.get(format!("http://127.0.0.1:{}/readyz", process.port)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return process;
        }
        assert!(Instant::now() < deadline, "authrelay never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One AMQP 0-9-1 publish, encoded by hand: a client library that serializes
/// field tables recursively cannot even send what this test needs.
mod raw_amqp {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(0xCE);
        f
    }

    fn short(s: &str) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
        [&class.to_be_bytes()[..], &id.to_be_bytes(), args].concat()
    }

    async fn read_frame(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 7];
        s.read_exact(&mut head).await.unwrap();
        let mut payload = vec![0u8; u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize + 1];
        s.read_exact(&mut payload).await.unwrap();
        payload.pop();
        (head[0], payload)
    }

    /// A header table holding `{"a": {"a": … {}}}`, `depth` levels deep.
    pub fn nested_headers(depth: usize) -> Vec<u8> {
        let mut out = ((7 * depth) as u32).to_be_bytes().to_vec();
        for level in (1..=depth).rev() {
            out.extend_from_slice(&[1, b'a', b'F']);
            out.extend_from_slice(&((7 * (level - 1)) as u32).to_be_bytes());
        }
        out
    }

    /// Publishes with confirms and returns once the broker has confirmed.
    pub async fn publish(exchange: &str, routing_key: &str, headers: Vec<u8>, body: &[u8]) {
        let mut s = tokio::net::TcpStream::connect("127.0.0.1:5672").await.unwrap();
        s.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
        read_frame(&mut s).await; // Connection.Start
        let login = b"\0guest\0guest";
        let start_ok =
            [&0u32.to_be_bytes()[..], &short("PLAIN"), &(login.len() as u32).to_be_bytes(), login, &short("en_US")]
                .concat();
        s.write_all(&frame(1, 0, &method(10, 11, &start_ok))).await.unwrap();
        let (_, tune) = read_frame(&mut s).await;
        let tune_ok = [&tune[4..10], &0u16.to_be_bytes()[..]].concat(); // channel_max, frame_max, no heartbeat
        s.write_all(&frame(1, 0, &method(10, 31, &tune_ok))).await.unwrap();
        s.write_all(&frame(1, 0, &method(10, 40, &[short("/"), short(""), vec![0]].concat()))).await.unwrap();
        read_frame(&mut s).await; // Connection.Open-Ok
        s.write_all(&frame(1, 1, &method(20, 10, &short("")))).await.unwrap();
        read_frame(&mut s).await; // Channel.Open-Ok
        s.write_all(&frame(1, 1, &method(85, 10, &[0]))).await.unwrap();
        read_frame(&mut s).await; // Confirm.Select-Ok
        let publish = [&0u16.to_be_bytes()[..], &short(exchange), &short(routing_key), &[0]].concat();
        s.write_all(&frame(1, 1, &method(60, 40, &publish))).await.unwrap();
        // Content header: class, weight, size, flags (content-type, headers, delivery-mode), properties.
        let flags: u16 = (1 << 15) | (1 << 13) | (1 << 12);
        let header = [
            &60u16.to_be_bytes()[..],
            &0u16.to_be_bytes(),
            &(body.len() as u64).to_be_bytes(),
            &flags.to_be_bytes(),
            &short("application/json"),
            &headers,
            &[2],
        ]
        .concat();
        s.write_all(&frame(2, 1, &header)).await.unwrap();
        s.write_all(&frame(3, 1, body)).await.unwrap();
        let (_, ack) = read_frame(&mut s).await;
        assert_eq!(&ack[..4], &[0, 60, 0, 80], "the broker confirms the message (Basic.Ack)");
    }
}

/// The same depth reaches the worker through a phase queue and through the
/// profile-events fanout (where it would reach every instance at once).
async fn a_worker_survives_nested_headers(deliver: impl AsyncFnOnce(&TestBroker, Vec<u8>)) {
    let env = TestEnv::new();
    let broker = TestBroker::new(&env.vars["AUTHRELAY_AMQP_PREFIX"]).await;
    let mut process = spawn_process(&env).await;

    // 15,000 levels: 105 KB of headers, within the broker's 128 KiB frame. A debug build
    // already fails at 300 levels, a release build at 3,000.
    deliver(&broker, raw_amqp::nested_headers(15_000)).await;

    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        let exited = process.child.try_wait().unwrap();
        assert!(exited.is_none(), "one message with nested headers ended the worker: {exited:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = http.get(format!("http://127.0.0.1:{}/readyz", process.port)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_job_message_with_deeply_nested_amqp_headers_does_not_end_the_worker() {
    a_worker_survives_nested_headers(async |broker: &TestBroker, headers| {
        let queue = broker.names.phase_queue(Phase::PostCall);
        raw_amqp::publish("", &queue, headers, br#"{"job_id": "deep-headers"}"#).await;
    })
    .await;
}

#[tokio::test]
async fn a_profile_event_with_deeply_nested_amqp_headers_does_not_end_the_worker() {
    a_worker_survives_nested_headers(async |broker: &TestBroker, headers| {
        raw_amqp::publish(&broker.names.events_exchange(), "", headers, b"{}").await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------

/// A request with any body and content type; the JSON error (or body) back.
async fn raw(app: &TestApp, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.http.request(method, app.url(path)).bearer_auth(&app.token).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Rows in every table a request could write to.
async fn stored(app: &TestApp) -> [i64; 4] {
    let db = app.env.db.client().await;
    let mut counts = [0; 4];
    for (i, table) in
        ["auth_profiles", "auth_profile_references", "profile_events_outbox", "audit_log"].iter().enumerate()
    {
        counts[i] = db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
    }
    counts
}

async fn one_profile(app: &TestApp) -> String {
    app.create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "tok-0123456789abcdef"}}))
        .await
}

fn assert_error_shape(status: u16, body: &Value, what: &str) {
    assert!(body["error"].is_string() && body["message"].is_string(), "{what}: HTTP {status} with {body}");
}

#[tokio::test]
async fn bodies_over_256_kib_are_413_on_every_route_and_store_nothing() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let pad = "x".repeat(300 * 1024);
    let routes = [
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": pad}}),
        ),
        ("PATCH", format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"token": pad}})),
        ("PUT", "/v1/workspaces/acme/references/flow_node/n1".to_owned(), json!({"profile_id": id, "name": pad})),
        ("POST", "/v1/replay".to_owned(), json!({"workspace": pad, "dry_run": true})),
    ];

    for (method, path, body) in &routes {
        let (status, error) =
            raw(&app, method, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await;
        assert_eq!(status, 413, "{method} {path}: {error}");
        assert_error_shape(status, &error, path);
        assert_eq!(error["error"], "payload_too_large");
    }
    // Without a Content-Length: a chunked body of 1 MiB is cut off all the same.
    let chunks = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 16 * 1024])));
    let response = app
        .http
        .post(app.profiles_url("acme"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    assert_eq!(stored(&app).await, before, "nothing was stored");
    let (_, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(shown["version"], 1, "the profile was not changed");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_profile_test_body_is_413_with_the_json_error_shape() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let body = serde_json::to_vec(&json!({"url": format!("http://127.0.0.1:9/{}", "x".repeat(300 * 1024))})).unwrap();

    let (status, error) =
        raw(&app, "POST", &format!("/v1/workspaces/acme/auth-profiles/{id}/test"), Some("application/json"), body)
            .await;

    assert_eq!(status, 413);
    assert_error_shape(status, &error, "profile test");
    app.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415_and_store_nothing() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let profile = br#"{"name": "n", "type": "bearer", "config": {"token": "t-123"}}"#.to_vec();
    let content_types = [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/json-seq"),
        Some("text/json"),
        None,
    ];
    let routes = [
        ("POST", "/v1/workspaces/acme/auth-profiles".to_owned(), profile.clone()),
        ("PATCH", format!("/v1/workspaces/acme/auth-profiles/{id}"), br#"{"name": "renamed"}"#.to_vec()),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            format!(r#"{{"profile_id": "{id}", "name": "n"}}"#).into_bytes(),
        ),
        ("POST", "/v1/replay".to_owned(), br#"{"dry_run": true}"#.to_vec()),
    ];

    for (method, path, body) in &routes {
        for content_type in content_types {
            let (status, error) = raw(&app, method, path, content_type, body.clone()).await;
            assert_eq!(status, 415, "{method} {path} as {content_type:?}: {error}");
            assert_eq!(error["error"], "unsupported_media_type", "{error}");
        }
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_a_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let profile_path = format!("/v1/workspaces/acme/auth-profiles/{id}");
    let cases = [
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}, "id": id}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}, "version": 9}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1", "extra": 1}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "k", "value": "v", "extra": 1}]}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": 7, "type": "bearer", "config": {"token": "t-1"}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": ["bearer"], "config": {"token": "t-1"}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": "token=t-1"}),
        ),
        ("POST", "/v1/workspaces/acme/auth-profiles".to_owned(), json!(["name", "n"])),
        ("PATCH", profile_path.clone(), json!({"name": "renamed", "extra": 1})),
        ("PATCH", profile_path.clone(), json!({"version": 7})),
        ("PATCH", profile_path.clone(), json!({"workspace_id": "globex"})),
        ("PATCH", profile_path.clone(), json!({"config": {"token": "t-new", "extra": 1}})),
        ("PATCH", profile_path.clone(), json!({"config": {"token": 5}})),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": id, "name": "n", "extra": 1}),
        ),
        ("PUT", "/v1/workspaces/acme/references/flow_node/n1".to_owned(), json!({"profile_id": 5, "name": "n"})),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": "../../etc/passwd", "name": "n"}),
        ),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": "00000000-0000-4000-8000-000000000000", "name": "n"}),
        ),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "extra": 1})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "limit": -1})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "rate": 0})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "phase": "mid_call"})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "older_than": "a while"})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "error_kind": "oops"})),
        ("POST", format!("{profile_path}/test"), json!({"url": "file:///etc/passwd"})),
        ("POST", format!("{profile_path}/test"), json!({"url": "http://127.0.0.1:9/", "extra": 1})),
    ];

    for (method, path, body) in &cases {
        let (status, error) =
            raw(&app, method, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await;
        assert!((400..500).contains(&status), "{method} {path} {body} → HTTP {status} {error}");
        assert_error_shape(status, &error, &format!("{method} {path} {body}"));
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    let (_, shown) = app.get(&profile_path).await;
    assert_eq!((shown["name"].as_str(), shown["version"].as_i64()), (Some("CRM"), Some(1)));
    app.stop().await;
}

#[tokio::test]
async fn names_that_look_like_sql_are_stored_literally_and_harm_nothing() {
    let app = spawn_app().await;
    let names = [
        "'; DROP TABLE auth_profiles; --",
        "Robert'); DROP TABLE auth_profile_secrets;--",
        "\" OR \"1\"=\"1",
        "x' OR 'x'='x",
        "%",
        "_",
        "\\",
        "$1",
        "${jndi:ldap://127.0.0.1/a}",
        "<script>alert(1)</script>",
        "名前 🔑",
    ];
    let mut ids = Vec::new();
    for name in names {
        ids.push(app.create_profile("acme", json!({"name": name, "type": "bearer", "config": {"token": "t-1"}})).await);
    }
    let sqlish_workspace = "acme' OR '1'='1";
    let encoded: String =
        url::form_urlencoded::byte_serialize(sqlish_workspace.as_bytes()).collect::<String>().replace('+', "%20");
    let other =
        app.create_profile(&encoded, json!({"name": "other", "type": "bearer", "config": {"token": "t-1"}})).await;

    for (id, name) in ids.iter().zip(names) {
        let (status, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(shown["name"], name, "stored literally");
    }
    for q in ["%", "_", "\\", "'", "--", "DROP", "🔑"] {
        let query: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, page) = app.get(&format!("/v1/workspaces/acme/auth-profiles?limit=200&q={query}")).await;
        assert_eq!(status, 200, "{page}");
        let found: BTreeSet<&str> =
            page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        let expected: BTreeSet<&str> =
            names.iter().copied().filter(|n| n.to_lowercase().contains(&q.to_lowercase())).collect();
        assert_eq!(found, expected, "search for {q:?} matches the literal text only");
    }
    let (_, all) = app.get("/v1/workspaces/acme/auth-profiles?limit=200").await;
    assert_eq!(all["items"].as_array().unwrap().len(), names.len(), "acme sees only its own profiles");
    let (_, theirs) = app.get(&format!("/v1/workspaces/{encoded}/auth-profiles")).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["items"][0]["id"], other.as_str());
    assert_eq!(theirs["items"][0]["workspace_id"], sqlish_workspace);
    assert_eq!(stored(&app).await[0], names.len() as i64 + 1, "every table is still there, holding what was stored");
    app.stop().await;
}

#[tokio::test]
async fn garbage_in_workspaces_ids_and_kinds_is_a_clear_4xx_and_stores_nothing() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let long = "a".repeat(5000);
    let traversal_after_id = format!("{id}%2F..%2F..");
    let garbage_ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "'%20OR%201%3D1%20--",
        long.as_str(),
        "%C3%BCn%C3%AFc%C3%B8d%C3%A9",
        "%F0%9F%94%91",
        traversal_after_id.as_str(),
    ];
    let profile_body = json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}});
    let reference_body = json!({"profile_id": id, "name": "node"});
    let mut requests: Vec<(&str, String, Option<Value>)> = Vec::new();
    for bad in garbage_ids {
        let base = format!("/v1/workspaces/acme/auth-profiles/{bad}");
        requests.push(("GET", base.clone(), None));
        requests.push(("PATCH", base.clone(), Some(json!({"name": "x"}))));
        requests.push(("DELETE", base.clone(), None));
        requests.push(("GET", format!("{base}/usage"), None));
        requests.push(("POST", format!("{base}/test"), Some(json!({}))));
    }
    for ws in ["..%2F..%2Fetc", "acme%2F..%2Fglobex", long.as_str(), "%0d%0a"] {
        requests.push(("POST", format!("/v1/workspaces/{ws}/auth-profiles"), Some(profile_body.clone())));
        requests.push(("PUT", format!("/v1/workspaces/{ws}/references/flow_node/n1"), Some(reference_body.clone())));
        requests.push(("GET", format!("/v1/workspaces/{ws}/auth-profiles/{id}"), None));
    }
    for kind in ["..%2Fflow_node", "FLOW_NODE", "flow_node%20", "%F0%9F%94%91", long.as_str()] {
        requests.push(("PUT", format!("/v1/workspaces/acme/references/{kind}/n1"), Some(reference_body.clone())));
        requests.push(("DELETE", format!("/v1/workspaces/acme/references/{kind}/n1"), None));
    }
    let too_long_ref = "r".repeat(201);
    for ref_id in [too_long_ref.as_str(), "%0a"] {
        requests.push((
            "PUT",
            format!("/v1/workspaces/acme/references/flow_node/{ref_id}"),
            Some(reference_body.clone()),
        ));
    }
    for query in [
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999",
        "type=kerberos",
        "cursor=..%2F..%2F",
        "cursor=%F0%9F%94%91",
        "limit=1&sort=name;DROP",
    ] {
        requests.push(("GET", format!("/v1/workspaces/acme/auth-profiles?{query}"), None));
    }

    for (method, path, body) in &requests {
        let body = body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let (status, error) = raw(&app, method, path, Some("application/json"), body).await;
        let shown: String = path.chars().take(120).collect();
        assert!((400..500).contains(&status), "{method} {shown} → HTTP {status} {error}");
        assert_error_shape(status, &error, &shown);
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn a_traversal_path_is_never_normalised_into_another_route() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let traversals = [
        format!("/v1/workspaces/globex/auth-profiles/../../acme/auth-profiles/{id}"),
        "/v1/workspaces/acme/auth-profiles/../../../../etc/passwd".to_owned(),
        "/v1/workspaces/acme/../../healthz".to_owned(),
        "/v1/../metrics".to_owned(),
        format!("/v1/workspaces/globex/auth-profiles/%2e%2e/%2e%2e/acme/auth-profiles/{id}"),
    ];

    for path in traversals {
        // Sent as is: an HTTP client would normalise the dots away before sending.
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            app.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
        let status_line = response.lines().next().unwrap_or_default();
        assert!(status_line.contains(" 404 ") || status_line.contains(" 400 "), "{path}: {status_line}");
        assert!(!response.contains("tok-") && !response.contains("root:"), "{path}: {response}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_nul_byte_in_a_path_or_query_is_a_4xx_not_a_500() {
    let app = spawn_app().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let nul_cursor = {
        use base64::Engine as _;
        let json = serde_json::to_vec(&json!(["a\u{0}", id])).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    };
    let requests = [
        ("GET", "/v1/workspaces/acme%00/auth-profiles".to_owned(), None),
        ("GET", "/v1/workspaces/acme/auth-profiles?q=%00".to_owned(), None),
        ("GET", format!("/v1/workspaces/acme/auth-profiles?cursor={nul_cursor}"), None),
        ("GET", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), None),
        ("GET", format!("/v1/workspaces/acme%00/auth-profiles/{id}/usage"), None),
        ("PATCH", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), Some(json!({"name": "x"}))),
        ("DELETE", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), None),
        (
            "POST",
            "/v1/workspaces/acme%00/auth-profiles".to_owned(),
            Some(json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}})),
        ),
        (
            "PUT",
            "/v1/workspaces/acme%00/references/flow_node/n1".to_owned(),
            Some(json!({"profile_id": id, "name": "node"})),
        ),
        ("DELETE", "/v1/workspaces/acme%00/references/flow_node/n1".to_owned(), None),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n%00".to_owned(),
            Some(json!({"profile_id": id, "name": "node"})),
        ),
    ];

    let mut failures = Vec::new();
    for (method, path, body) in &requests {
        let body = body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let (status, error) = raw(&app, method, path, Some("application/json"), body).await;
        if !(400..500).contains(&status) {
            failures.push(format!("{method} {path} → HTTP {status} {error}"));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(stored(&app).await, before);
    app.stop().await;
}
