//! Hostile job messages: messages no producer should send. Each is refused
//! with a clear error kind, parked unchanged, nothing crashes or stalls, no
//! request is sent, and the next valid job still succeeds on the same lane.
//!
//! Jobs go through the real RabbitMQ (published straight to the phase queue, as
//! the contract allows); the only targets are wiremock servers on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::{JobExt as _, Taken, TestApp, TestEnv, job, json_props, set_path};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

/// The worker, and a target whose `/ok` answers 200 for the valid job each
/// test sends after the hostile ones.
struct Lanes {
    app: TestApp,
    target: MockServer,
}

async fn worker_with(env: TestEnv) -> Lanes {
    let app = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&target)
        .await;
    Lanes { app, target }
}

async fn worker() -> Lanes {
    worker_with(TestEnv::new()).await
}

impl Lanes {
    fn ok_url(&self) -> String {
        format!("{}/ok", self.target.uri())
    }

    /// Publishes straight to the lane's queue, as the contract allows.
    async fn publish_raw(&self, lane: Phase, body: &[u8], properties: BasicProperties) {
        self.app.broker.publish("", &self.app.broker.names.phase_queue(lane), body, properties).await;
    }

    async fn publish(&self, lane: Phase, message: &Value) {
        self.publish_raw(lane, &serde_json::to_vec(message).unwrap(), json_props()).await;
    }

    /// Publishes a valid job after the hostile ones, then collects `answered`
    /// results besides its own and `parked` parked messages. The valid job
    /// must succeed: the lane kept going.
    async fn settle(&self, lane: Phase, answered: usize, parked: u32) -> (Vec<Value>, Vec<Taken>) {
        let canary = format!("canary-{}", lane.as_str());
        self.publish(lane, &job(&canary, lane).to(&self.ok_url())).await;
        let mut results = self.app.results.take(answered + 1, WAIT).await;
        let position = results.iter().position(|r| r["job_id"] == canary.as_str()).expect("the valid job was answered");
        let canary_result = results.remove(position);
        assert_eq!(canary_result["outcome"], "succeeded", "the lane kept going: {canary_result}");
        let parked = self.app.broker.wait_for_messages(&self.app.broker.names.failed_queue(), parked, WAIT).await;
        self.app.results.no_more(Duration::from_millis(300)).await;
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

fn kinds(parked: &[Taken]) -> Vec<String> {
    parked.iter().map(|p| p.header("x-authrelay-error-kind").unwrap_or_default()).collect()
}

fn assert_rejected_invalid(result: &Value) {
    assert_eq!(result["outcome"], "rejected", "{result}");
    assert_eq!(result["error"]["kind"], "invalid_job", "{result}");
    assert_eq!(result["attempts"], 0, "{result}");
}

#[tokio::test]
async fn messages_that_are_not_json_or_have_no_usable_job_id_are_parked_without_a_result() {
    let w = worker().await;
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
    let w = worker_with(env).await;
    let mut big = job("too-big", Phase::DuringCall).to(&w.ok_url());
    big["request"]["body"] = json!({"pad": "x".repeat(8 * 1024)});
    let mut huge = job("far-too-big", Phase::DuringCall).to(&w.ok_url());
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
    let w = worker().await;
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    // A job whose body alone is 10,000 levels deep: too deep to read at all, so it cannot be identified.
    let deep_body = format!(
        r#"{{"job_id": "deep-body", "workspace_id": "acme", "phase": "post_call", "action_id": "a", "request": {{"url": "{}", "method": "POST", "body": {arrays}}}}}"#,
        w.ok_url()
    );
    // 100 levels is deep but readable: it runs.
    let mut shallow = job("nested-100", Phase::PostCall).to(&w.ok_url());
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
    let w = worker().await;
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
        let mut message = job(&id, lane).to(&url);
        set_path(&mut message, field, value.clone());
        w.publish(lane, &message).await;
        expected.insert(id, (*needle, message));
    }
    // Both a body and a form.
    let mut both = job("body-and-form", lane).to(&url);
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
    let w = worker().await;
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
        let mut message = job(&format!("header-{i}"), lane).to(&w.ok_url());
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
    let w = worker().await;
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
        w.publish(lane, &job(&format!("invalid-{i}"), lane).to(url)).await;
    }
    for (i, url) in blocked.iter().enumerate() {
        w.publish(lane, &job(&format!("blocked-{i}"), lane).to(url)).await;
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
    let w = worker().await;
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
        let message = job(&format!("header-{i}"), lane).to(&w.ok_url());
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
    let w = worker().await;
    let lane = Phase::PostCall;
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("x-authrelay-attempts"), AMQPValue::LongLongInt(i64::from(u32::MAX)));
    let message = job("attempts-max", lane).to(&w.ok_url());

    w.publish_raw(lane, &serde_json::to_vec(&message).unwrap(), json_props().with_headers(headers)).await;

    let result = w.app.results.next(WAIT).await;
    assert_eq!(result["job_id"], "attempts-max", "{result}");
    assert!(matches!(result["outcome"].as_str(), Some("succeeded" | "failed")), "{result}");
    w.app.stop().await;
}
