//! Where results go (contract section 4): the results exchange, routed by
//! phase and outcome, and the RPC reply to a job's `reply_to`, also after a
//! retry through a delay queue. Jobs go through the real RabbitMQ; targets
//! are wiremock servers on 127.0.0.1.

use std::time::Duration;

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::targets::Sequence;
use authrelay_testkit::{JobExt as _, TestApp, TestBroker, TestEnv, job, json_props};
use futures_util::StreamExt as _;
use lapin::options::BasicGetOptions;
use lapin::types::ShortString;
use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

// ---------------------------------------------------------------------------
// Where results go
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_job_with_reply_to_gets_its_result_on_that_queue_with_its_correlation_id() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/rpc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&target)
        .await;
    let (_channel, reply_to, mut replies) = reply_queue(&h.broker).await;

    publish_rpc(
        &h.broker,
        &job("job-rpc", Phase::DuringCall).to(&format!("{}/rpc", target.uri())),
        &reply_to,
        "corr-42",
    )
    .await;

    let (correlation_id, replied) = next_reply(&mut replies).await;
    assert_eq!(correlation_id.as_deref(), Some("corr-42"));
    assert_eq!(replied["job_id"], "job-rpc");
    assert_eq!(replied["outcome"], "succeeded", "{replied}");
    assert_eq!(replied["response"]["body"], json!({"id": 7}));
    let published = h.results.next(WAIT).await;
    assert_eq!(published, replied, "the results exchange gets the same result");
    h.stop().await;
}

/// An exclusive, server-named queue to receive replies on, as an RPC caller has.
async fn reply_queue(broker: &TestBroker) -> (lapin::Channel, ShortString, lapin::Consumer) {
    let channel = broker.conn.create_channel().await.unwrap();
    let queue = TestBroker::private_queue(&channel, None).await;
    let consumer = TestBroker::consume(&channel, queue.as_str()).await;
    (channel, queue, consumer)
}

async fn publish_rpc(broker: &TestBroker, job: &Value, reply_to: &ShortString, correlation_id: &str) {
    let properties =
        json_props().with_reply_to(reply_to.clone()).with_correlation_id(ShortString::from(correlation_id));
    let phase = job["phase"].as_str().unwrap();
    broker.publish(&broker.names.actions_exchange(), phase, &serde_json::to_vec(job).unwrap(), properties).await;
}

/// The next reply: its correlation id and its result.
async fn next_reply(replies: &mut lapin::Consumer) -> (Option<String>, Value) {
    let reply = tokio::time::timeout(WAIT, replies.next()).await.expect("a reply within WAIT").unwrap().unwrap();
    let correlation_id = reply.properties.correlation_id().as_ref().map(|c| c.as_str().to_owned());
    (correlation_id, serde_json::from_slice(&reply.data).unwrap())
}

#[tokio::test]
async fn a_rejected_job_also_answers_its_reply_to() {
    let h = spawn_worker().await;
    let (_channel, reply_to, mut replies) = reply_queue(&h.broker).await;

    publish_rpc(&h.broker, &job("job-rpc-bad", Phase::DuringCall).to("ftp://example.com/x"), &reply_to, "corr-bad")
        .await;

    let (correlation_id, replied) = next_reply(&mut replies).await;
    assert_eq!(correlation_id.as_deref(), Some("corr-bad"));
    assert_eq!(replied["job_id"], "job-rpc-bad");
    assert_eq!(replied["outcome"], "rejected", "{replied}");
    assert_eq!(replied["error"]["kind"], "invalid_job", "{replied}");
    assert_eq!(h.results.next(WAIT).await, replied);
    h.stop().await;
}

#[tokio::test]
async fn a_retry_through_a_delay_queue_keeps_the_reply_to_and_correlation_id() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_POST_CALL_RETRY_DELAYS", "500ms");
    env.set("AUTHRELAY_MAX_IN_PROCESS_DELAY", "100ms");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    let responder = Sequence::new(vec![ResponseTemplate::new(503), ResponseTemplate::new(200)]);
    Mock::given(path("/crm")).respond_with(responder).expect(2).mount(&target).await;
    let (_channel, reply_to, mut replies) = reply_queue(&h.broker).await;

    publish_rpc(
        &h.broker,
        &job("job-rpc-delayed", Phase::PostCall).to(&format!("{}/crm", target.uri())),
        &reply_to,
        "corr-late",
    )
    .await;

    let (correlation_id, replied) = next_reply(&mut replies).await;
    assert_eq!(correlation_id.as_deref(), Some("corr-late"));
    assert_eq!(replied["outcome"], "succeeded", "{replied}");
    assert_eq!(replied["attempts"], 2, "{replied}");
    assert_eq!(h.results.next(WAIT).await, replied);
    h.stop().await;
}

#[tokio::test]
async fn results_are_routed_by_phase_and_outcome() {
    let h = spawn_worker().await;
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).expect(2).mount(&target).await;
    Mock::given(path("/missing")).respond_with(ResponseTemplate::new(404)).expect(1).mount(&target).await;
    let channel = h.broker.conn.create_channel().await.unwrap();
    let results_exchange = h.broker.names.results_exchange();
    let only_succeeded = TestBroker::private_queue(&channel, Some((&results_exchange, "during_call.succeeded"))).await;

    h.broker.publish_job(&job("during-ok", Phase::DuringCall).to(&format!("{}/ok", target.uri()))).await;
    h.broker.publish_job(&job("during-404", Phase::DuringCall).to(&format!("{}/missing", target.uri()))).await;
    h.broker.publish_job(&job("pre-ok", Phase::PreCall).to(&format!("{}/ok", target.uri()))).await;

    // All three results are published (and routed) once the catch-all queue has them.
    h.results.take(3, WAIT).await;
    let queue = only_succeeded.as_str();
    assert_eq!(h.broker.message_count(queue).await, 1);
    let message =
        channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("one message");
    assert_eq!(message.delivery.routing_key.as_str(), "during_call.succeeded");
    let result: Value = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(result["job_id"], "during-ok");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Post-call retries through the delay queues
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_post_call_retry_waits_in_a_delay_queue_and_then_succeeds() {
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_POST_CALL_RETRY_DELAYS", "1s");
    // Delays up to AUTHRELAY_MAX_IN_PROCESS_DELAY (2 s by default) are waited in
    // process; make the 1 s retry go through the broker as the production 5 s one does.
    env.set("AUTHRELAY_MAX_IN_PROCESS_DELAY", "100ms");
    let h = TestApp::start(env, Roles::ALL).await;
    let target = MockServer::start().await;
    let responder = Sequence::new(vec![ResponseTemplate::new(503), ResponseTemplate::new(200)]);
    let arrivals = responder.arrivals();
    Mock::given(path("/crm")).respond_with(responder).expect(2).mount(&target).await;
    let deferred = r#"authrelay_jobs_deferred_total{phase="post_call",reason="retry"}"#;
    let deferred_before = h.metric(deferred).await;

    h.broker.publish_job(&job("job-post", Phase::PostCall).to(&format!("{}/crm", target.uri()))).await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    let waited = arrivals.gap();
    assert!(waited >= Duration::from_millis(800), "retried after {waited:?}; the delay is 1 s");
    assert_eq!(h.metric(deferred).await, deferred_before + 1.0);
    h.stop().await;
}
